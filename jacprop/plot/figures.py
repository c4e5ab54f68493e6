"""The pictures: every ``plot_<kind>`` takes plain arrays and names and returns a matplotlib
Figure (Okabe & Ito's colour-blind-safe palette; cividis and RdBu maps)."""

from __future__ import annotations

import numpy as np

from ..errors import UsageError
from .files import pyplot
from .stats import (
    budget_shares,
    interaction_matrix,
    ranking_order,
    sensitivity,
    sequence_groups,
    step_sensitivity,
    top_columns,
)

KINDS = ("heatmap", "ranking", "profile", "budget", "linearity", "interactions")
STATS = ("mean-abs", "rms", "mean")
FORMATS = {".png": "png", ".svg": "svg", ".pdf": "pdf"}
STEP_LABEL = {"mean-abs": "mean Σ_f |∂y/∂x|", "rms": "RMS over rows of ‖∂y/∂x‖",
              "mean": "mean Σ_f ∂y/∂x"}  # per time step, summed over the features f
STAT_LABEL = {"mean-abs": "mean |∂y/∂x|", "rms": "RMS ∂y/∂x", "mean": "mean ∂y/∂x"}
# Okabe & Ito's palette, distinguishable with every common colour-vision deficiency; grey for "the rest".
OKABE_ITO = ["#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000"]
REST_COLOUR = "#BBBBBB"
SEQUENTIAL, DIVERGING = "cividis", "RdBu_r"  # RdBu: ColorBrewer's colour-blind-safe diverging map
MAX_PANELS = 8




def _figure(width, height):
    return pyplot().figure(figsize=(width, height), layout="constrained")


def _annotate(ax, image, values, fmt="{:.3g}"):
    """Each cell's value, dark on light cells and light on dark ones."""
    for (r, c), v in np.ndenumerate(values.data):
        red, green, blue, _ = image.cmap(np.ma.masked if values.mask[r, c] else image.norm(v))
        light = 0.299 * red + 0.587 * green + 0.114 * blue > 0.5
        ax.text(c, r, fmt.format(v), ha="center", va="center", fontsize=8, color="black" if light else "white")


def _xticks(ax, names):
    long = max(len(n) for n in names) * len(names) > 60
    ax.set_xticks(range(len(names)), names, rotation=40 if long else 0, ha="right" if long else "center",
                  rotation_mode="anchor")


def _matrix(ax, fig, M, row_names, col_names, signed, label, rest=False):
    """M as an annotated image; with ``rest``, the last column (a sum over other inputs) is drawn
    light grey, outside the colour scale, so that it does not wash out the others."""
    plt = pyplot()
    M = np.ma.masked_array(M, mask=np.zeros(M.shape, bool))
    if rest:
        M.mask[:, -1] = True
    vmax = float(np.abs(M).max()) or 1.0
    cmap = plt.get_cmap(DIVERGING if signed else SEQUENTIAL).with_extremes(bad="#E8E8E8")
    image = ax.imshow(M, cmap=cmap, aspect="auto", vmin=-vmax if signed else 0.0, vmax=vmax, interpolation="nearest")
    _xticks(ax, col_names)
    ax.set_yticks(range(len(row_names)), row_names)
    if M.size <= 400:
        _annotate(ax, image, M)
    fig.colorbar(image, ax=ax, label=label, shrink=0.9)
    return image


def plot_heatmap(J, input_names, output_names, stat="mean-abs", top=None):
    """Outputs x inputs of ``sensitivity(J, stat)``, annotated; with ``top``, the top inputs and the rest summed."""
    S, cols, kept = top_columns(sensitivity(J, stat), list(input_names), top)
    fig = _figure(max(4.5, 1.1 + 0.75 * len(cols)), max(2.4, 1.3 + 0.45 * len(output_names)))
    ax = fig.add_subplot()
    _matrix(ax, fig, S, list(output_names), cols, stat == "mean", STAT_LABEL[stat], rest=len(kept) < len(input_names))
    ax.set_xlabel("input")
    ax.set_ylabel("output")
    ax.set_title(f"{STAT_LABEL[stat]} over {len(J)} rows", loc="left")
    return fig


def _horizontal():
    """boxplot's keyword for horizontal boxes: orientation= since matplotlib 3.10, vert= before."""
    import matplotlib

    major, minor = (int(p) for p in matplotlib.__version__.split(".")[:2])
    return {"orientation": "horizontal"} if (major, minor) >= (3, 10) else {"vert": False}


def plot_ranking(J, input_names, output_names, stat="mean-abs", top=10, outputs=None):
    """Per output, the inputs ranked by ``sensitivity(J, stat)`` (the marker), with a box of the
    per-row values (|J| for mean-abs and rms, J for mean; whiskers 5-95 %) and the outliers."""
    outputs = list(range(len(output_names))) if outputs is None else list(outputs)
    if len(outputs) > MAX_PANELS:
        raise UsageError(f"the ranking plot draws up to {MAX_PANELS} outputs, not {len(outputs)}: "
                         "choose with --outputs")
    S = sensitivity(J, stat)
    HORIZONTAL = _horizontal()
    n_in = min(top or len(input_names), len(input_names))
    fig = _figure(0.6 + 3.0 * len(outputs), 1.2 + 0.38 * n_in)
    axes = fig.subplots(1, len(outputs), squeeze=False)[0]
    for ax, k in zip(axes, outputs):
        order = ranking_order(S[k])[:n_in][::-1]  # the largest at the top
        values = J[:, k, order] if stat == "mean" else np.abs(J[:, k, order])
        box = ax.boxplot(values, **HORIZONTAL, whis=(5, 95), widths=0.6, showfliers=True,
                   flierprops={"marker": ".", "markersize": 3, "markeredgecolor": "#555555"},
                   medianprops={"color": OKABE_ITO[1]}, boxprops={"color": "#444444"})
        (marker,) = ax.plot(S[k, order], np.arange(1, n_in + 1), "D", color=OKABE_ITO[0], markersize=5,
                            label=STAT_LABEL[stat], gid="statistic")
        ax.set_yticks(np.arange(1, n_in + 1), [input_names[i] for i in order])
        ax.set_title(output_names[k], loc="left")
        ax.set_xlabel("∂y/∂x per row" if stat == "mean" else "|∂y/∂x| per row")
        if stat == "mean":
            ax.axvline(0, color="#999999", linewidth=0.8)
        ax.grid(axis="x", alpha=0.3)
    fig.legend([marker, box["medians"][0]], [STAT_LABEL[stat], "median; box 25-75 %, whiskers 5-95 % of rows"],
               loc="outside lower center",
               ncols=2, fontsize=8, frameon=False)
    more = f" (top {n_in} of {len(input_names)})" if n_in < len(input_names) else ""
    fig.suptitle(f"inputs ranked by {STAT_LABEL[stat]} over {len(J)} rows{more}", x=0.02, ha="left", fontsize=11)
    return fig


def plot_profile(J, Y, input_names, output_names, output=0, against=None, top=5, stat="mean-abs"):
    """y_k (top) and J[:, k, i] of the ``top`` inputs by ``sensitivity`` (bottom) along the rows, or
    ``against`` = (label, x) with x (N,) one input's values (rows sorted by it), like a
    partial-dependence plot of the sensitivity."""
    n = len(J)
    if against is None:
        x_label, x, order = "row", np.arange(1, n + 1), np.arange(n)
    else:
        x_label, x = against
        order = np.argsort(x, kind="stable")
        x = np.asarray(x)[order]
    marker = "o" if n <= 60 else None
    inputs = ranking_order(sensitivity(J, stat)[output])[: min(top or len(input_names), len(input_names))]
    fig = _figure(6.4, 4.6)
    ax_y, ax_j = fig.subplots(2, 1, sharex=True, height_ratios=(1, 2))
    if Y is not None:
        ax_y.plot(x, Y[order, output], color="black", marker=marker, markersize=3, gid="y")
    ax_y.set_ylabel(output_names[output])
    along = "rows" if against is None else f"values of {x_label}"
    name = output_names[output]
    ax_y.set_title(f"{name} and ∂{name}/∂x along the {along}", loc="left", fontsize=11)
    for c, i in enumerate(inputs):
        ax_j.plot(x, J[order, output, i], color=OKABE_ITO[c % len(OKABE_ITO)], marker=marker, markersize=3,
                  label=input_names[i], gid=f"J:{input_names[i]}")
    ax_j.axhline(0, color="#999999", linewidth=0.8)
    ax_j.set_ylabel(f"∂{output_names[output]}/∂x")
    ax_j.set_xlabel(x_label)
    fig.legend(*ax_j.get_legend_handles_labels(), loc="outside right center", fontsize=8, frameon=False)
    for ax in (ax_y, ax_j):
        ax.grid(alpha=0.3)
    return fig


def plot_profile_steps(J, input_names, output_names, features, stat="mean-abs", outputs=None):
    """Sequence inputs (T, F): left, per time step the sensitivity summed over the F features (see
    ``step_sensitivity``), one line per output and a band from the 10th to the 90th percentile of the rows;
    right, per feature the same statistic summed over the T time steps (NeuralSens' SensTimePlot pair)."""
    groups = sequence_groups(list(input_names), features)
    outputs = list(range(len(output_names))) if outputs is None else list(outputs)
    fig = _figure(8.4, 1.2 + 2.6 * len(groups))
    axes = fig.subplots(len(groups), 2, squeeze=False, width_ratios=[3, 1])
    for (ax, ax_f), (prefix, index) in zip(axes, groups.items()):
        per_row, S = step_sensitivity(J, index, stat)
        _, per_feature = step_sensitivity(J, index.T, stat)  # (K, F): the roles of steps and features swapped
        steps, width = np.arange(index.shape[0]), 0.8 / len(outputs)
        for c, k in enumerate(outputs):
            colour = OKABE_ITO[c % len(OKABE_ITO)]
            lo, hi = np.percentile(per_row[:, k], [10, 90], axis=0)
            ax.fill_between(steps, lo, hi, color=colour, alpha=0.2, linewidth=0)
            ax.plot(steps, S[k], color=colour, marker="o", markersize=3, label=output_names[k],
                    gid=f"steps:{prefix}:{output_names[k]}")
            ax_f.bar(np.arange(features) + (c - (len(outputs) - 1) / 2) * width, per_feature[k], width,
                     color=colour, gid=f"features:{prefix}:{output_names[k]}")
        ax.set_xlabel(f"time step of {prefix} ({index.shape[0]} steps x {features} features)")
        ax.set_ylabel(STEP_LABEL[stat])
        ax_f.set_xlabel(f"feature of {prefix}, all steps")
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax_f.set_xticks(np.arange(features))
        for a in (ax, ax_f):
            a.grid(alpha=0.3)
        ax.legend(fontsize=8)
    axes[0, 0].set_title(f"sensitivity per time step and per feature over {len(J)} rows (band: 10-90 % of rows)",
                         loc="left", fontsize=11)
    return fig


def plot_budget(budget, input_names, output_names, u=None, row=None, top=7, outputs=None):
    """Per output a bar of ``budget_shares`` stacked by input (the ``top`` inputs, the rest summed), in %."""
    shares = budget_shares(budget, u, row)
    outputs = list(range(len(output_names))) if outputs is None else list(outputs)
    S, cols, kept = top_columns(shares[outputs], list(input_names), top)
    rest = len(kept) < len(input_names)
    fig = _figure(6.4, 1.6 + 0.5 * len(outputs))
    ax = fig.add_subplot()
    left = np.zeros(len(outputs))
    for c, name in enumerate(cols):
        colour = REST_COLOUR if rest and c == len(cols) - 1 else OKABE_ITO[c % len(OKABE_ITO)]
        bars = ax.barh(np.arange(len(outputs)), S[:, c], left=left, color=colour, label=name, height=0.6,
                       edgecolor="white", linewidth=0.5, gid=f"budget:{name}")
        labels = [f"{100 * v:.0f}%" if v >= 0.06 else "" for v in S[:, c]]
        ax.bar_label(bars, labels, label_type="center", fontsize=8, color="white" if c in (0, 3, 5, 7) else "black")
        left += S[:, c]
    ax.set_yticks(np.arange(len(outputs)), [output_names[k] for k in outputs])
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.xaxis.set_major_formatter(lambda v, _: f"{100 * v:.0f}%")
    ax.set_xlabel("share of u(y)²")
    where = (f"row {row + 1}" if row is not None
             else f"pooled over {len(budget)} rows" + (" (weights u²)" if u is not None else ""))
    ax.set_title(f"uncertainty budget, {where}", loc="left", fontsize=11)
    fig.legend(*ax.get_legend_handles_labels(), loc="outside lower center", ncols=min(len(cols), 4), fontsize=8,
               frameon=False)
    return fig


def plot_linearity(dy_linear, dy_plus, dy_minus, output_names, mc=None):
    """Left: f(x+Δx) - f(x) (dots) and f(x) - f(x-Δx) (crosses) against J Δx per row and output, with the
    line of perfect linearity.  Right, when ``mc`` = dict(samples (S,), y, u, row, output) is given: the Monte
    Carlo distribution of y at that row against the GUM Gaussian N(y, u²)."""
    fig = _figure(10.5 if mc is not None else 5.4, 4.4)
    axes = fig.subplots(1, 2 if mc is not None else 1, squeeze=False)[0]
    ax = axes[0]
    for k, name in enumerate(output_names):
        colour = OKABE_ITO[k % len(OKABE_ITO)]
        ax.scatter(dy_linear[:, k], dy_plus[:, k], s=18, color=colour, marker="o", label=f"{name}: f(x+Δx) − f(x)",
                   gid=f"plus:{name}")
        ax.scatter(dy_linear[:, k], dy_minus[:, k], s=22, color=colour, marker="x",
                   label=f"{name}: f(x) − f(x−Δx)", gid=f"minus:{name}")
    values = np.concatenate([a.ravel() for a in (dy_linear, dy_plus, dy_minus)])
    lo, hi = float(values.min()), float(values.max())
    pad = 0.05 * (hi - lo or 1.0)
    ax.plot([lo - pad, hi + pad], [lo - pad, hi + pad], color="#777777", linewidth=1, linestyle="--",
            label="linear: = J Δx")
    ax.set_xlabel("J Δx (first order)")
    ax.set_ylabel("change of y through the network")
    ax.set_title(f"linearity over {len(dy_linear)} rows", loc="left", fontsize=11)
    ax.legend(fontsize=7, ncols=1 if len(output_names) <= 3 else 2)
    ax.grid(alpha=0.3)
    if mc is not None:
        ax = axes[1]
        s = np.asarray(mc["samples"])
        ax.hist(s, bins=min(60, max(10, len(s) // 40)), density=True, color=OKABE_ITO[4], alpha=0.7,
                label=f"Monte Carlo, {len(s)} draws", gid="mc")
        y, u = float(mc["y"]), float(mc["u"])
        t = np.linspace(min(s.min(), y - 4 * u), max(s.max(), y + 4 * u), 400)
        pdf = np.exp(-0.5 * ((t - y) / u) ** 2) / (u * np.sqrt(2 * np.pi)) if u > 0 else np.zeros_like(t)
        ax.plot(t, pdf, color=OKABE_ITO[5], linewidth=2, label=f"GUM N(y, u²), u = {u:.3g}", gid="gum")
        ax.axvline(y, color="black", linewidth=1, label=f"y(x) = {y:.4g}")
        ax.axvline(s.mean(), color=OKABE_ITO[0], linewidth=1, linestyle=":", label=f"MC mean = {s.mean():.4g}")
        ax.set_xlabel(str(mc["output"]))
        ax.set_ylabel("probability density")
        ax.set_title(f"row {mc['row']}: {mc['output']}, MC std {s.std(ddof=1):.3g}", loc="left", fontsize=11)
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
    return fig



def plot_interactions(H, input_names, output_names, output=0, row=None, top=12):
    """|∂²y_k/∂x_i∂x_j| (``interaction_matrix``) as a D x D map, annotated; for large D the ``top``
    inputs by the row sums of the map."""
    M = interaction_matrix(H, output, row)
    names = list(input_names)
    if top is not None and top < len(names):
        keep = np.sort(ranking_order(M.sum(axis=1))[:top])
        M, names = M[np.ix_(keep, keep)], [names[i] for i in keep]
    size = max(3.6, 1.6 + 0.6 * len(names))
    fig = _figure(size + 1.2, size)
    ax = fig.add_subplot()
    label = f"|∂²{output_names[output]}/∂xᵢ∂xⱼ|"
    _matrix(ax, fig, M, names, names, False, label)
    where = f"row {row + 1}" if row is not None else f"mean over {len(H)} rows"
    more = f", top {len(names)} of {len(input_names)} inputs" if len(names) < len(input_names) else ""
    ax.set_title(f"{label}, {where}{more}", loc="left", fontsize=11)
    return fig
