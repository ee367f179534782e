"""The report's methods page, written from the fit files themselves.

Everything on the page is read from what was run: the models' equations
(:attr:`cartfit.models.base.ODEModel.equations`) and docstrings, the priors, sampler settings,
software versions and data hash stored in each fit's attributes
(:mod:`cartfit.inference.fitfile`), and the observation model and hierarchy documented in
:mod:`cartfit.inference.builder`.
"""

from __future__ import annotations

import importlib
import json
import math
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from cartfit.report import html as H
from cartfit.report.contents import FIT_STEM


def fit_attrs(path: str | os.PathLike[str]) -> dict[str, str]:
    """The root attributes of a fit file (read without loading its arrays)."""
    import xarray as xr

    from cartfit.errors import CartfitError

    try:
        with xr.open_datatree(path, engine="netcdf4") as tree:
            return {str(k): str(v) for k, v in tree.attrs.items()}
    except (OSError, ValueError) as err:
        raise CartfitError(f"{path}: not a readable cartfit fit file ({err})") from None


def _json(attrs: dict[str, str], key: str, default: Any) -> Any:
    try:
        return json.loads(attrs[key])
    except (KeyError, ValueError):
        return default


def _model_section(model_name: str, growth: str, attrs: dict[str, str]) -> str:
    from cartfit.models import get_model

    model = get_model(model_name, growth)
    module = importlib.import_module(f"cartfit.models.{model_name}")
    law = model.extras.get("growth_law")
    parts = [f'<h4 id="model-{H.slug(model_name + "-" + growth)}">{H.esc(model_name)} with '
             f"{H.esc(growth)} tumour growth</h4>", "<p>Equations of the fitted system:</p>"]
    parts += [H.equation(e) for e in H.math_lines(model.equations)]
    if law is not None and getattr(law, "equation", ""):
        parts += [f"<p>with the {H.esc(growth)} growth law</p>", H.equation(law.equation)]
    parts.append(f"<details><summary>About the model (from its documentation)</summary>"
                 f"{H.rst_block(module.__doc__ or '')}</details>")
    priors = _json(attrs, "priors", {})
    rows = []
    for p in model.parameters:
        used = priors.get(p.name, {})
        median = float(used.get("median", p.median))
        log_sd = float(used.get("log_sd", p.log_sd))
        rows.append({
            "parameter": p.name, "symbol": p.symbol, "unit": p.unit, "meaning": p.description,
            "prior median": median, "prior log-SD": log_sd,
            "prior 90 % interval": f"{median * math.exp(-1.645 * log_sd):.3g} – "
                                   f"{median * math.exp(1.645 * log_sd):.3g}",
        })
    parts.append("<p>Priors: log-normal, <code>ln θ ~ Normal(ln median, log-SD)</code>, "
                 "as stored in the fit file:</p>" + H.table(pd.DataFrame(rows)))
    fixed = _json(attrs, "fixed_parameters", [])
    if fixed:
        parts.append("<p>Held at the prior median in the population fit (not estimated; a "
                     "covariate column can still set one per subject): "
                     f"{H.esc(', '.join(fixed))}.</p>")
    return "\n".join(parts)


def _other_priors() -> str:
    """The constants of :mod:`cartfit.inference.priors` (initial states, residual error,
    hierarchy) with the ``#:`` comments that document them, read from its source."""
    import inspect

    from cartfit.inference import priors

    rows: list[dict[str, str]] = []
    comment: list[str] = []
    in_comment = False
    for line in inspect.getsource(priors).splitlines():
        text = line.strip()
        if text.startswith("#:"):  # a new comment block documents the assignments below it
            comment = comment if in_comment else []
            comment.append(text[2:].strip())
            in_comment = True
            continue
        in_comment = False
        if not text:
            comment = []
        match = re.match(r"^([A-Z][A-Z0-9_]*)\s*=", line)
        if match and hasattr(priors, match[1]):
            rows.append({"constant": match[1], "value": repr(getattr(priors, match[1])),
                         "meaning": " ".join(comment)})
    return H.table(pd.DataFrame(rows, columns=["constant", "value", "meaning"]))


#: how every fit is sampled (cartfit.inference.sampling), for the methods page
SAMPLING_STEPS = (
    "Before sampling, L-BFGS maximises the log posterior density from several starts (the "
    "'optimiser starts' below; a population fit without the large-cohort geometry runs them "
    "twice, with the subject effects written as sampled and all non-centred, and ranks the "
    "optima by the non-centred density, since the centred joint mode is degenerate; with the "
    "large-cohort geometry, damped Newton steps carry the best start to its optimum and each "
    "subject effect gets its own centring weight). The sampler then moves in coordinates "
    "whitened by the Laplace approximation at the best optimum (a linear change of variables: "
    "the posterior is unchanged), each chain starting at its own corner of the unit cube there,"
    " with nutpie's mass-matrix adaptation on top. Every divergent transition is located at the"
    " observation whose likelihood term jumps across it (see the fit's notes). When a quarter"
    " or more of the transitions reach the maximum tree depth, the log density's stiffest"
    " direction, in units of the posterior's spread, is measured at eight draws and named by"
    " the reading whose term makes most of its curvature (see the fit's notes)."
)


def _fits_table(paths: Sequence[Path], attrs: Sequence[dict[str, str]]) -> str:
    rows = []
    for path, a in zip(paths, attrs, strict=True):
        s = _json(a, "settings", {})
        d = _json(a, "diagnostics", {})
        stem = FIT_STEM.match(path.stem)
        rows.append({
            "fitted": stem["unit"] if stem else path.stem, "model": a.get("model", ""),
            "growth": a.get("growth", ""),
            "mode": a.get("mode", ""), "subjects": len(_json(a, "subjects", [])),
            "likelihood": s.get("likelihood", ""), "chains": s.get("chains", ""),
            "tune": s.get("tune", ""), "draws": s.get("draws", ""),
            "target_accept": s.get("target_accept", ""),
            "max tree depth": s.get("max_treedepth", ""),
            "mass matrix": {True: "low-rank", False: "diagonal"}.get(
                s.get("low_rank_mass_matrix"), ""),
            "optimiser starts": s.get("n_starts", ""),
            "large-cohort geometry": s.get("large_cohort", ""),
            "seed": a.get("seed", ""),
            "ODE tolerance": f"{s.get('rtol', '')}",
            "converged": not d.get("problems", ["unknown"]),
        })
    return H.table(pd.DataFrame(rows))


def methods_html(fits: Sequence[str | os.PathLike[str]],
                 validation: str | os.PathLike[str] | None = None) -> str:
    """The methods section (an HTML fragment) for the given fit files.

    Parameters
    ----------
    fits
        Fit files of one cohort (``cartfit fit`` output).
    validation
        Optional ``cartfit validate`` summary of the cohort, shown verbatim.
    """
    import cartfit.inference.builder as builder
    from cartfit.io import read_text

    paths = sorted(Path(p) for p in fits)
    attrs = [fit_attrs(p) for p in paths]
    out = ['<section id="methods"><h2>Methods</h2>', "<h3>Data</h3>"]
    first = attrs[0] if attrs else {}
    meta = _json(first, "cohort_meta", {})
    hashes = sorted({a.get("data_sha256", "") for a in attrs})
    facts = [f"cohort <b>{H.esc(meta.get('name', first.get('cohort', '?')))}</b> "
             f"(<code>{H.esc(first.get('cohort', '?'))}</code>)"]
    facts += [f"{key}: {H.esc(meta[key])}" for key in ("description", "source", "license")
              if meta.get(key)]
    facts.append("data SHA-256: " + ", ".join(f"<code>{H.esc(h)}</code>" for h in hashes))
    if len(hashes) > 1:
        facts.append('<span class="fail">the fits were made on different versions of the data'
                     "</span>")
    units = _json(first, "units", {})
    if units:
        facts.append("units: " + ", ".join(f"{H.esc(k)} in {H.esc(v)}" for k, v in units.items()))
    out.append(H.items(facts))
    if validation is not None and Path(validation).is_file():
        out.append(f"<pre>{H.esc(read_text(validation))}</pre>")
    out.append("<h3>Models</h3>")
    for model_name, growth in sorted({(a.get("model", ""), a.get("growth", "")) for a in attrs}):
        match = next(a for a in attrs if (a.get("model"), a.get("growth")) == (model_name, growth))
        out.append(_model_section(model_name, growth, match))
    out.append("<h3>Observation model, likelihood and hierarchy</h3>")
    doc = builder.__doc__ or ""
    start = doc.find("Observation model")  # the builder's own summary lines are for developers
    out.append(H.rst_block(doc[start:] if start >= 0 else doc))
    out.append("<p>Values below the LLOQ are never dropped or replaced: they enter as "
               "left-censored (Beal M3), contributing the probability that the measurement "
               "falls below the LLOQ.</p>")
    out.append("<h4>Other priors</h4><p>Initial states, residual error and the population "
               "hierarchy use these settings of <code>cartfit.inference.priors</code> (as "
               "installed when this page was written):</p>" + _other_priors())
    out.append("<h3>Sampler and settings</h3>")
    samplers = sorted({a.get("sampler", "") for a in attrs})
    out.append(f"<p>Sampler: {H.esc(', '.join(samplers))}. Convergence checks: R-hat ≤ 1.01, "
               "bulk ESS ≥ 400, no divergent transitions, E-BFMI ≥ 0.3.</p>")
    out.append(f"<p>{H.esc(SAMPLING_STEPS)}</p>")
    out.append(_fits_table(paths, attrs))
    out.append("<h3>Software</h3>")
    software = _json(first, "software", {})
    versions = {"cartfit": first.get("cartfit_version", "?"), **software}
    out.append(H.table(pd.DataFrame(list(versions.items()), columns=["package", "version"])))
    out.append("</section>")
    return "\n".join(out)


def write_methods(fits: Sequence[str | os.PathLike[str]], out: str | os.PathLike[str],
                  validation: str | os.PathLike[str] | None = None) -> Path:
    """Write the methods page as a stand-alone HTML file (atomically); returns ``out``."""
    from cartfit.io import write_text

    write_text(H.page("cartfit methods", methods_html(fits, validation)), out)
    return Path(out)
