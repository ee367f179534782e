"""A one-screen text summary of a cohort (printed by ``cartfit validate``)."""

from __future__ import annotations

from cartfit.data.cohort import Cohort


def summarize(cohort: Cohort) -> str:
    """Subjects (with co-stimulation counts), analytes with units and counts, observations,
    BLQ count, time span and pre-infusion rows, as a few lines of text."""
    obs, subjects = cohort.observations, cohort.subjects
    costim = subjects["costim"].fillna("unknown").value_counts().sort_index()
    costim_text = ", ".join(f"{name} {n}" for name, n in costim.items())
    dose = subjects["dose"]
    lines = [
        f"cohort {cohort.meta['name']} ({cohort.path})",
        f"  subjects      {cohort.n_subjects} (costim: {costim_text})",
        f"  dose          {dose.min():.3g} to {dose.max():.3g} cells",
        f"  observations  {len(obs)} rows, {int(obs['blq'].sum())} below LLOQ, "
        f"{int((obs['time'] < 0).sum())} before infusion",
        f"  time span     day {obs['time'].min():g} to day {obs['time'].max():g}",
        "  analytes",
    ]
    for analyte, unit in cohort.units.items():
        rows = obs[obs["analyte"] == analyte]
        lines.append(
            f"    {analyte:<18} {unit:<16} {len(rows):>6} rows, {rows['subject'].nunique()} "
            f"subjects, {int(rows['blq'].sum())} BLQ"
        )
    extra = [c for c in subjects.columns if c not in ("dose", "costim", "line")]
    if extra:
        lines.append(f"  covariates    {', '.join(extra)}")
    lines.append(f"  sha256        {cohort.sha256[:16]}")
    return "\n".join(lines)
