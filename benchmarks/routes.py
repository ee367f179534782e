"""Result record of one inference route and helpers shared by the routes."""

from __future__ import annotations

import os
import resource
import subprocess
import time
from dataclasses import dataclass, field

import numpy as np
from problem import QUANTITIES


@dataclass
class RouteResult:
    """What the comparison table needs from one route.

    ``draws`` maps each name of :data:`problem.QUANTITIES` to an array (chain, draw).
    """

    name: str
    compile_s: float
    sampling_s: float
    draws: dict[str, np.ndarray]
    divergences: int
    n_gradients: int | None = None  # leapfrog steps, warm-up included
    grad_s: float | None = None  # one log density + gradient, seconds
    sampling_cpu_s: float | None = None
    whole_s: float | None = None  # whole command, wall clock
    settings: str = ""
    notes: list[str] = field(default_factory=list)


def draws_from(theta: np.ndarray, log_y0: np.ndarray, sigma: np.ndarray) -> dict[str, np.ndarray]:
    """Split (chain, draw, k) arrays of theta (5), log_y0 (2) and sigma (2) into QUANTITIES."""
    cols = [theta[..., i] for i in range(5)] + [log_y0[..., 0], log_y0[..., 1]]
    cols += [sigma[..., 0], sigma[..., 1]]
    return {q: np.asarray(c, float) for q, c in zip(QUANTITIES, cols, strict=True)}


def run_timed(
    cmd: list[str], cpus: set[int], **kwargs
) -> tuple[subprocess.CompletedProcess, float, float]:
    """Run ``cmd`` pinned to ``cpus``; returns the process, wall seconds and CPU seconds."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run(
        cmd,
        preexec_fn=lambda: os.sched_setaffinity(0, cpus),
        capture_output=True,
        text=True,
        **kwargs,
    )
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return proc, wall, cpu


def pick_cpus(n: int) -> set[int]:
    """The first ``n`` CPUs this process may run on."""
    return set(sorted(os.sched_getaffinity(0))[:n])


def compiled_gradient(compiled):
    """``(fn, shared)``: the numba ``logp_dlogp`` of a model compiled by
    ``cartfit.inference.compiled.compile_model`` and the values of its shared variables (the
    data), to call as ``fn(x, *shared)``."""
    fn = compiled.logp_func.vm.jit_fn
    return fn, tuple(np.asarray(v.get_value()) for v in compiled.logp_func.get_shared())


def time_gradient(fn, shared, x: np.ndarray, n_evals: int) -> tuple[float, float]:
    """Seconds per ``fn(x, *shared)`` timed in a numba loop (no Python between calls): wall
    clock and CPU time of this thread (which other processes on a shared CPU do not inflate)."""
    import numba

    @numba.njit
    def loop(x, shared, n):
        acc = 0.0
        for _ in range(n):
            acc += fn(x, *shared)[0][()]
        return acc

    loop(x, shared, 2)
    t0, c0 = time.perf_counter(), time.thread_time()
    loop(x, shared, n_evals)
    return (time.perf_counter() - t0) / n_evals, (time.thread_time() - c0) / n_evals
