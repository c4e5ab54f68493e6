"""``jacprop inspect``: what a model file holds, as a dict (printed as JSON or as a table)."""

from __future__ import annotations

from ..graph import Model, input_names_from


def describe(model: Model) -> dict:
    """Layers in graph order with their type, activation, per-row output shape and parameters."""
    layers = []
    for node in model.nodes[1:]:
        act = getattr(node.op, "activation", None)
        layers.append({
            "name": node.name,
            "type": node.kind,
            "op": type(node.op).__name__,
            "activation": None if act is None else act.name,
            "inputs": [model.nodes[j].name for j in node.inputs],
            "output_shape": list(node.shape),
            "params": node.op.n_params(),
        })
    return {
        "source": model.source,
        "D": model.D,
        "K": model.K,
        "input_names": model.input_names,
        "input_names_from": input_names_from(model),
        "output_names": model.output_names,
        "params": model.n_params(),
        "layers": layers,
    }
