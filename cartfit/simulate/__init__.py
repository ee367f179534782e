"""Virtual patients and cohorts: the reference solver, the observation model and the simulator."""

from cartfit.simulate.branching import simulate_lineages
from cartfit.simulate.cohort import simulate_cohort, simulate_tables
from cartfit.simulate.design import CohortDesign
from cartfit.simulate.emergence import CloneSettings
from cartfit.simulate.measurement import Assay
from cartfit.simulate.observe import simulate_observations
from cartfit.simulate.population import PopulationSpec, draw_parameters, to_measured
from cartfit.simulate.reference import SolverError, solve_natural, solve_reference
from cartfit.simulate.schedule import VisitSchedule, draw_visits
from cartfit.simulate.trajectory import Trajectory, solve_subject
from cartfit.simulate.typical_values import population_for

__all__ = [
    "Assay",
    "CloneSettings",
    "CohortDesign",
    "PopulationSpec",
    "SolverError",
    "Trajectory",
    "VisitSchedule",
    "draw_parameters",
    "draw_visits",
    "population_for",
    "simulate_cohort",
    "simulate_lineages",
    "simulate_observations",
    "simulate_tables",
    "solve_natural",
    "solve_reference",
    "solve_subject",
    "to_measured",
]
