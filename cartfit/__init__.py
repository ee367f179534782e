"""cartfit: Bayesian pharmacology fitting pipeline for CAR T-cell therapy."""

__version__ = "0.1.0"
