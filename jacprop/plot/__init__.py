"""Pictures of Jacobians, uncertainty budgets, linearity and Hessians, with matplotlib.

Every ``plot_<kind>`` takes plain arrays and names and returns a matplotlib Figure; the
statistics they draw are small functions of their own (``sensitivity``, ``ranking_order``,
``budget_shares``, ...), so that a test can compare the picture with them.  matplotlib is
an optional extra (``pip install 'jacprop[plot]'``): it is imported only when a figure is
made, always with the Agg backend (no display needed).

    >>> from jacprop import plot
    >>> data = plot.load_result("jac.npz")      # what jacprop jacobian/propagate wrote
    >>> fig = plot.plot_heatmap(data["jacobian"], data["input_names"], data["output_names"])
    >>> plot.save(fig, "heatmap.png")

The package: ``files`` (reading jacprop's npz results, writing pictures atomically, matplotlib
on the Agg backend), ``stats`` (the numbers the pictures draw), ``figures`` (the pictures).
A new kind of picture is a ``plot_<kind>`` in ``figures`` (its statistics in ``stats``), a
name in ``KINDS`` and a branch in ``commands/plot.py``.
"""

from __future__ import annotations

from .figures import (
    OKABE_ITO,
    STAT_LABEL,
    plot_budget,
    plot_heatmap,
    plot_interactions,
    plot_linearity,
    plot_profile,
    plot_profile_steps,
    plot_ranking,
)
from .files import FORMATS, PlotUnavailable, format_for, load_result, pyplot, require, save
from .stats import (
    STATS,
    budget_shares,
    interaction_matrix,
    mc_samples,
    ranking_order,
    sensitivity,
    sequence_groups,
    step_sensitivity,
    top_columns,
)

KINDS = ("heatmap", "ranking", "profile", "budget", "linearity", "interactions")

__all__ = ["FORMATS", "KINDS", "OKABE_ITO", "STATS", "STAT_LABEL", "PlotUnavailable", "budget_shares", "format_for",
           "interaction_matrix", "load_result", "mc_samples", "plot_budget", "plot_heatmap", "plot_interactions",
           "plot_linearity", "plot_profile", "plot_profile_steps", "plot_ranking", "pyplot", "ranking_order", "require",
           "save", "sensitivity", "sequence_groups", "step_sensitivity", "top_columns"]
