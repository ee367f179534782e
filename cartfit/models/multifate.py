r"""Multi-fate CAR T model: effector, memory and exhausted cells driven by antigen.

.. math::

    \frac{dE}{dt} &= \beta_E \phi_{hi} E - d_E E - k_{EM} \phi_{lo} E - k_{EX} \phi_{hi} E
                     + k_{ME} \phi_{hi} M \\
    \frac{dM}{dt} &= h(t) M + k_{EM} \phi_{lo} E - k_{ME} \phi_{hi} M - d_M M \\
    \frac{dX}{dt} &= k_{EX} \phi_{hi} E - d_X X \\
    \frac{dT}{dt} &= g(T) - k E T

with antigen ``A = T``, :math:`\phi_{hi} = A/(A + K_A)`, :math:`\phi_{lo} = 1 - \phi_{hi}` and
homeostatic proliferation of memory :math:`h(t) = \alpha_h c(t)/(K_C + c(t))`, where
:math:`c(t) = (1+\rho)/(1 + \rho(1 - D e^{-t/\tau}))` is the homeostatic cytokine after
lymphodepletion of depth ``D`` at its quasi-steady state (see :mod:`cartfit.models.cytokine`:
the cytokine is a known function of time, not a state). Blood qPCR or flow sees
``E + M + X``. States are ``ln E, ln M, ln X, ln T``; all must start positive.

Symbols and units (CAR T in units of the cohort's reference CAR T level, tumour in units of its
reference burden): ``K_A`` activation threshold (scaled tumour); ``β_E`` antigen-driven
effector proliferation, ``d_E`` effector death, ``k_EM`` memory formation, ``k_EX``
exhaustion, ``k_ME`` memory reactivation, ``d_M`` memory death, ``d_X`` exhausted death,
``α_h`` maximal homeostatic proliferation (all 1/day); ``k`` killing (1/(scaled CAR T · day));
``K_C`` half-saturating cytokine (× baseline); ``D`` lymphodepletion depth (fraction, a subject
covariate); ``ρ = γL_0/δ`` consumption-to-clearance ratio (dimensionless); ``τ`` lymphocyte
recovery time (day); ``g`` the tumour growth law.

Default priors and their sources are in :mod:`cartfit.models.multifate_priors`.

References: Kirouac et al., Nat Biotechnol 41:1606 (2023) (effector/memory/exhausted model
with an antigen switch); Kimmel et al., Front Immunol 12:634 (2021).
"""

from __future__ import annotations

import numba
import numpy as np

from cartfit.growth.base import GrowthLaw
from cartfit.models.base import ODEModel, fused_kernel, pure_kernels
from cartfit.models.cytokine import relative_cytokine
from cartfit.models.logsum import LogSumRatio
from cartfit.models.multifate_priors import COSTIM_PRESETS, INITIAL_FRACTIONS, PARAMETERS

#: parameters with subject effects in a population fit (kill rate last: it stays non-centred).
#: Memory death is shared: the late CAR T readings that set it are mostly below the LLOQ, and
#: with a centred subject effect its between-subject SD collapsed to 1e-4 on data/example (a
#: funnel whose neck held two of four chains at step sizes of 1e-5 to 1e-7).
SUBJECT_VARYING = (
    "growth_rate",
    "effector_proliferation",
    "effector_death",
    "kill_rate",
)

#: cytokine constants held at their prior medians in population fits (the depth ``D`` is set
#: per subject from a ``lymphodepletion`` column where the cohort has one)
POPULATION_FIXED = (
    "cytokine_half_saturation",
    "lymphodepletion",
    "cytokine_consumption_ratio",
    "lymphocyte_recovery_time",
)


def make_multifate(growth: GrowthLaw) -> ODEModel:
    """Compose the multi-fate model with a tumour growth law."""
    per_capita = growth.per_capita
    per_capita_jac = growth.per_capita_jac
    n_g = growth.n_params

    @numba.njit(error_model="numpy")
    def rhs_into(t, y, params, dy):
        q = params[n_g:]
        k_a, beta, d_e, k_em, k_ex = q[0], q[1], q[2], q[3], q[4]
        k_me, d_m, d_x, k = q[5], q[6], q[7], q[8]
        e, m, x, u = y[0], y[1], y[2], y[3]
        phi_hi = 1.0 / (1.0 + k_a * np.exp(-u))  # A / (A + K_A)
        phi_lo = 1.0 - phi_hi
        c = relative_cytokine(t, q[11], q[12], q[13], np.empty(3))  # c(t) after depletion
        h = q[9] * c / (q[10] + c)  # h = α_h c / (K_C + c)
        # d ln E/dt, d ln M/dt, d ln X/dt, d ln T/dt
        dy[0] = (beta - k_ex) * phi_hi - d_e - k_em * phi_lo + k_me * phi_hi * np.exp(m - e)
        dy[1] = h + k_em * phi_lo * np.exp(e - m) - k_me * phi_hi - d_m
        dy[2] = k_ex * phi_hi * np.exp(e - x) - d_x
        dy[3] = per_capita(u, params) - k * np.exp(e)

    @numba.njit(error_model="numpy")
    def jac_into(t, y, params, jy, jp):
        # jy (4, 4) and jp (4, n_params) arrive zeroed; only non-zero entries are written
        q = params[n_g:]
        k_a, beta, k_em, k_ex, k_me, k = q[0], q[1], q[3], q[4], q[5], q[8]
        alpha_h, k_c = q[9], q[10]
        e, m, x, u = y[0], y[1], y[2], y[3]
        phi_hi = 1.0 / (1.0 + k_a * np.exp(-u))
        phi_lo = 1.0 - phi_hi
        dphi_du = phi_hi * phi_lo
        dphi_dka = -phi_hi * phi_lo / k_a
        r_me, r_em, r_ex = np.exp(m - e), np.exp(e - m), np.exp(e - x)
        dc = np.empty(3)
        c = relative_cytokine(t, q[11], q[12], q[13], dc)
        dh_dc = alpha_h * k_c / (k_c + c) ** 2
        de_dphi = beta - k_ex + k_em + k_me * r_me
        jy[0, 0] = -k_me * phi_hi * r_me
        jy[0, 1] = k_me * phi_hi * r_me
        jy[0, 3] = de_dphi * dphi_du
        dm_dphi = -k_em * r_em - k_me
        jy[1, 0] = k_em * phi_lo * r_em
        jy[1, 1] = -k_em * phi_lo * r_em
        jy[1, 3] = dm_dphi * dphi_du
        jy[2, 0] = k_ex * phi_hi * r_ex
        jy[2, 2] = -k_ex * phi_hi * r_ex
        jy[2, 3] = k_ex * r_ex * dphi_du
        _, jy[3, 3] = per_capita_jac(u, params, jp, 3)
        jy[3, 0] = -k * np.exp(e)
        o = n_g
        jp[0, o] = de_dphi * dphi_dka
        jp[0, o + 1] = phi_hi
        jp[0, o + 2] = -1.0
        jp[0, o + 3] = -phi_lo
        jp[0, o + 4] = -phi_hi
        jp[0, o + 5] = phi_hi * r_me
        jp[1, o] = dm_dphi * dphi_dka
        jp[1, o + 3] = phi_lo * r_em
        jp[1, o + 5] = -phi_hi
        jp[1, o + 6] = -1.0
        jp[1, o + 9] = c / (k_c + c)
        jp[1, o + 10] = -alpha_h * c / (k_c + c) ** 2
        jp[1, o + 11] = dh_dc * dc[0]
        jp[1, o + 12] = dh_dc * dc[1]
        jp[1, o + 13] = dh_dc * dc[2]
        jp[2, o] = k_ex * r_ex * dphi_dka
        jp[2, o + 4] = phi_hi * r_ex
        jp[2, o + 7] = -1.0
        jp[3, o + 8] = -np.exp(e)

    rhs, jac = pure_kernels(rhs_into, fused_kernel(rhs_into, jac_into), 4, n_g + 14)

    def killing_rate(log_states, params):
        """Per-capita kill rate of the tumour by effectors, k E (1/day)."""
        return params[n_g + 8] * np.exp(np.asarray(log_states)[..., 0])

    def initial_state(tumor, car_t, memory_fraction=None, exhausted_fraction=None):
        """Log states from scaled tumour and infused CAR T, split into E, M and X."""
        f_m = INITIAL_FRACTIONS["memory"] if memory_fraction is None else memory_fraction
        f_x = INITIAL_FRACTIONS["exhausted"] if exhausted_fraction is None else exhausted_fraction
        return np.log(np.array([car_t * (1 - f_m - f_x), car_t * f_m, car_t * f_x, tumor]))

    return ODEModel(
        name="multifate",
        growth=growth.name,
        states=("log_effector", "log_memory", "log_exhausted", "log_tumor"),
        parameters=(*growth.parameters, *PARAMETERS),
        rhs=rhs,
        jac=jac,
        rhs_into=rhs_into,
        jac_into=jac_into,
        observables={
            "tumor": LogSumRatio((3,)),
            "car_t": LogSumRatio((0, 1, 2)),
            # phenotype data: ln M/(E + M + X) and ln X/(E + M + X)
            "car_t_memory_fraction": LogSumRatio((1,), (0, 1, 2)),
            "car_t_exhausted_fraction": LogSumRatio((2,), (0, 1, 2)),
        },
        equations=(
            r"\frac{dE}{dt} = \beta_E\phi_{hi}E - d_E E - k_{EM}\phi_{lo}E - k_{EX}\phi_{hi}E"
            r" + k_{ME}\phi_{hi}M,\quad \frac{dM}{dt} = h(t)M + k_{EM}\phi_{lo}E"
            r" - k_{ME}\phi_{hi}M - d_M M,\quad \frac{dX}{dt} = k_{EX}\phi_{hi}E - d_X X,\quad "
            r"\frac{dT}{dt} = g(T) - kET"
        ),
        extras={
            "growth_law": growth,
            "killing": killing_rate,
            "tumor_states": (3,),
            "car_t_states": (0, 1, 2),
            "initial_state": initial_state,
            "costim_presets": COSTIM_PRESETS,
            "covariates": {"lymphodepletion": "lymphodepletion"},
            # population fits: blood CAR T (E + M + X) and tumour readings inform per subject
            # only the expansion, contraction, killing and tumour growth, so only those have
            # subject effects; persistence, phenotype switching and cytokine parameters are shared
            "shared_parameters": tuple(
                n
                for n in (*growth.parameter_names, *(p.name for p in PARAMETERS))
                if n not in SUBJECT_VARYING
            ),
            "centred_parameters": SUBJECT_VARYING[:-1],
            # population fits hold the cytokine constants at their published values: blood
            # CAR T sees the homeostatic term only through alpha_h c(t)/(K_C + c(t)), and
            # estimating K_C, rho, tau and D beside alpha_h gave four curved, flat directions
            "population_fixed": POPULATION_FIXED,
            # co-stimulation acts on the parameters its presets move, and on killing
            "covariate_parameters": (*COSTIM_PRESETS["CD28"], "kill_rate"),
            # the presets differ by factors up to 10 (exhaustion, activation threshold), i.e.
            # ln 10 = 2.3: with SD 1.0 that published difference sat at 2.3 SD and was shrunk
            # (simulated CD28 exhaustion x10 came out at x3.7, 90 % interval x1.2-x9.4), so SD
            # 1.5 puts it at 1.5 SD
            "covariate_sd": 1.5,
        },
    )
