"""The README.md written next to a simulated cohort: provenance, command and content."""

from __future__ import annotations

import pandas as pd

from cartfit.simulate.design import CohortDesign


def _count(mask: pd.Series) -> int:
    return int(mask.sum())


def cohort_readme(
    command: str,
    model: str,
    growth: str,
    seed: int,
    design: CohortDesign,
    observations: pd.DataFrame,
    subjects: pd.DataFrame,
) -> str:
    """Markdown description of a simulated cohort folder."""
    s = subjects
    n = len(s)
    relapse = s["relapse_antigen"]
    sched = design.schedule
    escape = []
    if "tumor_antigen_neg" in set(observations["analyte"]):
        escape.append(
            "- Antigen-negative disease arises stochastically: from "
            f"{design.clone_history_days:g} days before infusion, antigen-negative cells appear "
            "as a Poisson stream of rate μ·T_A(t) (T_A in cells, "
            f"{design.tumor_cells_per_unit:.0e} cells per {design.assays['tumor'].unit}) and "
            "grow as birth–death lineages (simulated exactly; most die out); a clone is "
            f"followed deterministically once it reaches {design.established_cells:g} cells. "
            "Whether a clone exists, and whether it outgrows the antigen-positive tumour "
            "after CAR T killing, differs by chance between subjects."
        )
    lines = [
        f"# Simulated cohort ({model}, {growth} growth, seed {seed})",
        "",
        "**Simulated data — virtual patients, not patient data.** Regenerate it byte for byte with",
        "",
        "```",
        command,
        "```",
        "",
        "## What is in it",
        "",
        f"- {n} subjects with {design.disease} treated with a CD19 CAR T product: "
        f"{_count(s['costim'] == '4-1BB')} 4-1BB ({design.products['4-1BB']}), "
        f"{_count(s['costim'] == 'CD28')} CD28 ({design.products['CD28']}); doses "
        f"{s['dose'].min():.1e}–{s['dose'].max():.1e} cells.",
        f"- Observed outcomes (`subjects.csv`): {_count(s['best_response'] == 'CR')} complete "
        f"remissions and {_count(s['best_response'] == 'NR')} non-responders by day "
        f"{design.response_day:g}; {_count(relapse == 'pos')} antigen-positive and "
        f"{_count(relapse == 'neg')} antigen-negative relapses (`relapse_day`, "
        "`relapse_antigen`).",
        "- Observations (`observations.csv`):",
    ]
    seen = set(observations["analyte"])
    for analyte, rows in observations.groupby("analyte", sort=True):
        pre = _count(rows["time"] < 0)
        lines.append(
            f"  - `{analyte}` in `{rows['unit'].iloc[0]}`: {len(rows)} rows, "
            f"{_count(rows['blq'] == 1)} below LLOQ {rows['lloq'].iloc[0]:g} (`blq=1`, empty "
            f"value)" + (f", {pre} before infusion" if pre else "") + "."
        )
    lines += [
        "",
        "## How it was made",
        "",
        f"- Visits at days {', '.join(f'{d:g}' for d in sched.days)} (CAR T at each; tumour "
        f"at days {', '.join(f'{d:g}' for d in sched.tumor_days)}) and tumour assessments "
        f"before infusion at days {', '.join(f'{d:g}' for d in sched.pre_infusion_days)}; "
        f"each visit jittered by up to ±{sched.jitter_fraction:.0%} of the gap to the previous "
        f"one (day 0 exact), post-infusion visits missed with probability "
        f"{sched.missed_probability:g}."
        + (
            f" CAR T phenotyped (memory and exhausted fractions) at days "
            f"{', '.join(f'{d:g}' for d in sched.phenotype_days)} where the CAR T result is "
            "quantified."
            if sched.phenotype_days
            else ""
        ),
        "- Log-normal assay noise (SD of ln: "
        + ", ".join(
            f"{a.analyte} {a.log_sd:g}" + (" on the log-odds" if a.upper is not None else "")
            for a in design.assays.values()
            if a.analyte in seen
        )
        + "); results below the LLOQ are reported as `blq=1`.",
        "- Between-subject variability: log-normal around typical values, with CD28 subjects "
        "expanding and contracting faster, and a latent class of low-fitness products that "
        "barely expand (primary non-response); the CAR T level at infusion is proportional to "
        "the dose. Pre-infusion tumour follows the untreated growth law backwards from day 0.",
        *escape,
        f"- A remission is a tumour result below {design.relapse_threshold:g} "
        f"{design.assays['tumor'].unit} by day {design.response_day:g}; a relapse is the first "
        "later result at or above it, antigen-negative when at least "
        f"{design.antigen_neg_fraction:.0%} of it is antigen-negative. Follow-up ends at the "
        f"relapse visit, and for non-responders after day {design.response_day:g}.",
        "",
        "## Files",
        "",
        "- `observations.csv`, `subjects.csv`, `cohort.yaml`: the cohort (data contract).",
        "- `truth.csv`: per subject the true parameters (`scaled_*` in model units, `measured_*` "
        "in the data's units), the true log states at infusion (`init_*`; -300 = absent), the "
        "noise-free exposure metrics (cmax, tmax, auc_0_28, c_day28, persistence_days, "
        "killing_exposure, tumor_nadir_log10_reduction, time_to_nadir, c_ctrl), `low_fitness`, "
        "the true (noise-free) and the observed response and relapse, and for the escape model "
        "`antigen_neg_cells_day0` and `escape_day` (day an antigen-negative clone reached "
        f"{design.established_cells:g} cells; negative = before infusion).",
        "- `truth.yaml`: scales between model and measured units, the population model, "
        "assays and schedule.",
        "",
    ]
    return "\n".join(lines)
