"""The one-subject benchmark problem shared by every route: data, priors and index maps.

Everything comes from cartfit itself (``prepare`` and ``initial_state_prior``) so that Stan and
``pm.ode`` see exactly the numbers cartfit's model builder sees: the same scaled log values,
censoring flags, prior medians and log-SDs, initial-state priors and residual-SD prior.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
OUT = HERE / "out"
CARTFIT = Path(sys.executable).absolute().with_name("cartfit")
MODEL, GROWTH = "predator_prey", "gompertz"
#: observable -> index of the log state it reads (predator–prey: u = ln B, v = ln C)
STATE_OF = {"tumor": 0, "car_t": 1}
#: quantities compared between routes (posterior means, ESS, R-hat)
QUANTITIES = (
    "growth_rate",
    "carrying_capacity",
    "kill_rate",
    "proliferation_rate",
    "death_rate",
    "log_tumor0",
    "log_car_t0",
    "sigma_car_t",
    "sigma_tumor",
)


@dataclass(frozen=True)
class Problem:
    """Numeric description of a one-subject predator–prey (Gompertz) fit."""

    cohort: Path
    subject: str
    ts: np.ndarray  # ODE output times > 0
    pre: np.ndarray  # (n_obs,) bool: pre-infusion tumour row
    state: np.ndarray  # (n_obs,) 0 tumour, 1 CAR T
    t_idx: np.ndarray  # (n_obs,) index into ts, -1 for day 0
    time: np.ndarray
    analyte: np.ndarray  # (n_obs,) 0 car_t, 1 tumor
    log_value: np.ndarray
    blq: np.ndarray
    log_m: np.ndarray
    tau: np.ndarray
    y0_mean: np.ndarray
    y0_sd: np.ndarray
    sigma_median: float
    sigma_log_sd: float
    parameter_names: tuple[str, ...]

    def stan_data(self, rtol: float, atol: float, max_steps: int = 100_000) -> dict:
        """The Stan program's data block (1-based indices)."""
        return {
            "N_t": len(self.ts),
            "ts": self.ts.tolist(),
            "N": len(self.time),
            "pre": self.pre.astype(int).tolist(),
            "state": (self.state + 1).tolist(),
            "t_idx": (self.t_idx + 1).tolist(),
            "time": self.time.tolist(),
            "analyte": (self.analyte + 1).tolist(),
            "log_value": self.log_value.tolist(),
            "blq": self.blq.astype(int).tolist(),
            "log_m": self.log_m.tolist(),
            "tau": self.tau.tolist(),
            "y0_mean": self.y0_mean.tolist(),
            "y0_sd": self.y0_sd.tolist(),
            "sigma_median": self.sigma_median,
            "sigma_log_sd": self.sigma_log_sd,
            "rtol": rtol,
            "atol": atol,
            "max_steps": max_steps,
        }


def load_problem(cohort: Path, subject: str = "S01") -> Problem:
    """Prepare the subject's data exactly as ``cartfit fit`` does."""
    from cartfit.data import load_cohort
    from cartfit.inference import priors as P
    from cartfit.inference.data import prepare
    from cartfit.models import get_model

    ode = get_model(MODEL, GROWTH)
    data = prepare(load_cohort(cohort), ode, [subject])
    if data.analytes != ("car_t", "tumor"):
        raise RuntimeError(f"expected analytes car_t and tumor, got {data.analytes}")
    obs = data.obs
    t = obs["time"].to_numpy(float)
    pre = obs["pre"].to_numpy(bool)
    ts = np.unique(t[t > 0])
    t_idx = np.where(t > 0, np.searchsorted(ts, t), -1)
    mean, sd = P.initial_state_prior(ode, data)
    return Problem(
        cohort=Path(cohort),
        subject=subject,
        ts=ts,
        pre=pre,
        state=obs["analyte"].map(STATE_OF).to_numpy(int),
        t_idx=t_idx,
        time=t,
        analyte=obs["analyte_idx"].to_numpy(int),
        log_value=obs["log_value"].to_numpy(float),
        blq=obs["blq"].to_numpy(bool),
        log_m=np.log([p.median for p in ode.parameters]),
        tau=np.array([p.log_sd for p in ode.parameters]),
        y0_mean=mean[0],
        y0_sd=sd[0],
        sigma_median=float(P.SIGMA_MEDIAN),
        sigma_log_sd=float(P.SIGMA_LOG_SD),
        parameter_names=ode.parameter_names,
    )


def cartfit_command(sub: str, *args: object, **options: object) -> list[str]:
    """``cartfit SUB ARGS --option value ...`` (``True`` gives a bare flag)."""
    cmd = [str(CARTFIT), sub, *map(str, args)]
    for key, value in options.items():
        cmd += [f"--{key.replace('_', '-')}"] + ([] if value is True else [str(value)])
    return cmd


def simulate_subject_cohort(out: Path, seed: int) -> Path:
    """``cartfit simulate`` one predator–prey (Gompertz) subject into ``out``."""
    cmd = cartfit_command("simulate", model=MODEL, growth=GROWTH, subjects=1, seed=seed, out=out)
    subprocess.run(cmd, check=True, capture_output=True, text=True)
    return out


def write_json(path: Path, obj: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=1, default=float))
