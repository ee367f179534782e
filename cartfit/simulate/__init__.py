"""Virtual patients and cohorts: the reference solver, the observation model and the simulator."""

from cartfit.simulate.cohort import simulate_cohort, simulate_tables
from cartfit.simulate.design import CohortDesign
from cartfit.simulate.emergence import CloneSettings
from cartfit.simulate.measurement import Assay
from cartfit.simulate.observe import simulate_observations
from cartfit.simulate.reference import SolverError, solve_natural, solve_reference
from cartfit.simulate.schedule import VisitSchedule, draw_visits
from cartfit.simulate.trajectory import Trajectory, solve_subject

__all__ = [
    "Assay",
    "CloneSettings",
    "CohortDesign",
    "SolverError",
    "Trajectory",
    "VisitSchedule",
    "draw_visits",
    "simulate_cohort",
    "simulate_observations",
    "simulate_tables",
    "solve_natural",
    "solve_reference",
    "solve_subject",
]
