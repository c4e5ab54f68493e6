"""``jacprop convert``: a model (or a chain) written as one NPZ file in jacprop's schema."""

from __future__ import annotations

from ..io.writers import atomic_output
from ..loaders import npz
from .common import ModelSpec, Outcome, load_model


def run(spec: ModelSpec, output: str) -> Outcome:
    notes = []
    model = load_model(spec, notes)
    with atomic_output(output) as out:
        npz.save(model, out.file)
    return Outcome(0, notes)
