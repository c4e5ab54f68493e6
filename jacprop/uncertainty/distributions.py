"""Input distributions for the Monte Carlo method, each scaled to unit variance, so that
x_i + dx_i * z_i has standard uncertainty dx_i whatever the shape (JCGM 101 6.4):

- ``normal``: z ~ N(0, 1).
- ``rect``: uniform on [-sqrt(3), sqrt(3)]: the half-width is a = sqrt(3) u.
- ``triangular``: symmetric on [-sqrt(6), sqrt(6)] (the sum of two rectangular draws): a = sqrt(6) u.
- ``arcsine``: sqrt(2) sin(pi (V - 1/2)), V uniform (U-shaped, JCGM 101 6.4.6): a = sqrt(2) u.
- ``t:NU``: Student's t with NU > 2 degrees of freedom scaled by sqrt((NU - 2) / NU), so that its
  standard deviation is u (JCGM 101 6.4.9 gives a t of scale s/sqrt(n); its standard deviation is
  sqrt(NU / (NU - 2)) times that).
"""

from __future__ import annotations

import math
import re

import numpy as np

from ..errors import UsageError

KINDS = ("normal", "rect", "triangular", "arcsine", "t")


def parse_kind(text: str, where: str) -> tuple[str, float]:
    """'rect' -> ('rect', 0); 't:5' -> ('t', 5.0)."""
    m = re.fullmatch(r"\s*(normal|rect|triangular|arcsine|t:\s*([0-9.eE+]+|inf))\s*", text)
    if not m:
        raise UsageError(f"{where}: expected normal, rect, triangular, arcsine or t:NU (e.g. t:5)")
    if not m[2]:
        return m[1], 0.0
    try:
        nu = float(m[2])
    except ValueError:
        raise UsageError(f"{where}: t:NU needs a number NU > 2, got {m[2]!r}") from None
    if not nu > 2:
        raise UsageError(f"{where}: t:NU needs NU > 2 (a t with NU <= 2 has no standard deviation)")
    return ("normal", 0.0) if math.isinf(nu) else ("t", nu)


def draws(rng: np.random.Generator, m: int, kinds: tuple) -> np.ndarray:
    """(m, D) unit-variance draws, input i from ``kinds[i]`` = (name, nu).  The normal draws come
    first from the generator (so an all-normal run draws exactly rng.standard_normal((m, D)))."""
    z = rng.standard_normal((m, len(kinds)))
    for i, (kind, nu) in enumerate(kinds):
        if kind == "rect":
            z[:, i] = (2 * rng.random(m) - 1) * math.sqrt(3)
        elif kind == "triangular":
            z[:, i] = (rng.random(m) + rng.random(m) - 1) * math.sqrt(6)
        elif kind == "arcsine":
            z[:, i] = math.sqrt(2) * np.sin(math.pi * (rng.random(m) - 0.5))
        elif kind == "t":
            z[:, i] = rng.standard_t(nu, m) * math.sqrt((nu - 2) / nu)
    return z
