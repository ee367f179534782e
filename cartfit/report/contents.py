"""What a results folder holds, as the report's items: one figure per item, with its caption.

File names follow the workflow's rules (``workflow/rules/*.smk``): a fit is
``fits/<model>_<growth>_<unit>.nc``; its exposure and relapse tables carry the same stem; a
comparison is ``compare/<model>_<unit>.csv``; a trial ``trials/<model>_<growth>_<scenario>.csv``;
the co-stimulation tables of a multifate population fit ``costim/<model>_<growth>.csv``, with
``_homeostatic`` and ``_rechallenge`` next to it.
Figures are ``figures/<kind>_<stem>.png`` (see :mod:`cartfit.report.figures`).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from cartfit.growth import GROWTH_LAWS
from cartfit.models import MODEL_NAMES
from cartfit.report.html import esc

_MODEL = "|".join(sorted(MODEL_NAMES, key=len, reverse=True))
_GROWTH = "|".join(GROWTH_LAWS)
FIT_STEM = re.compile(rf"^(?P<model>{_MODEL})_(?P<growth>{_GROWTH})_(?P<unit>.+)$")
COMPARE_STEM = re.compile(rf"^(?P<model>{_MODEL})_(?P<unit>.+)$")
#: the comparison of every fitted model and growth law: ``compare/models_<unit>.csv``
MODELS_STEM = re.compile(r"^models_(?P<unit>.+)$")
#: the contrast table of a multifate population fit: ``costim/<model>_<growth>.csv``
COSTIM_STEM = re.compile(rf"^(?P<model>{_MODEL})_(?P<growth>{_GROWTH})$")
POPULATION = "population"

#: section of the report for each figure kind, in order
SECTIONS = {
    "compare": "Growth-law comparison",
    "bands": "Data and posterior predictive bands",
    "vpc": "Visual predictive checks",
    "exposure": "Exposure metrics",
    "relapse": "Relapse probabilities",
    "trial": "Virtual trials",
    "contrast": "Virtual trials: paired contrasts between arms",
    "costim": "CD28 versus 4-1BB (multi-fate)",
    "published": "Our fits against the published ones",
    "diagnostics": "Sampler diagnostics",
}


@dataclass
class Item:
    """One figure of the report, the files it is drawn from and the tables shown under it."""

    kind: str
    title: str
    inputs: list[Path]
    figure: Path
    caption: str
    tables: list[Path] = field(default_factory=list)


@dataclass
class Results:
    """The files of one results folder (optionally restricted to a given list)."""

    root: Path
    fits: list[Path]
    compare: list[Path]
    exposure: list[Path]
    relapse: list[Path]
    trials: list[Path]
    validation: Path | None
    published: list[Path] = field(default_factory=list)
    costim: list[Path] = field(default_factory=list)
    #: paired contrasts between trial scenarios: ``trials/contrasts/<model>_<growth>_<a>_vs_<b>``
    contrasts: list[Path] = field(default_factory=list)

    @classmethod
    def scan(cls, root: str | os.PathLike[str],
             files: Iterable[str | os.PathLike[str]] | None = None) -> Results:
        base = Path(root)
        allowed = None if files is None else {Path(f).resolve() for f in files}

        def listing(folder: str, suffix: str) -> list[Path]:
            found = sorted((base / folder).glob(f"*{suffix}"))
            found = [p for p in found if not p.name.startswith(".")]
            return [p for p in found if allowed is None or p.resolve() in allowed]

        validation = base / "validation.txt"
        return cls(base, listing("fits", ".nc"), listing("compare", ".csv"),
                   listing("exposure", ".csv"), listing("relapse", ".csv"),
                   listing("trials", ".csv"), validation if validation.is_file() else None,
                   listing("published", ".csv"), listing("costim", ".csv"),
                   listing("trials/contrasts", ".csv"))


def _grouped(paths: Sequence[Path]) -> dict[tuple[str, str], list[Path]]:
    groups: dict[tuple[str, str], list[Path]] = {}
    for p in paths:
        m = FIT_STEM.match(p.stem)
        if m:
            groups.setdefault((m["model"], m["growth"]), []).append(p)
    return groups


def settings_text(attrs: dict[str, str]) -> str:
    """``"4 chains × 500 draws after 500 tuning (target acceptance 0.9), seed 1, lognormal
    errors"`` from a fit's attributes."""
    try:
        s = json.loads(attrs.get("settings", "{}"))
    except ValueError:
        s = {}
    text = (f"{s.get('chains', '?')} chains × {s.get('draws', '?')} draws after "
            f"{s.get('tune', '?')} tuning (target acceptance {s.get('target_accept', '?')}), "
            f"seed {attrs.get('seed', '?')}, {s.get('likelihood', '?')} errors")
    return esc(text)


def _who(unit: str) -> str:
    return "all subjects (population fit)" if unit == POPULATION else f"subject {esc(unit)}"


def published_caption(table: Path, settings: str = "") -> str:
    """Caption of the comparison with published fits, with its agreement counts."""
    import pandas as pd

    df = pd.read_csv(table)
    ours = df[df["source"].str.startswith("cartfit")]
    agree = ours["agree"].astype(str).str.lower().eq("true")
    n_wells = ours.loc[~agree, "subject"].nunique()
    return ("Per-well posterior median and 5–95 % interval of the predator–prey model with "
            "logistic growth, converted to the published model's parameters and units, next to "
            "the published least-squares estimate ± 1.96 SE of the well pair (fitted to the "
            f"pair's mean){settings}. {int(agree.sum())} of {len(ours)} well × parameter "
            f"intervals overlap the published one; {n_wells} well(s) have at least "
            "one that does not. Notes in the table flag fits that failed their convergence "
            "checks and published values without a standard error; the cohort's README "
            "explains each disagreement.")


def items(results: Results, attrs: dict[Path, dict[str, str]]) -> list[Item]:
    """The report's figures, in report order, with captions stating their settings."""
    fig = results.root / "figures"
    by_stem = {p.stem: attrs[p] for p in results.fits}
    out: list[Item] = []
    for path in results.compare:
        m = MODELS_STEM.match(path.stem)
        if m:
            fitted = sorted(f"{a.get('model', '')}/{a.get('growth', '')}"
                            for s, a in by_stem.items() if s.endswith(f"_{m['unit']}"))
            out.append(Item("compare", f"all models: {_who(m['unit'])}", [path],
                            fig / f"compare_{path.stem}.png",
                            "PSIS-LOO expected log predictive density (elpd ± SE) of every "
                            f"fitted model and growth law ({esc(', '.join(fitted))}) on "
                            f"{_who(m['unit'])}: does the richer model earn its extra "
                            "parameters? Right: difference to the best fit ± SE of the "
                            "difference, with stacking weights. Pareto k > 0.7 marks "
                            "observations whose estimate is unreliable.", [path]))
            continue
        m = COMPARE_STEM.match(path.stem)
        if not m:
            continue
        growths = [a.get("growth", "") for s, a in by_stem.items()
                   if s.startswith(f"{m['model']}_") and s.endswith(f"_{m['unit']}")]
        out.append(Item("compare", f"{m['model']}: growth laws, {_who(m['unit'])}", [path],
                        fig / f"compare_{path.stem}.png",
                        f"PSIS-LOO expected log predictive density (elpd ± SE) of the "
                        f"{esc(m['model'])} model with each growth law "
                        f"({esc(', '.join(sorted(growths)))}) fitted to {_who(m['unit'])}; "
                        "right: difference to the best fit ± SE of the difference, with stacking "
                        "weights. Pareto k > 0.7 marks observations whose estimate is unreliable.",
                        [path]))
    for kind in ("bands", "vpc"):
        for path in results.fits:
            m, a = FIT_STEM.match(path.stem), attrs[path]
            if not m or (kind == "vpc" and a.get("mode") != POPULATION):
                continue
            what = (f"{esc(m['model'])} / {esc(m['growth'])} growth, {_who(m['unit'])}; "
                    f"{settings_text(a)}")
            caption = (
                "Measured data with the posterior median (line), 50 % and 90 % credible bands of "
                "the noise-free trajectory (shaded) and the 90 % prediction interval with "
                f"residual error (dashed): {what}. Values below the LLOQ are drawn as open "
                "triangles at the LLOQ (dotted line); they enter the likelihood as censored "
                "(Beal M3)."
                if kind == "bands" else
                f"Visual predictive check of {what}. Top: observed 5/50/95 % percentiles of the "
                "quantified measurements per visit bin (black) against 90 % prediction intervals "
                "of the same percentiles over posterior predictive replicates. Bottom: observed "
                "fraction below the LLOQ per bin against its 90 % prediction interval.")
            out.append(Item(kind, f"{m['model']} / {m['growth']}, {m['unit']}", [path],
                            fig / f"{kind}_{path.stem}.png", caption))
    for kind, paths in (("exposure", results.exposure), ("relapse", results.relapse),
                        ("trial", results.trials)):
        for (model, growth), group in _grouped(paths).items():
            fits = [a for s, a in by_stem.items() if s.startswith(f"{model}_{growth}_")]
            settings = f"; fits: {settings_text(fits[0])}" if fits else ""
            names = ", ".join(FIT_STEM.match(p.stem)["unit"] for p in group)
            caption = {
                "exposure": f"Posterior median and 5–95 % interval of the exposure metrics of "
                            f"{esc(model)} / {esc(growth)} growth for {len(group)} fitted unit(s) "
                            f"({esc(names)}), in the data's units{settings}. Open diamonds: true "
                            "values of a simulated cohort (its truth.csv), where present.",
                "relapse": f"Probability of relapse by each horizon per subject, split by the "
                           f"antigen status of the relapsing tumour, and the outcome split at the "
                           f"last horizon, from {esc(model)} / {esc(growth)} growth posterior "
                           f"draws with antigen-negative clones as a branching process"
                           f"{settings}.",
                "trial": f"Virtual trials simulated from the population posterior of "
                         f"{esc(model)} / {esc(growth)} growth, scenarios {esc(names)}: the "
                         f"predictive rate of each outcome and the 5–95 % interval of the "
                         f"proportion one trial arm would observe, posterior uncertainty of "
                         f"the population parameters included{settings}.",
            }[kind]
            out.append(Item(kind, f"{model} / {growth}", group,
                            fig / f"{kind}_{model}_{growth}.png", caption, group))
    for (model, growth), group in _grouped(results.contrasts).items():
        names = ", ".join(FIT_STEM.match(p.stem)["unit"].replace("_vs_", " − ") for p in group)
        out.append(Item("contrast", f"{model} / {growth}", group,
                        fig / f"contrast_{model}_{growth}.png",
                        f"Paired contrasts between virtual-trial arms of the {esc(model)} / "
                        f"{esc(growth)} population posterior ({esc(names)}): both arms hold the "
                        "same virtual patients (posterior draw, template subject, subject "
                        "effects), so each difference is taken patient by patient. Rates: "
                        "median and 5–95 % interval of the difference a two-arm trial would "
                        "observe (open circle: the predictive difference) and the posterior "
                        "probability that the arm's population rate is the higher. Exposure: "
                        "geometric mean ratio of the population, posterior median and 5–95 % "
                        "interval.", group))
    for path in results.costim:
        m = COSTIM_STEM.match(path.stem)
        if not m:
            continue  # the per-subject tables are shown under their contrast table
        fit = by_stem.get(f"{path.stem}_{POPULATION}")
        settings = f"; fit: {settings_text(fit)}" if fit else ""
        tables = [path] + [p for p in results.costim if p.stem.startswith(f"{path.stem}_")]
        out.append(Item("costim", f"{m['model']} / {m['growth']}", [path],
                        fig / f"costim_{path.stem}.png",
                        f"CD28 − 4-1BB differences from the {esc(m['model'])} / "
                        f"{esc(m['growth'])} population posterior: posterior median and 5–95 % "
                        "interval for the population-typical subjects (same initial states) and "
                        "for the fitted subjects' means, and the co-stimulation effect on each "
                        "parameter as a CD28 / 4-1BB ratio; P(>0) is the posterior probability "
                        f"that CD28 is higher{settings}. Tables: the contrasts, each subject's "
                        "homeostatic share of proliferation over days 0–14, and each subject's "
                        "CAR T re-expansion after a simulated antigen rechallenge.", tables))
    fits = [a for s, a in by_stem.items() if s.startswith("predator_prey_logistic_")]
    settings = f"; fits: {settings_text(fits[0])}" if fits else ""
    for path in results.published:
        out.append(Item("published", "predator_prey / logistic, per well", [path],
                        fig / f"published_{path.stem}.png", published_caption(path, settings),
                        [path]))
    for path in results.fits:
        m = FIT_STEM.match(path.stem)
        if m:
            out.append(Item("diagnostics", f"{m['model']} / {m['growth']}, {m['unit']}", [path],
                            fig / f"diagnostics_{path.stem}.png",
                            f"Convergence checks of {esc(m['model'])} / {esc(m['growth'])} growth, "
                            f"{_who(m['unit'])} ({settings_text(attrs[path])}): R-hat ≤ 1.01, "
                            "bulk ESS ≥ 400, no divergences, E-BFMI ≥ 0.3; rank plots of the six "
                            "quantities with the largest R-hat (flat histograms within the grey "
                            "band mean the chains agree)."))
    order = list(SECTIONS)
    return sorted(out, key=lambda item: order.index(item.kind))
