"""The command line: thin click commands over the library (``jacprop.commands``).

``app`` holds the ``jacprop`` group and turns errors into one line and an exit code; ``options``
the shared options and the specs they become; ``types`` the range-checked option types; the
commands live in ``derivatives`` (jacobian, hessian, check), ``uncertainty`` (propagate) and
``models`` (inspect, convert, plot).  The only part of jacprop that prints or exits.
"""

from . import derivatives, models, uncertainty  # noqa: F401  (each adds its commands to main)
from .app import main
from .models import PLOT_KINDS, PLOT_STATS

__all__ = ["PLOT_KINDS", "PLOT_STATS", "main"]
