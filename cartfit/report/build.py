"""``cartfit report RESULTS_DIR``: one self-contained HTML file for a results folder.

The page opens with every failed convergence check and every figure that could not be drawn
(in red), then the growth-law comparison, the data with posterior predictive bands, visual
predictive checks, exposure, relapse, virtual trials, sampler diagnostics and the methods.
Figures already drawn by the workflow (``figures/*.png`` newer than their sources) are
embedded as they are; missing or stale ones are drawn and saved there first.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

import pandas as pd

from cartfit.errors import CartfitError
from cartfit.inference.fitfile import (
    BY_CHAIN_NOTE,
    CHAIN_NOTE,
    DIVERGENCE_NOTE,
    MISFIT_NOTE,
    STIFFNESS_NOTE,
    stored_diagnostics,
)
from cartfit.report import html as H
from cartfit.report.contents import FIT_STEM, SECTIONS, Item, Results, items
from cartfit.report.figures import make_figure
from cartfit.report.methods import fit_attrs, methods_html

#: columns of the comparison table shown under its figure
COMPARE_COLUMNS = ("model", "growth", "elpd_loo", "se", "elpd_diff", "dse", "weight",
                   "n_bad_pareto_k", "warning")


def _fresh(figure: Path, sources: list[Path]) -> bool:
    if not figure.is_file():
        return False
    newest = max((s.stat().st_mtime for s in sources if s.exists()), default=0.0)
    return figure.stat().st_mtime >= newest


def _figure_bytes(item: Item, cohort_dir: str | None) -> bytes:
    if not _fresh(item.figure, item.inputs):
        make_figure(item.kind, item.inputs, item.figure, cohort_dir=cohort_dir)
    return item.figure.read_bytes()


def fit_problems(attrs: dict[Path, dict[str, str]]) -> list[str]:
    """One line per fit that failed a convergence check (HTML), with where its divergences
    happened when they were located and which chain disagrees where."""
    lines = []
    for path, a in attrs.items():
        try:
            diag = stored_diagnostics(a)
            problems = list(diag.get("problems", []))
            notes = diag.get("notes", [])
            located = (DIVERGENCE_NOTE, CHAIN_NOTE, STIFFNESS_NOTE)
            problems += [n for n in notes if n.startswith(located)]
        except ValueError:
            problems = ["its diagnostics could not be read"]
        if problems:
            m = FIT_STEM.match(path.stem)
            name = f"{m['model']} / {m['growth']}, {m['unit']}" if m else path.stem
            lines.append(f"<b>{H.esc(name)}</b>: " + "; ".join(H.esc(p) for p in problems)
                         + f' (<a href="#diagnostics-{H.slug(path.stem)}">diagnostics</a>)')
    return lines


def _table_html(path: Path, kind: str) -> str:
    df = pd.read_csv(path)
    if kind == "compare":
        df = df[[c for c in COMPARE_COLUMNS if c in df.columns]]
    body = H.table(df)
    if kind == "compare":
        return body
    return f"<details><summary>table {H.esc(path.name)} ({len(df)} rows)</summary>{body}</details>"


def _compare_warnings(results: Results) -> list[str]:
    """Fits whose PSIS-LOO is unreliable (Pareto k), and fits the comparison marks as misfits."""
    out = []
    for path in results.compare:
        df = pd.read_csv(path)
        if "n_bad_pareto_k" in df.columns and (df["n_bad_pareto_k"] > 0).any():
            bad = df[df["n_bad_pareto_k"] > 0]
            out.append(f"{H.esc(path.stem)}: Pareto k > 0.7 for "
                       + ", ".join(f"{H.esc(r.growth)} ({int(r.n_bad_pareto_k)} obs.)"
                                   for r in bad.itertuples())
                       + "; the PSIS-LOO estimate of these fits is unreliable")
        for r in df.itertuples() if "warning" in df.columns else ():
            parts = str(r.warning).split("; ")
            misfit = [w.removeprefix(MISFIT_NOTE) for w in parts if w.startswith(MISFIT_NOTE)]
            by_chain = [w for w in parts if w.startswith(BY_CHAIN_NOTE)]
            if by_chain:
                out.append(f"{H.esc(path.stem)}: {H.esc(r.model)}/{H.esc(r.growth)} did not "
                           f"converge; scored chain by chain (PSIS-LOO of each chain alone), "
                           f"{H.esc(by_chain[0].removeprefix(BY_CHAIN_NOTE))}")
            if misfit:
                out.append(f"{H.esc(path.stem)}: {H.esc(r.model)}/{H.esc(r.growth)} does not "
                           f"describe these data ({H.esc(', '.join(misfit))}); "
                           "its trajectories are a compromise between readings it cannot "
                           "follow together, which can also keep its chains from agreeing")
    return out


def _banner(problems: list[str], warnings: list[str], n_fits: int) -> str:
    parts = []
    if problems:
        parts.append('<div class="problems" id="problems"><h2>Problems</h2>'
                     "<p>These results did not pass their checks; read them with that in mind."
                     f"</p>{H.items(problems)}</div>")
    else:
        parts.append(f'<div class="ok" id="problems"><p>All {n_fits} fit(s) passed the '
                     "convergence checks (R-hat ≤ 1.01, bulk ESS ≥ 400, no divergences, "
                     "E-BFMI ≥ 0.3).</p></div>")
    if warnings:
        parts.append(f'<div class="warnings"><b>Warnings</b>{H.items(warnings)}</div>')
    return "\n".join(parts)


def build_report(results_dir: str | os.PathLike[str],
                 files: Iterable[str | os.PathLike[str]] | None = None) -> Path:
    """Write ``RESULTS_DIR/report.html``: figures embedded as PNG, tables as HTML, no links out.

    Parameters
    ----------
    results_dir
        A results folder of one cohort (``results/<cohort>``) holding ``fits/`` and optionally
        ``compare/``, ``exposure/``, ``relapse/``, ``trials/`` and ``figures/``.
    files
        When given, only these result files are reported (the workflow passes its inputs so
        that files left over from an earlier configuration stay out).

    Returns
    -------
    pathlib.Path
        The report file, written atomically.

    Raises
    ------
    CartfitError
        If the folder holds no fit file.
    """
    from cartfit.io import read_text, write_text

    results = Results.scan(results_dir, files)
    if not results.fits:
        raise CartfitError(f"{results_dir}: no fit file under fits/ (run the workflow or "
                           "`cartfit fit ... --out RESULTS_DIR/fits/MODEL_GROWTH_UNIT.nc` first)")
    attrs = {p: fit_attrs(p) for p in results.fits}
    cohort_dir = next(iter(attrs.values())).get("cohort") or None
    problems = fit_problems(attrs)
    sections: dict[str, list[str]] = {kind: [] for kind in SECTIONS}
    for item in items(results, attrs):
        anchor = f"{item.kind}-{H.slug(item.figure.stem.split('_', 1)[1])}"
        try:
            data = _figure_bytes(item, cohort_dir)
        except Exception as err:  # shown at the top of the report, never hidden
            message = f"{item.kind} figure {item.figure.name} could not be drawn: {err}"
            problems.append(H.esc(message))
            sections[item.kind].append(f'<p class="fail" id="{anchor}">{H.esc(message)}</p>')
            continue
        block = [f"<h3>{H.esc(item.title)}</h3>",
                 H.figure(data, f"{item.kind}: {item.title}", item.caption, anchor)]
        block += [_table_html(t, item.kind) for t in item.tables]
        sections[item.kind].append("\n".join(block))
    name = results.root.resolve().name
    fitted = sorted({(a.get("model", ""), a.get("growth", ""), a.get("mode", ""))
                     for a in attrs.values()})
    head = [f"<h1>cartfit report: {H.esc(name)}</h1>",
            f"<p>{len(results.fits)} fit(s): "
            + ", ".join(H.esc(f"{m} / {g} ({mode})") for m, g, mode in fitted) + "</p>",
            _banner(problems, _compare_warnings(results), len(results.fits))]
    toc = [f'<li><a href="#{H.slug(title)}">{H.esc(title)}</a></li>'
           for kind, title in SECTIONS.items() if sections[kind]]
    toc += ['<li><a href="#methods">Methods</a></li>']
    body = head + [f"<nav><h2>Contents</h2><ul>{''.join(toc)}</ul></nav>"]
    if results.validation is not None:
        body.append(f"<h2>Data</h2><pre>{H.esc(read_text(results.validation))}</pre>")
    for kind, title in SECTIONS.items():
        if sections[kind]:
            body.append(f'<section><h2 id="{H.slug(title)}">{H.esc(title)}</h2>'
                        + "\n".join(sections[kind]) + "</section>")
    body.append(methods_html(results.fits, results.validation))
    out = results.root / "report.html"
    write_text(H.page(f"cartfit report: {name}", "\n".join(body)), out)
    return out
