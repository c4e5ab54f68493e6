"""The one tensor contraction the second-order rules share (a leaf: numpy only)."""

from __future__ import annotations

import numpy as np


def contract(v: np.ndarray, t: np.ndarray, diagonal: bool = False) -> np.ndarray:
    """sum over a tensor's entries s of v[b, k, w, s] t[b, u, s]: (B, K, D, D); ``diagonal``: only u = w, (B, K, D).
    v (B, K, D, *shape), t (B', D, *shape), B' in {1, B}."""
    b, k, d = v.shape[:3]
    v, t = v.reshape(b, k, d, -1), t.reshape(t.shape[0], d, -1)
    if diagonal:
        return (v * t[:, None]).sum(axis=-1)
    return np.matmul(v.reshape(b, k * d, -1), t.transpose(0, 2, 1)).reshape(-1, k, d, d)
