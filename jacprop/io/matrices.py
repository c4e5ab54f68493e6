"""Small matrix files: an input covariance or correlation (D x D, named), expected outputs."""

from __future__ import annotations

import numpy as np

from ..errors import InputError, UsageError


def read_matrix(path, names, what) -> np.ndarray:
    """A D x D matrix from CSV with a header of input names (any order; an optional first
    column of row names), reordered to the model's input order."""
    import csv

    try:
        with open(path, encoding="utf-8-sig", newline="") as f:
            rows = [r for r in csv.reader(f) if r]
    except OSError as e:
        raise InputError(f"{what} {path}: cannot read: {e.strerror or e}") from None
    if not rows:
        raise InputError(f"{what} {path}: empty file")
    header, body = [c.strip() for c in rows[0]], rows[1:]
    if body and header and len(body[0]) == len(header) and not _is_number(body[0][0]):
        header, body = header[1:], [r[1:] for r in body]  # a first column of row names
    if sorted(header) != sorted(names) or len(body) != len(names):
        raise UsageError(f"{what} {path}: expected a {len(names)} x {len(names)} matrix with a header naming "
                         f"the inputs {names}")
    try:
        m = np.array(body, dtype=np.float64)
    except ValueError as e:
        raise InputError(f"{what} {path}: {e}") from None
    order = [header.index(n) for n in names]
    return m[np.ix_(order, order)]


def _is_number(text):
    try:
        float(text)
        return True
    except ValueError:
        return False


def read_expected(path, output_names) -> np.ndarray:
    """Expected outputs: a CSV with a column per output name, or exactly K numeric columns in order."""
    from .reader import read_all

    try:
        return read_all(path, columns=list(output_names))[0]
    except UsageError:
        X, _, _ = read_all(path)
        if X.shape[1] != len(output_names):
            raise UsageError(f"--expect-y {path}: expected columns {output_names} or {len(output_names)} "
                             "numeric columns") from None
        return X


def read_vector(path, names, what) -> np.ndarray:
    """A vector over the inputs from CSV: a header naming some of them (any order), one row of finite numbers;
    the inputs not named are 0."""
    import csv

    try:
        with open(path, encoding="utf-8-sig", newline="") as f:
            rows = [r for r in csv.reader(f) if r]
    except OSError as e:
        raise InputError(f"{what} {path}: cannot read: {e.strerror or e}") from None
    header = [c.strip() for c in rows[0]] if rows else []
    unknown = [h for h in header if h not in names]
    if len(rows) != 2 or len(rows[1]) != len(header) or unknown or len(set(header)) != len(header):
        why = f"unknown input {unknown[0]!r}; " if unknown else ""
        raise UsageError(f"{what} {path}: {why}expected a header naming inputs among {names} (each once) and one "
                         "row of as many numbers")
    try:
        values = np.array([float(v) for v in rows[1]])
    except ValueError as e:
        raise InputError(f"{what} {path}: {e}") from None
    if not np.isfinite(values).all():
        raise InputError(f"{what} {path}: every value must be finite")
    u = np.zeros(len(names))
    u[[names.index(h) for h in header]] = values
    return u
