"""``cartfit fit``: load a cohort, build the model, sample with nutpie, write one NetCDF file.

The file holds posterior, posterior predictive, pointwise log-likelihood (censored rows
included), observed and constant data, sample stats and provenance (see
:mod:`cartfit.inference.fitfile`). It is written to a temporary name and renamed, so a killed run
never leaves a partial fit behind.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pymc as pm
import xarray as xr

from cartfit import __version__
from cartfit.errors import CartfitError
from cartfit.inference import priors as P
from cartfit.inference.builder import (
    build_model,
    centred_parameters,
    covariate_matrix,
    covariate_parameters,
    fixed_parameters,
)
from cartfit.inference.data import FitData, prepare
from cartfit.inference.diagnostics import Diagnostics, diagnose
from cartfit.inference.divergences import POSITION_STATS, divergence_note, locate_divergences
from cartfit.inference.predict import pointwise_loglik
from cartfit.inference.sampling import (
    compile_sampler,
    default_starts,
    large_cohort_geometry,
    sample_posterior,
)
from cartfit.inference.stiffness import CAPPED_SHARE, locate_stiffness, stiffness_note
from cartfit.models import get_model
from cartfit.models.base import ODEModel


@dataclass(frozen=True)
class FitSettings:
    """Sampler settings (nutpie NUTS)."""

    chains: int = 4
    tune: int = 1000
    draws: int = 1000
    seed: int = 20261127
    likelihood: str = "lognormal"
    cores: int = 2
    target_accept: float = 0.9
    max_treedepth: int = 10
    low_rank_mass_matrix: bool = True  # nutpie's low-rank modified mass matrix (else diagonal)
    #: large-cohort geometry (Newton-polished start, per-subject centring weights); None: for
    #: population fits of at least sampling.LARGE_COHORT subjects
    large_cohort: bool | None = None
    #: L-BFGS starts before sampling (0: start at the prior median); None: 24 for a one-subject
    #: fit, 6 for a population (sampling.default_starts)
    n_starts: int | None = None
    rtol: float = 1e-5
    atol: float = 1e-5
    progress: bool = True

    def __post_init__(self):
        """Refuse settings nutpie would fail on (``tune = 0`` panics inside the sampler)."""
        for name in ("chains", "tune", "draws", "cores", "max_treedepth"):
            if getattr(self, name) < 1:
                raise CartfitError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.n_starts is not None and self.n_starts < 0:
            raise CartfitError(f"n_starts must be at least 0, got {self.n_starts}")
        if not 0.0 < self.target_accept < 1.0:
            raise CartfitError(f"target_accept must lie in (0, 1), got {self.target_accept}")
        if not (self.rtol > 0 and self.atol > 0):
            raise CartfitError(f"rtol and atol must be positive, got {self.rtol}, {self.atol}")


@dataclass
class FitReport:
    """What ``cartfit fit`` prints: where the file went, timings and the diagnostics."""

    path: Path
    diagnostics: Diagnostics
    seconds: dict[str, float]

    @property
    def converged(self) -> bool:
        return self.diagnostics.converged

    def table(self) -> str:
        t = ", ".join(f"{k} {v:.1f} s" for k, v in self.seconds.items())
        cols = ["variable", "mean", "sd", "r_hat", "ess_bulk", "ess_tail"]
        tab = self.diagnostics.table[cols].to_string(index=False, float_format=lambda x: f"{x:.4g}")
        return f"{tab}\n{self.diagnostics.text()}\nwrote {self.path} ({t})"


def _summary_vars(post, population: bool) -> list[str]:
    names = ["theta", "log_y0", "sigma"]
    if population:
        names += ["mu_free" if "mu_free" in post.data_vars else "mu", "omega_free"] + [
            str(v)
            for v in post.data_vars
            if str(v).startswith("beta_") and str(v).endswith("_free")
        ]
    return names


def build_with_settings(
    model: ODEModel, data: FitData, population: bool, settings: FitSettings
) -> pm.Model:
    """The PyMC model of a fit with the likelihood and solver tolerances of ``settings`` (fits
    and their leave-one-out refits must be built alike)."""
    return build_model(
        model,
        data,
        population=population,
        likelihood=settings.likelihood,
        rtol=settings.rtol,
        atol=settings.atol,
    )


def _natural(log_scaled: np.ndarray, scale: np.ndarray) -> np.ndarray:
    return np.exp(log_scaled) * scale


def _initial_car_t_text(data: FitData) -> str:
    per_dose = data.prior_overrides.get(P.INITIAL_CAR_T)
    if per_dose is not None:
        return (
            f"Normal(ln({per_dose.get('median', 1.0)} dose / car_t scale), "
            f"{per_dose.get('log_sd', P.C0_LOG_SD)}) (cohort.yaml)"
        )
    return f"Normal(ln({P.C0_RELATIVE} dose / median dose), {P.C0_LOG_SD})"


def assemble(
    idata,
    pm_model: pm.Model,
    model: ODEModel,
    data: FitData,
    settings: FitSettings,
    cohort,
    population: bool,
    diagnostics: Diagnostics,
) -> xr.DataTree:
    """Add log-likelihood, posterior predictive, data groups and provenance to a sampled tree."""
    obs = data.obs
    post_ds = idata["posterior"].to_dataset()
    n_chain, n_draw = post_ds.sizes["chain"], post_ds.sizes["draw"]
    # the predictions of the sampler's own log density at each draw (its compiled kernel)
    flat = post_ds[["theta", "log_y0", "sigma"]].stack(sample=("chain", "draw"))
    flat = flat.transpose("sample", ...)
    mu = pm_model.cartfit_predict(flat["theta"].values, flat["log_y0"].values)
    sigma = flat["sigma"].values[:, obs["analyte_idx"].to_numpy()]
    log_value = obs["log_value"].to_numpy()
    blq = obs["blq"].to_numpy(dtype=bool)
    loglik = pointwise_loglik(mu, sigma, log_value, blq, settings.likelihood)
    rng = np.random.default_rng(settings.seed + 1)
    noise = rng.standard_normal(mu.shape)
    if settings.likelihood == "student_t":
        noise = rng.standard_t(P.STUDENT_T_NU, mu.shape)
    scale = obs["analyte"].map(data.scales).to_numpy()
    shape = (n_chain, n_draw, len(obs))
    dims = ("chain", "draw", "obs")
    coords = {
        "chain": post_ds["chain"].values,
        "draw": post_ds["draw"].values,
        "obs": np.arange(len(obs)),
    }
    ppc_y = xr.DataArray(
        _natural((mu + sigma * noise).reshape(shape), scale), dims=dims, coords=coords
    )
    ll_y = xr.DataArray(loglik.reshape(shape), dims=dims, coords=coords)
    post = idata["posterior"].to_dataset()
    groups = {
        "posterior": post,
        "posterior_predictive": xr.Dataset({"y": ppc_y}),
        "log_likelihood": xr.Dataset({"y": ll_y}),
        "observed_data": xr.Dataset(
            {"y": ("obs", _natural(obs["log_value"].to_numpy(), scale))},
            coords={"obs": np.arange(len(obs))},
        ),
        "constant_data": xr.Dataset(
            {
                "obs_subject": ("obs", obs["subject"].astype(str).to_numpy()),
                "obs_time": ("obs", obs["time"].to_numpy(dtype=float)),
                "obs_analyte": ("obs", obs["analyte"].astype(str).to_numpy()),
                "obs_lloq": ("obs", obs["lloq"].to_numpy(dtype=float)),
                "obs_blq": ("obs", obs["blq"].to_numpy(dtype=np.int64)),
                "scale": ("analyte", np.array([data.scales[a] for a in data.analytes])),
                "subject_dose": (
                    "subject",
                    np.exp(data.log_dose_rel)
                    * float(np.median(cohort.subjects["dose"].to_numpy(dtype=float))),
                ),
                "subject_costim": (
                    "subject",
                    data.covariates.get("costim", np.full(data.n_subjects, ""))
                    .astype(str)
                    .to_numpy(),
                ),
            },
            coords={
                "obs": np.arange(len(obs)),
                "analyte": list(data.analytes),
                "subject": list(data.subjects),
            },
        ),
        "sample_stats": idata["sample_stats"]
        .to_dataset()
        .drop_vars(list(POSITION_STATS), errors="ignore"),
    }
    centring = getattr(pm_model, "cartfit_centring", None)
    if centring is not None:  # the weights eta was sampled under (cartfit.inference.centring)
        groups["constant_data"]["centring"] = xr.DataArray(
            np.asarray(centring.weights.get_value(), float),
            dims=("subject", "varying_parameter"),
            coords={"varying_parameter": list(pm_model.coords["varying_parameter"])},
        )
    tree = xr.DataTree.from_dict(groups)
    priors = P.parameter_priors(model, data)
    from cartfit.versions import software_versions

    tree.attrs.update(
        {
            "model": model.name,
            "growth": model.growth or "",
            "mode": "population" if population else "subject",
            "subjects": json.dumps(list(data.subjects)),
            "cartfit_version": __version__,
            "data_sha256": cohort.sha256,
            "cohort": str(cohort.path),
            "seed": str(settings.seed),
            "sampler": "nutpie NUTS (numba backend)",
            "settings": json.dumps(
                asdict(settings)
                | {
                    "n_starts": default_starts(pm_model, settings),
                    "large_cohort": large_cohort_geometry(pm_model, settings),
                }
            ),
            "priors": json.dumps(priors),
            "inference_priors": json.dumps(
                {
                    "sigma": f"LogNormal(ln {P.SIGMA_MEDIAN}, {P.SIGMA_LOG_SD}) per analyte",
                    "initial_tumor": f"Normal(ln baseline, {P.B0_LOG_SD_KNOWN}) if a baseline "
                    f"is known, else Normal(0, {P.B0_LOG_SD_UNKNOWN}) (scaled units)",
                    "initial_car_t": _initial_car_t_text(data),
                    "minor_states": f"fractions {P.MINOR_FRACTION} of the main state, "
                    f"log-SD {P.MINOR_LOG_SD}",
                    "omega": f"HalfNormal({P.OMEGA_SCALE}) (population fits)",
                    "beta": f"Normal(0, {model.extras.get('covariate_sd', P.BETA_SD)}) on "
                    f"{', '.join(covariate_parameters(model))} (population fits)",
                    "student_t_nu": P.STUDENT_T_NU,
                }
            ),
            "covariates": json.dumps(list(covariate_matrix(data, model).columns))
            if population
            else "[]",
            "centred_parameters": json.dumps(list(centred_parameters(model, data)))
            if population
            else "[]",
            "fixed_parameters": json.dumps(list(fixed_parameters(model))) if population else "[]",
            "units": json.dumps(dict(cohort.units)),
            "cohort_meta": json.dumps(cohort.meta, default=str),
            "diagnostics": diagnostics.to_json(),
            "software": json.dumps(software_versions()),
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
        }
    )
    return tree


def compile_fit(
    cohort_dir: str | Path,
    *,
    model: str,
    growth: str,
    subject: str | None = None,
    population: bool = False,
    settings: FitSettings | None = None,
) -> float:
    """Compile the log density that :func:`fit_cohort` with the same arguments would sample,
    into the numba and PyTensor compile caches, without sampling; return the seconds it took.

    A fit of the same structure then loads it (a few seconds instead of the 40-70 s of a first
    compile), so a workflow can compile its fits' structures side by side, one core each,
    before the fits, which sample on all cores. The solver without sensitivities, which the
    fit's diagnostics and the analyses use, is compiled too."""
    from cartfit.inference.predict import solve_draws

    settings = settings or FitSettings()
    _, ode, _, pm_model = _built(cohort_dir, model, growth, subject, population, settings)
    t0 = time.perf_counter()
    compile_sampler(pm_model, default_starts(pm_model, settings) > 0)
    # the solver without sensitivities, which the fit's diagnostics and every analysis use
    solve_draws(ode, np.ones((1, 1, ode.n_params)), np.zeros((1, 1, ode.n_states)),
                np.array([0.0, 1.0]))  # fmt: skip
    return time.perf_counter() - t0


def _built(cohort_dir, model: str, growth: str, subject: str | None, population: bool,
           settings: FitSettings) -> tuple:  # fmt: skip
    """``(cohort, ode, data, pm_model)`` of a fit of one subject or of the population."""
    from cartfit.data import load_cohort

    if (subject is None) == (not population):
        raise CartfitError("fit: give exactly one of --subject ID or --population")
    cohort = load_cohort(cohort_dir)
    ode = get_model(model, growth)
    data = prepare(cohort, ode, None if population else [subject])
    return cohort, ode, data, build_with_settings(ode, data, population, settings)


def fit_cohort(
    cohort_dir: str | Path,
    *,
    model: str,
    growth: str,
    subject: str | None = None,
    population: bool = False,
    out: str | Path,
    settings: FitSettings | None = None,
) -> FitReport:
    """Fit ``model`` with ``growth`` to one subject or the whole cohort and write ``out``."""
    from cartfit.io import atomic_path

    settings = settings or FitSettings()
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    cohort, ode, data, pm_model = _built(cohort_dir, model, growth, subject, population, settings)
    timings["build"] = time.perf_counter() - t0
    sampled = sample_posterior(pm_model, settings)
    idata, start = sampled.idata, sampled.start
    timings |= sampled.seconds
    t1 = time.perf_counter()
    post = idata["posterior"]
    diagnostics = diagnose(post, idata["sample_stats"], _summary_vars(post, population))
    if start is not None:
        diagnostics.starts = start.log_densities
        if start.n_distinct > 1:
            stopped = (
                f"; {start.n_unconverged} of them stopped at the iteration limit, not at an optimum"
                if start.n_unconverged
                else ""
            )
            optima = ", ".join(f"{v:.1f} ({n})" for v, n in start.distinct())
            diagnostics.notes.append(
                f"multi-start optimisation found {start.n_distinct} distinct optima among "
                f"{len(start.log_densities)} starts (log density, and starts ending there: "
                f"{optima}{stopped}); sampling started around the best"
            )
    if diagnostics.n_divergent:
        located = locate_divergences(pm_model, idata["sample_stats"], data.obs, sampled.logp_dlogp)
        diagnostics.divergences = located.to_dict("records")
        note = divergence_note(located, diagnostics.n_divergent)
        if note:
            diagnostics.notes.append(note)
    n_transitions = settings.chains * settings.draws
    if diagnostics.n_max_treedepth >= CAPPED_SHARE * n_transitions:
        located = locate_stiffness(pm_model, sampled.x_draws, data.obs, sampled.logp_dlogp)
        diagnostics.stiffness = located.to_dict("records")
        note = stiffness_note(located, diagnostics.n_max_treedepth, n_transitions)
        if note:
            diagnostics.notes.append(note)
    t2 = time.perf_counter()
    timings["diagnostics"] = t2 - t1
    tree = assemble(idata, pm_model, ode, data, settings, cohort, population, diagnostics)
    out = Path(out)
    with atomic_path(out) as tmp:
        tree.to_netcdf(tmp, engine="netcdf4")
    timings["predictive+write"] = time.perf_counter() - t2
    report = FitReport(out, diagnostics, timings)
    if not report.converged:
        print("cartfit fit: " + "; ".join(diagnostics.problems), file=sys.stderr)
    return report
