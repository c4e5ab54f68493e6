"""Click parameter types for jacprop's numeric options: each refuses a value outside its range
with one line naming the option, the value and the accepted range (click adds the option's
name: "Invalid value for '--level': 95 is not in (0, 1); did you mean --level 0.95?").

Ranges are checked here, before anything is loaded, so a bad option never costs a model load
and never reaches the library as a NaN or a negative count.
"""

from __future__ import annotations

import math

import click

MAX_SAMPLES = 10**8  # Monte Carlo draws per row: more would not fit in memory for one row


class Number(click.ParamType):
    """A finite float in a range: ``low``/``high`` bounds (None: unbounded), open or closed;
    ``hint(value)`` may add a suggestion to the refusal."""

    name = "float"

    def __init__(self, low=None, high=None, low_open=False, high_open=False, hint=None, allow_inf=False):
        self.low, self.high, self.low_open, self.high_open = low, high, low_open, high_open
        self.hint, self.allow_inf = hint, allow_inf

    def range_text(self) -> str:
        low, high = (v if v is None or isinstance(v, int) else f"{v:g}" for v in (self.low, self.high))
        if self.low is not None and self.high is not None:
            return f"in {'(' if self.low_open else '['}{low}, {high}{')' if self.high_open else ']'}"
        if self.low is not None:
            return f"{'>' if self.low_open else '>='} {low}"
        return f"{'<' if self.high_open else '<='} {high}" if self.high is not None else "finite"

    def parse(self, value):
        return value if isinstance(value, float) else float(str(value).strip())

    def convert(self, value, param, ctx):
        try:
            v = self.parse(value)
        except ValueError:
            self.fail(f"{value!r} is not {'an integer' if self.name == 'integer' else 'a number'}", param, ctx)
        below = self.low is not None and (v <= self.low if self.low_open else v < self.low)
        above = self.high is not None and (v >= self.high if self.high_open else v > self.high)
        if math.isnan(v) or (math.isinf(v) and not self.allow_inf) or below or above:
            hint = self.hint(v) if self.hint else None
            self.fail(f"{value} is not {self.range_text()}{f'; {hint}' if hint else ''}", param, ctx)
        return v


class Integer(Number):
    """An integer in a closed range [low, high] (high None: unbounded)."""

    name = "integer"

    def parse(self, value):
        return value if isinstance(value, int) else int(str(value).strip())

    def convert(self, value, param, ctx):
        return int(super().convert(value, param, ctx))


def _coverage_hint(k: float) -> str | None:
    if 0 < k < 1:
        return f"k is a coverage factor (U = k u) and must be >= 1; did you mean --level {k:g}?"
    return "k is a coverage factor (U = k u), e.g. 2"


def _level_hint(p: float) -> str | None:
    if 1 < p < 100:
        return f"a probability; did you mean --level {p / 100:g}?"
    return "a coverage probability, e.g. 0.95"


COVERAGE = Number(1, hint=_coverage_hint)
LEVEL = Number(0, 1, low_open=True, high_open=True, hint=_level_hint)
POSITIVE = Number(0, low_open=True, allow_inf=True)  # tolerances: inf accepts everything, 0 nothing
NON_NEGATIVE = Number(0, allow_inf=True)
SAMPLES = Integer(2, MAX_SAMPLES, hint=lambda n: "a Monte Carlo standard deviation needs at least 2 draws per row")
SEED = Integer(0, hint=lambda n: "numpy's random generators take seeds >= 0")
COUNT = Integer(0)  # rows shown


def check_rows(ctx, param, value):
    """--rows: parsed here so a malformed list is refused before anything is loaded."""
    if value is None:
        return None
    from ..commands.common import parse_rows
    from ..errors import UsageError

    try:
        parse_rows(value)
    except UsageError as e:
        raise click.BadParameter(str(e).removeprefix(f"--rows {value}: "), ctx, param) from None
    return value
