"""The HTML report of a results folder and the figures and methods page it is made of."""

from cartfit.report.build import build_report, fit_problems
from cartfit.report.figures import FIGURE_KINDS, draw_figure, make_figure
from cartfit.report.methods import methods_html, write_methods

__all__ = [
    "FIGURE_KINDS",
    "build_report",
    "draw_figure",
    "fit_problems",
    "make_figure",
    "methods_html",
    "write_methods",
]
