"""The numbers the pictures draw, as functions of plain arrays (a test compares each picture
with them)."""

from __future__ import annotations

import re

import numpy as np

from ..errors import UsageError

STATS = ("mean-abs", "rms", "mean")



def sensitivity(J: np.ndarray, stat: str = "mean-abs") -> np.ndarray:
    """(K, D) over the rows of J (N, K, D): mean |J|, RMS J (sqrt of the mean of J^2) or the signed mean."""
    if stat == "mean-abs":
        return np.abs(J).mean(axis=0)
    if stat == "rms":
        return np.sqrt((J * J).mean(axis=0))
    if stat == "mean":
        return J.mean(axis=0)
    raise UsageError(f"--stat {stat}: expected one of {', '.join(STATS)}")


def ranking_order(S_k: np.ndarray) -> np.ndarray:
    """Input indices by decreasing |S_k| (ties: the earlier input first)."""
    return np.argsort(-np.abs(S_k), kind="stable")


def top_columns(S: np.ndarray, names, top: int | None):
    """The ``top`` inputs (columns of S (K, D)) by the sum over outputs of |S|, in input order,
    and one more column summing the rest; returns (S', names', kept input indices)."""
    d = S.shape[1]
    if top is None or top >= d:
        return S, list(names), np.arange(d)
    keep = np.sort(ranking_order(np.abs(S).sum(axis=0))[:top])
    rest = np.setdiff1d(np.arange(d), keep)
    S2 = np.concatenate([S[:, keep], S[:, rest].sum(axis=1, keepdims=True)], axis=1)
    return S2, [names[i] for i in keep] + [f"other {len(rest)} (sum)"], keep


def budget_shares(budget: np.ndarray, u: np.ndarray | None = None, row: int | None = None) -> np.ndarray:
    """(K, D) shares of u(y_k)^2 per input.  At one ``row`` (0-based) that row's budget; over all
    rows the pooled budget, sum_n budget[n] u[n]^2 / sum_n u[n]^2 when the u (N, K) are given
    (the share of the total variance), else the mean of the rows' shares."""
    if row is not None:
        return budget[row]
    if u is None:
        return budget.mean(axis=0)
    w = (u * u)[:, :, None]
    total = w.sum(axis=0)
    return np.divide((budget * w).sum(axis=0), total, out=budget.mean(axis=0), where=total > 0)


def sequence_groups(names, features: int) -> dict:
    """Inputs of (T, F) model inputs, named like jacprop names them (``x<i>`` for a model's only input,
    ``<input>_<i>`` for several; i = t * F + f, C order), grouped: prefix -> (T, F) array of input indices."""
    groups: dict[str, list] = {}
    for j, name in enumerate(names):
        m = re.fullmatch(r"(.*?)_?(\d+)", name)
        if not m:
            raise UsageError(f"--features: input {name!r} is not named like a sequence input (x<i> or <input>_<i>)")
        groups.setdefault(m[1], []).append((int(m[2]), j))
    out = {}
    for prefix, items in groups.items():
        items.sort()
        if [i for i, _ in items] != list(range(len(items))) or len(items) % features:
            raise UsageError(f"--features {features}: the inputs {prefix}* ({len(items)}) are not "
                             f"{prefix}0 ... numbered in time steps of {features} features")
        out[prefix] = np.array([j for _, j in items]).reshape(-1, features)
    return out


def step_sensitivity(J: np.ndarray, index: np.ndarray, stat: str = "mean-abs"):
    """For the inputs ``index`` (T, F): per row and time step the sum over features of |J| (mean-abs),
    of J^2 (rms) or of J (mean), (N, K, T); and its statistic over rows (K, T)."""
    Jt = J[:, :, index]  # (N, K, T, F)
    if stat == "mean-abs":
        per_row = np.abs(Jt).sum(axis=-1)
        return per_row, per_row.mean(axis=0)
    if stat == "rms":
        per_row = (Jt * Jt).sum(axis=-1)
        return np.sqrt(per_row), np.sqrt(per_row.mean(axis=0))
    if stat == "mean":
        per_row = Jt.sum(axis=-1)
        return per_row, per_row.mean(axis=0)
    raise UsageError(f"--stat {stat}: expected one of {', '.join(STATS)}")


def mc_samples(forward, x: np.ndarray, dx: np.ndarray, samples: int, seed: int, row: int) -> np.ndarray:
    """y at ``samples`` draws x + dx z, z ~ N(0, I), (samples, K): the draws ``jacprop propagate --method mc``
    makes for data row ``row`` (counted from 1) with the same ``seed``."""
    z = np.random.default_rng([seed, int(row)]).standard_normal((samples, len(x)))
    return forward(x[None, :] + dx[None, :] * z)


def interaction_matrix(H: np.ndarray, output: int, row: int | None = None) -> np.ndarray:
    """(D, D): |H[row, k]| at one row (0-based), else the mean over rows of |H[:, k]|."""
    return np.abs(H[row, output]) if row is not None else np.abs(H[:, output]).mean(axis=0)
