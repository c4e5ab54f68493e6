"""``jacprop convert``: a model (or a chain) written as one NPZ file in jacprop's schema,
optionally with the input names of a CSV (``--input-names``), so that later runs match a CSV's
columns to the model's inputs by name."""

from __future__ import annotations

import os

from ..errors import UsageError
from ..io.writers import atomic_output
from ..loaders import npz
from .common import ModelSpec, Outcome, load_model

GIVEN = "given to jacprop convert"


def input_names(spec: str, d: int) -> list[str]:
    """--input-names: comma-separated names, or a CSV file whose header holds exactly the D names."""
    if os.path.isfile(spec):
        from ..io.reader import CsvReader

        reader = CsvReader(spec, header=True)
        reader.close()
        names = reader.names
        where = f"--input-names {spec}: its header"
    else:
        names = [n.strip() for n in spec.split(",")]
        where = f"--input-names {spec}"
    if len(names) != d:
        raise UsageError(f"{where} has {len(names)} names for a model of {d} inputs")
    if "" in names or len(set(names)) != len(names):
        raise UsageError(f"{where}: names must be distinct and not empty")
    return names


def run(spec: ModelSpec, output: str, names: str | None = None) -> Outcome:
    notes = []
    model = load_model(spec, notes)
    if names is not None:
        model.input_names = input_names(names, model.D)
        model.source = {**model.source, "input_names_from": GIVEN}
        if "chain" in model.source:
            first, *rest = model.source["chain"]
            model.source["chain"] = [{**first, "input_names_from": GIVEN}, *rest]
    with atomic_output(output) as out:
        npz.save(model, out.file)
    return Outcome(0, notes)
