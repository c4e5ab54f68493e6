"""``jacobian --summary``: statistics of J over rows, accumulated chunk by chunk.

Per output k and input i: mean J, mean |J|, RMS sqrt(mean J^2), standard deviation
(over rows, ddof = 1), min, max, and the row where |J| is largest; inputs are ranked per
output by mean |J| (the global sensitivity measure neuralsens reports, for any K).

Sequence inputs (a model input of shape (T, F) per row: time steps x features, flattened t F + f)
also get, per output k, the sensitivity per time step aggregated over the features and per
feature aggregated over the time steps (NeuralSens' SensTimePlot), both from mean |J|:
    per_step[k, t] = sum_f mean_n |J[n, k, t F + f]|,   per_feature[k, f] = sum_t mean_n |J[n, k, t F + f]|
(so per_step is the mean over rows of sum_f |J|, the "mean-abs" profile ``jacprop plot profile`` draws).
"""

from __future__ import annotations

import numpy as np

STATS = ("mean", "mean_abs", "rms", "std", "min", "max", "row_of_max_abs")


def sequence_inputs(model) -> list[tuple[str, int, tuple]]:
    """The model's inputs of shape (T, F) per row: [(name, first column, (T, F))]."""
    from .ops import Slice

    return [(n.name, n.op.start, tuple(n.shape)) for n in model.nodes[1:]
            if isinstance(n.op, Slice) and n.inputs == (0,) and len(n.shape) == 2]


def sequence_profiles(mean_abs: np.ndarray, sequences) -> list[dict]:
    """Per sequence input: ``per_step`` (K, T) and ``per_feature`` (K, F) from mean |J| (K, D)."""
    out = []
    for name, start, (t, f) in sequences:
        block = mean_abs[:, start : start + t * f].reshape(len(mean_abs), t, f)
        out.append({"input": name, "steps": t, "features": f, "start": start,
                    "per_step": block.sum(axis=2), "per_feature": block.sum(axis=1)})
    return out


class Summary:
    def __init__(self, k: int, d: int):
        self.n = 0
        self.total, self.total_abs, self.total_sq = np.zeros((k, d)), np.zeros((k, d)), np.zeros((k, d))
        self.low, self.high = np.full((k, d), np.inf), np.full((k, d), -np.inf)
        self.peak, self.peak_row = np.full((k, d), -1.0), np.zeros((k, d), dtype=np.int64)

    def add(self, rows: np.ndarray, J: np.ndarray) -> None:
        J = J.astype(np.float64, copy=False)
        A = np.abs(J)
        self.n += len(J)
        self.total += J.sum(axis=0)
        self.total_abs += A.sum(axis=0)
        self.total_sq += (J * J).sum(axis=0)
        self.low = np.minimum(self.low, J.min(axis=0))
        self.high = np.maximum(self.high, J.max(axis=0))
        best = A.argmax(axis=0)
        best_val = np.take_along_axis(A, best[None], axis=0)[0]
        better = best_val > self.peak
        self.peak = np.where(better, best_val, self.peak)
        self.peak_row = np.where(better, rows[best], self.peak_row)

    def result(self) -> dict:
        """Each statistic as a (K, D) array, plus ``rank`` (K, D): input indices by mean |J|, largest first."""
        n = max(self.n, 1)
        mean = self.total / n
        var = np.maximum(self.total_sq - n * mean * mean, 0) / max(self.n - 1, 1)
        mean_abs = self.total_abs / n
        return {
            "mean": mean, "mean_abs": mean_abs, "rms": np.sqrt(self.total_sq / n), "std": np.sqrt(var),
            "min": self.low, "max": self.high, "row_of_max_abs": self.peak_row,
            "rank": np.argsort(-mean_abs, axis=1, kind="stable"),
        }
