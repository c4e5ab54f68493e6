"""``jacprop inspect``: what a model file holds, as a dict (for --format json) or a rich table."""

from __future__ import annotations

from .graph import Model


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
        "output_names": model.output_names,
        "params": model.n_params(),
        "layers": layers,
    }


def render(info: dict, console=None) -> None:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    console = console or Console(highlight=False)
    src = info["source"]
    where = src.get("path") or ", ".join(s.get("path", "?") for s in src.get("chain", []))
    fmt = src.get("format") or "chain"
    version = f" (Keras {src['keras_version']})" if src.get("keras_version") else ""
    version = f" ({src['description']})" if src.get("description") else version
    console.print(f"[bold]{escape(where)}[/bold]: {escape(fmt)}{escape(version)}")
    table = Table(show_edge=False, pad_edge=False)
    for col, justify in (("layer", "left"), ("type", "left"), ("activation", "left"), ("inputs", "left"),
                         ("output shape", "right"), ("params", "right")):
        table.add_column(col, justify=justify)
    for layer in info["layers"]:
        table.add_row(escape(layer["name"]), escape(layer["type"]), layer["activation"] or "",
                      escape(", ".join(layer["inputs"])), str(tuple(layer["output_shape"])), f"{layer['params']:,}")
    console.print(table)
    console.print(f"D = {info['D']} inputs: {escape(', '.join(info['input_names']))}")
    console.print(f"K = {info['K']} outputs: {escape(', '.join(info['output_names']))}")
    console.print(f"{info['params']:,} parameters")
    for note in src.get("notes", []):
        console.print(f"note: {escape(note)}")
