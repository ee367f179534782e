"""Run the Stan route of ``inference.py`` inside the benchmark's own environment (pystan 3).

Usage: ``benchmarks/.stan-env/bin/python stan_run.py REQUEST.json RESULT.json``. The request
names the Stan program, its data, the sampler settings, the CPUs to run on and a point of the
unconstrained space at which to time one log density + gradient. The result holds the draws,
the sampler statistics and the timings. Only pystan and numpy are imported here.
"""

from __future__ import annotations

import json
import os
import re
import sys
import time
from pathlib import Path

import numpy as np

CLK = os.sysconf("SC_CLK_TCK")


def _descendants(pid: int) -> list[int]:
    out = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        kids = (task / "children").read_text().split()
        for k in kids:
            out += [int(k), *_descendants(int(k))]
    return out


def _cpu_by_pid() -> dict[int, float]:
    """User + system CPU seconds of every live descendant process (httpstan's workers)."""
    cpu = {}
    for pid in _descendants(os.getpid()):
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except FileNotFoundError:
            continue
        cpu[pid] = (int(fields[11]) + int(fields[12])) / CLK
    return cpu


def _elapsed(fit) -> list[dict[str, float]]:
    """Per chain: Stan's own 'Elapsed Time' (warm-up, sampling) and 'Gradient evaluation took'."""
    chains = []
    for raw in fit.stan_outputs:
        text = raw.decode(errors="replace")
        rec = {}
        for key, pat in (
            ("warmup_s", r"([0-9.eE+-]+) seconds \(Warm-up\)"),
            ("sampling_s", r"([0-9.eE+-]+) seconds \(Sampling\)"),
            ("first_gradient_s", r"Gradient evaluation took ([0-9.eE+-]+) seconds"),
        ):
            m = re.search(pat, text)
            if m:
                rec[key] = float(m.group(1))
        chains.append(rec)
    return chains


def _time_gradients(posterior, point: list[float], n: int) -> dict[str, float]:
    """Seconds per log_prob_grad: through pystan (HTTP) and through the extension module."""
    import httpstan.models

    out = {"log_prob": posterior.log_prob(point), "grad": posterior.grad_log_prob(point)}
    t0 = time.perf_counter()
    for _ in range(n):
        posterior.grad_log_prob(point)
    out["pystan_grad_log_prob_s"] = (time.perf_counter() - t0) / n
    module = httpstan.models.import_services_extension_module(posterior.model_name)
    t0 = time.perf_counter()
    for _ in range(n * 10):
        module.log_prob_grad(posterior.data, point, True)
    out["extension_log_prob_grad_s"] = (time.perf_counter() - t0) / (n * 10)
    t0 = time.perf_counter()
    for _ in range(n * 10):
        module.log_prob(posterior.data, point, True)
    out["extension_log_prob_s"] = (time.perf_counter() - t0) / (n * 10)
    return out


def main(request_path: str, result_path: str) -> None:
    req = json.loads(Path(request_path).read_text())
    os.sched_setaffinity(0, set(req["cpus"]))
    import stan

    code = Path(req["program"]).read_text()
    if req.get("fresh"):  # compile from scratch, as on a first run
        import httpstan.cache
        import httpstan.models

        httpstan.cache.delete_model_directory(httpstan.models.calculate_model_name(code))
    t0 = time.perf_counter()
    posterior = stan.build(code, data=req["data"], random_seed=req["seed"])
    compile_s = time.perf_counter() - t0
    cpu0 = _cpu_by_pid()
    t1 = time.perf_counter()
    init = {"init": req["init"]} if req.get("init") else {}
    fit = posterior.sample(
        num_chains=req["chains"],
        num_warmup=req["warmup"],
        num_samples=req["draws"],
        save_warmup=True,
        **init,
        refresh=0,
    )
    sampling_s = time.perf_counter() - t1
    cpu1 = _cpu_by_pid()
    sampling_cpu_s = sum(v - cpu0.get(pid, 0.0) for pid, v in cpu1.items())
    w, d, c = req["warmup"], req["draws"], req["chains"]

    def chains_draws(
        name: str,
    ) -> np.ndarray:  # (..., warmup+draws, chains) -> (chains, draws, ...)
        a = np.asarray(fit[name]).reshape(-1, w + d, c)
        return np.moveaxis(a[:, w:, :], [0, 1, 2], [2, 1, 0])

    result = {
        "compile_s": compile_s,
        "sampling_s": sampling_s,
        "sampling_cpu_s": sampling_cpu_s,
        "chain_times": _elapsed(fit),
        "draws": {k: chains_draws(k).tolist() for k in ("theta", "log_y0", "sigma")},
        "divergent": int(np.asarray(fit["divergent__"]).reshape(w + d, c)[w:].sum()),
        "n_leapfrog_total": int(np.asarray(fit["n_leapfrog__"]).sum()),
        "n_leapfrog_sampling": int(np.asarray(fit["n_leapfrog__"]).reshape(w + d, c)[w:].sum()),
        "treedepth_max": int(np.asarray(fit["treedepth__"]).max()),
        "stan_version": stan.__version__,
    }
    if req.get("point") is not None:
        result.update(_time_gradients(posterior, req["point"], req.get("n_grad", 200)))
    Path(result_path).write_text(json.dumps(result))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
