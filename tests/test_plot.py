"""jacprop plot: the data each picture draws, computed here again from J; names in the SVG; errors."""

import builtins
import re
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import jacprop
from jacprop import plot as P
from jacprop.cli import main

SAMPLES = Path(__file__).parent.parent / "sample_models"
MODEL, INPUTS = str(SAMPLES / "bishop_tanh.npz"), str(SAMPLES / "bishop_tanh.csv")
NAMES_IN, NAMES_OUT = ["temperature", "pressure", "flow"], ["y[0]", "y[1]"]

try:
    import matplotlib
    import matplotlib.figure
except ImportError:
    matplotlib = None
needs_mpl = pytest.mark.skipif(matplotlib is None,
                               reason="draws pictures: needs matplotlib (pip install 'jacprop[plot]')")


def run(*args):
    return CliRunner().invoke(main, list(args))


@pytest.fixture(scope="module")
def bishop():
    X = np.loadtxt(INPUTS, delimiter=",", skiprows=1)
    Y, J = jacprop.jacobian(jacprop.load(MODEL), X)
    return X, Y, J


@pytest.fixture(scope="module")
def results(tmp_path_factory, bishop):
    """What jacobian and propagate write, and a Hessian npz made here by central differences of J."""
    d = tmp_path_factory.mktemp("results")
    jac, prop, hess = d / "jac.npz", d / "prop.npz", d / "hess.npz"
    assert run("jacobian", MODEL, INPUTS, "-o", str(jac)).exit_code == 0
    r = run("propagate", MODEL, INPUTS, "--dx", "temperature=0.5", "--dx", "pressure=0.3", "--dx", "flow=0.4",
            "--method", "gum", "--method", "linear", "--check-linearity", "--budget", "-o", str(prop), "-q")
    assert r.exit_code == 0, r.output
    X, _, J = bishop
    model, h = jacprop.load(MODEL), 1e-5
    H = np.stack([(jacprop.jacobian(model, X + h * e)[1] - jacprop.jacobian(model, X - h * e)[1]) / (2 * h)
                  for e in np.eye(3)], axis=-1)
    np.savez(hess, **dict(np.load(jac)), hessian=H)
    return {"jacobian": jac, "propagate": prop, "hessian": hess}


def svg_text(path):
    return re.sub(r"\s+", " ", Path(path).read_text())


# ---------------------------------------------------------------------------
# statistics


def test_statistics_against_their_definitions(bishop):
    _, _, J = bishop
    n = len(J)
    assert np.allclose(P.sensitivity(J, "mean-abs"), sum(abs(J[r]) for r in range(n)) / n)
    assert np.allclose(P.sensitivity(J, "rms"), np.sqrt(sum(J[r] ** 2 for r in range(n)) / n))
    assert np.allclose(P.sensitivity(J, "mean"), sum(J[r] for r in range(n)) / n)
    S = np.array([[1.0, -5.0, 2.0, 2.0]])
    assert list(P.ranking_order(S[0])) == [1, 2, 3, 0]
    S2, names, kept = P.top_columns(np.array([[1.0, 5.0, 2.0, 0.5]]), list("abcd"), 2)
    assert names == ["b", "c", "other 2 (sum)"] and list(kept) == [1, 2] and S2.tolist() == [[5.0, 2.0, 1.5]]


def test_budget_shares_pool_by_variance():
    budget = np.array([[[1.0, 0.0]], [[0.0, 1.0]]])  # row 1 all input a, row 2 all input b
    u = np.array([[3.0], [1.0]])
    assert np.allclose(P.budget_shares(budget, u), [[0.9, 0.1]])
    assert np.allclose(P.budget_shares(budget), [[0.5, 0.5]])
    assert np.allclose(P.budget_shares(budget, u, row=1), [[0.0, 1.0]])


def test_sequence_inputs_grouped_by_time_step():
    groups = P.sequence_groups([f"x{i}" for i in range(6)], 2)
    assert list(groups) == ["x"] and groups["x"].tolist() == [[0, 1], [2, 3], [4, 5]]
    groups = P.sequence_groups(["a_0", "a_1", "b_in_0", "b_in_1", "b_in_2"], 1)
    assert groups["a"].tolist() == [[0], [1]] and groups["b_in"].tolist() == [[2], [3], [4]]
    with pytest.raises(jacprop.JacpropError, match="time steps of 4"):
        P.sequence_groups([f"x{i}" for i in range(6)], 4)
    J = np.arange(2 * 1 * 6, dtype=float).reshape(2, 1, 6) - 5
    per_row, S = P.step_sensitivity(J, groups_x := P.sequence_groups([f"x{i}" for i in range(6)], 2)["x"])
    assert per_row[1, 0].tolist() == [abs(J[1, 0, 0]) + abs(J[1, 0, 1]), abs(J[1, 0, 2]) + abs(J[1, 0, 3]),
                                      abs(J[1, 0, 4]) + abs(J[1, 0, 5])]
    assert np.allclose(S, per_row.mean(axis=0))
    assert np.allclose(P.step_sensitivity(J, groups_x, "rms")[1] ** 2, (J.reshape(2, 1, 3, 2) ** 2).sum(-1).mean(0))


def test_mc_samples_are_the_draws_of_propagate(bishop):
    X, Y, J = bishop
    model = jacprop.load(MODEL)
    dx = np.array([0.5, 0.3, 0.4])
    ys = P.mc_samples(model.forward, X[2], dx, 1000, 7, 3)

    from jacprop.uncertainty import montecarlo as mc

    out = mc.monte_carlo(model.forward, X[2:3], np.array([dx]), None, np.array([3]),
                         mc.McOptions(1000, 7, 0.95, digits=None))  # a fixed run of 1,000 draws
    shift, std = out["mc_shift"], out["dy_mc"]
    assert np.allclose(ys.std(axis=0, ddof=1), std[0]) and np.allclose(ys.mean(axis=0) - Y[2], shift[0])


# ---------------------------------------------------------------------------
# the data each picture draws


@needs_mpl
@pytest.mark.parametrize("stat", P.STATS)
def test_heatmap_draws_the_statistic(bishop, stat):
    _, _, J = bishop
    fig = P.plot_heatmap(J, NAMES_IN, NAMES_OUT, stat)
    image = fig.axes[0].images[0].get_array()
    expected = {"mean-abs": np.abs(J).mean(0), "rms": np.sqrt((J**2).mean(0)), "mean": J.mean(0)}[stat]
    assert np.allclose(image.data, expected)
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == NAMES_IN
    assert [t.get_text() for t in fig.axes[0].get_yticklabels()] == NAMES_OUT
    assert sorted(t.get_text() for t in fig.axes[0].texts) == sorted(f"{v:.3g}" for v in expected.ravel())


@needs_mpl
def test_heatmap_top_inputs_and_the_rest_summed():
    rng = np.random.default_rng(1)
    J = rng.normal(size=(20, 2, 30)) * np.r_[np.full(26, 0.1), 3, 4, 5, 6]  # the last 4 inputs matter most
    fig = P.plot_heatmap(J, [f"in{i}" for i in range(30)], ["a", "b"], top=4)
    image = fig.axes[0].images[0].get_array()
    S = np.abs(J).mean(0)
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == ["in26", "in27", "in28", "in29", "other 26 (sum)"]
    assert np.allclose(image.data[:, :4], S[:, 26:]) and np.allclose(image.data[:, 4], S[:, :26].sum(1))
    assert image.mask[:, 4].all() and not image.mask[:, :4].any()  # the rest is outside the colour scale


@needs_mpl
def test_ranking_order_and_boxes(bishop):
    _, _, J = bishop
    fig = P.plot_ranking(J, NAMES_IN, NAMES_OUT)
    for ax, k in zip(fig.axes, range(2)):
        S = np.abs(J[:, k]).mean(0)
        top_first = [t.get_text() for t in ax.get_yticklabels()][::-1]
        assert top_first == [NAMES_IN[i] for i in np.argsort(-S)]
        (marker,) = [line for line in ax.lines if line.get_gid() == "statistic"]
        assert np.allclose(marker.get_xdata(), np.sort(S))  # largest at the top (the highest y)
        medians = [line.get_xdata()[0] for line in ax.lines if line.get_color() == P.OKABE_ITO[1]]
        assert np.allclose(medians, np.median(np.abs(J[:, k, np.argsort(S)]), axis=0))
    assert [ax.get_title(loc="left") for ax in fig.axes] == NAMES_OUT
    assert P.plot_ranking(J, NAMES_IN, NAMES_OUT, outputs=[1]).axes[0].get_title(loc="left") == "y[1]"


@needs_mpl
def test_profile_along_rows_and_against_an_input(bishop):
    X, Y, J = bishop
    fig = P.plot_profile(J, Y, NAMES_IN, NAMES_OUT, output=1)
    lines = {line.get_gid(): line for ax in fig.axes for line in ax.lines if line.get_gid()}
    assert np.array_equal(lines["y"].get_ydata(), Y[:, 1]) and list(lines["y"].get_xdata()) == [1, 2, 3, 4, 5, 6]
    for i, name in enumerate(NAMES_IN):
        assert np.array_equal(lines[f"J:{name}"].get_ydata(), J[:, 1, i])
    fig = P.plot_profile(J, Y, NAMES_IN, NAMES_OUT, output=0, against=("flow", X[:, 2]), top=1)
    lines = {line.get_gid(): line for ax in fig.axes for line in ax.lines if line.get_gid()}
    order = np.argsort(X[:, 2])
    assert list(lines) == ["y", "J:pressure"]  # the top input of y[0] by mean |J|
    assert np.array_equal(lines["J:pressure"].get_xdata(), X[order, 2])
    assert np.array_equal(lines["J:pressure"].get_ydata(), J[order, 0, 1])


@needs_mpl
def test_profile_per_time_step():
    rng = np.random.default_rng(2)
    J = rng.normal(size=(10, 2, 8))  # 4 time steps x 2 features
    fig = P.plot_profile_steps(J, [f"x{i}" for i in range(8)], ["a", "b"], features=2)
    ax, ax_f = fig.axes
    line = next(line for line in ax.lines if line.get_gid() == "steps:x:b")
    assert list(line.get_xdata()) == [0, 1, 2, 3]
    assert np.allclose(line.get_ydata(), np.abs(J[:, 1].reshape(10, 4, 2)).sum(-1).mean(0))
    bars = [p for p in ax_f.patches if p.get_gid() == "features:x:b"]  # per feature, summed over the 4 steps
    assert np.allclose([p.get_height() for p in bars], np.abs(J[:, 1].reshape(10, 4, 2)).sum(1).mean(0))


@needs_mpl
def test_budget_stacks_sum_to_one(results):
    data = P.load_result(results["propagate"])
    fig = P.plot_budget(data["budget"], data["input_names"], data["output_names"], data["dy_gum"])
    ax = fig.axes[0]
    widths = np.array([[p.get_width() for p in c] for c in ax.containers])  # (inputs, outputs)
    assert np.allclose(widths.sum(axis=0), 1)
    assert np.allclose(widths.T, P.budget_shares(data["budget"], data["dy_gum"]))
    lefts = np.array([[p.get_x() for p in c] for c in ax.containers])
    assert np.allclose(lefts[1:], np.cumsum(widths, axis=0)[:-1])  # stacked
    fig = P.plot_budget(data["budget"], data["input_names"], data["output_names"], row=2)
    widths = np.array([[p.get_width() for p in c] for c in fig.axes[0].containers])
    assert np.allclose(widths.T, data["budget"][2])


@needs_mpl
def test_linearity_points_are_the_arrays(results, bishop):
    data = P.load_result(results["propagate"])
    fig = P.plot_linearity(data["dy_linear"], data["dy_plus"], data["dy_minus"], data["output_names"])
    points = {c.get_gid(): c.get_offsets() for c in fig.axes[0].collections}
    for k, name in enumerate(data["output_names"]):
        assert np.array_equal(points[f"plus:{name}"], np.c_[data["dy_linear"][:, k], data["dy_plus"][:, k]])
        assert np.array_equal(points[f"minus:{name}"], np.c_[data["dy_linear"][:, k], data["dy_minus"][:, k]])
    X, Y, J = bishop
    dx = np.array([0.5, 0.3, 0.4])
    assert np.allclose(data["dy_linear"], J @ dx)
    ys = P.mc_samples(jacprop.load(MODEL).forward, X[1], dx, 500, 0, 2)
    mc = {"samples": ys[:, 0], "y": Y[1, 0], "u": 0.03, "row": 2, "output": "y[0]"}
    fig = P.plot_linearity(data["dy_linear"], data["dy_plus"], data["dy_minus"], data["output_names"], mc)
    hist = fig.axes[1]
    heights = np.array([p.get_height() for p in hist.patches])
    widths = np.array([p.get_width() for p in hist.patches])
    assert np.isclose((heights * widths).sum(), 1)  # a density
    gum = next(line for line in hist.lines if line.get_gid() == "gum")
    t = gum.get_xdata()
    assert np.allclose(gum.get_ydata(), np.exp(-0.5 * ((t - Y[1, 0]) / 0.03) ** 2) / (0.03 * np.sqrt(2 * np.pi)))


@needs_mpl
@needs_mpl
def test_interactions_from_model_and_inputs(tmp_path, results):
    """MODEL INPUTS: jacprop.hessian computes H (it equals the central differences of J in results)."""
    out = tmp_path / "i.svg"
    r = run("plot", "interactions", MODEL, INPUTS, "--outputs", "y[1]", "-o", str(out))
    assert r.exit_code == 0, r.output
    assert out.stat().st_size > 0


def test_interactions_draw_mean_abs_hessian(results):
    data = P.load_result(results["hessian"])
    H = data["hessian"]
    fig = P.plot_interactions(H, data["input_names"], data["output_names"], output=1)
    assert np.allclose(fig.axes[0].images[0].get_array().data, np.abs(H[:, 1]).mean(0))
    fig = P.plot_interactions(H, data["input_names"], data["output_names"], output=0, row=3, top=2)
    keep = np.sort(np.argsort(-np.abs(H[3, 0]).sum(1))[:2])
    assert np.allclose(fig.axes[0].images[0].get_array().data, np.abs(H[3, 0][np.ix_(keep, keep)]))


# ---------------------------------------------------------------------------
# the command


@pytest.mark.parametrize("kind,source,extra", [
    ("heatmap", "jacobian", []), ("ranking", "jacobian", []), ("profile", "jacobian", ["--input", "flow"]),
    ("budget", "propagate", []), ("linearity", "propagate", []), ("interactions", "hessian", ["--outputs", "y[1]"]),
])
@needs_mpl
def test_svg_carries_the_names(tmp_path, results, kind, source, extra):
    out = tmp_path / f"{kind}.svg"
    r = run("plot", kind, str(results[source]), "-o", str(out), *extra)
    assert r.exit_code == 0, r.output
    assert r.stdout == ""
    text = svg_text(out)
    assert text.startswith("<?xml") and "</svg>" in text
    names = list(NAMES_IN) if kind != "linearity" else []
    names += NAMES_OUT if kind not in ("profile", "interactions") else ["y[0]" if kind == "profile" else "y[1]"]
    texts = re.findall(r"<text[^>]*>([^<]*)</text>", text)  # svg.fonttype none: text stays text
    for name in names:
        assert any(name in t for t in texts), (name, texts)
    assert not list(tmp_path.glob(".jacprop-*"))


@needs_mpl
@pytest.mark.parametrize("kind", ["heatmap", "ranking", "profile", "budget", "linearity"])
def test_from_model_and_csv(tmp_path, kind):
    out = tmp_path / f"{kind}.png"
    r = run("plot", kind, MODEL, INPUTS, "--dx", "temperature=0.5", "--dx", "flow=5%", "-o", str(out), "--dpi", "50")
    assert r.exit_code == 0, r.output
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@needs_mpl
def test_model_and_csv_draw_what_the_npz_does(tmp_path, results):
    a, b = tmp_path / "a.svg", tmp_path / "b.svg"
    assert run("plot", "heatmap", MODEL, INPUTS, "-o", str(a)).exit_code == 0
    assert run("plot", "heatmap", str(results["jacobian"]), "-o", str(b)).exit_code == 0
    assert a.read_text() == b.read_text()


@needs_mpl
def test_linearity_from_model_has_the_mc_panel(tmp_path, monkeypatch):
    drawn = {}
    save = P.save
    monkeypatch.setattr(P, "save", lambda fig, path, dpi=100: (drawn.update(fig=fig), save(fig, path, dpi)))
    r = run("plot", "linearity", MODEL, INPUTS, "--dx", "temperature=0.5", "--row", "3", "--outputs", "y[1]",
            "--samples", "800", "-o", str(tmp_path / "l.pdf"))
    assert r.exit_code == 0, r.output
    assert (tmp_path / "l.pdf").read_bytes()[:5] == b"%PDF-"
    ax = drawn["fig"].axes[1]
    assert ax.get_title(loc="left").startswith("row 3: y[1]") and sum(p.get_height() > 0 for p in ax.patches) > 5


@needs_mpl
def test_pdf_and_png(tmp_path, results):
    for suffix, magic in ((".pdf", b"%PDF-"), (".PNG", b"\x89PNG")):
        out = tmp_path / f"h{suffix}"
        assert run("plot", "heatmap", str(results["jacobian"]), "-o", str(out)).exit_code == 0
        assert out.read_bytes().startswith(magic)


def one_line_error(r, *fragments):
    assert r.exit_code == 2, r.output
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("jacprop: error: "), r.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def test_bad_suffix(tmp_path, results):
    r = run("plot", "heatmap", str(results["jacobian"]), "-o", str(tmp_path / "h.jpg"))
    one_line_error(r, ".png, .svg or .pdf")
    assert not list(tmp_path.iterdir())


@needs_mpl
def test_missing_array(tmp_path, results):
    r = run("plot", "budget", str(results["jacobian"]), "-o", str(tmp_path / "b.png"))
    one_line_error(r, "needs the array 'budget'", "--budget")
    r = run("plot", "interactions", str(results["propagate"]), "-o", str(tmp_path / "i.png"))
    one_line_error(r, "'hessian'")
    r = run("plot", "heatmap", MODEL, "-o", str(tmp_path / "h.png"))  # a model, not a result
    one_line_error(r, "is it a model?")
    assert not list(tmp_path.iterdir())


@needs_mpl
def test_usage_errors(tmp_path, results):
    out = str(tmp_path / "x.png")
    one_line_error(run("plot", "budget", MODEL, INPUTS, "-o", out), "needs --dx")
    one_line_error(run("plot", "heatmap", str(results["jacobian"]), "--outputs", "nope", "-o", out), "--outputs")
    one_line_error(run("plot", "profile", str(results["jacobian"]), "--input", "nope", "-o", out), "--input")
    one_line_error(run("plot", "budget", str(results["propagate"]), "--row", "7", "-o", out), "--row 7", "6 rows")
    one_line_error(run("plot", "heatmap", str(results["jacobian"]), "--dx", "0.1", "-o", out), "--dx needs MODEL")
    one_line_error(run("plot", "interactions", MODEL, INPUTS, "--row", "9", "-o", out), "--row 9")
    one_line_error(run("plot", "heatmap", str(tmp_path / "none.npz"), "-o", out), "no such file")
    one_line_error(run("plot", "nope", str(results["jacobian"]), "-o", out), "nope")
    (tmp_path / "pickled.npz").write_bytes(b"not a zip")
    one_line_error(run("plot", "heatmap", str(tmp_path / "pickled.npz"), "-o", out), "pickled.npz")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pickled.npz"]


def test_pickled_arrays_are_refused(tmp_path):
    np.savez(tmp_path / "p.npz", jacobian=np.array([{"a": 1}], dtype=object))
    with pytest.raises(jacprop.JacpropError, match="plain arrays"):
        P.load_result(tmp_path / "p.npz")


def test_missing_matplotlib_is_one_line(tmp_path, results, monkeypatch):
    real_import = builtins.__import__

    def no_matplotlib(name, *args, **kwargs):
        if name == "matplotlib" or name.startswith("matplotlib."):
            raise ImportError(f"No module named {name!r}")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_matplotlib)
    with pytest.raises(P.PlotUnavailable):
        P.pyplot()
    r = run("plot", "heatmap", str(results["jacobian"]), "-o", str(tmp_path / "h.png"))
    one_line_error(r)
    assert r.stderr == "jacprop: error: jacprop plot needs matplotlib: pip install 'jacprop[plot]'\n"
    assert not list(tmp_path.iterdir())


@needs_mpl
def test_output_written_atomically(tmp_path, results, monkeypatch):
    out = tmp_path / "h.png"
    out.write_bytes(b"the old picture")

    def broken(self, *args, **kwargs):
        args[0].write(b"half a picture")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", broken)
    r = run("plot", "heatmap", str(results["jacobian"]), "-o", str(out))
    one_line_error(r, "No space left on device")
    assert out.read_bytes() == b"the old picture"  # untouched: the partial file was beside it, then removed
    assert sorted(p.name for p in tmp_path.iterdir()) == ["h.png"]


def test_the_command_lists_the_library_kinds_and_stats():
    from jacprop import cli
    from jacprop.commands import plot as plot_cli

    assert plot_cli.KINDS == P.KINDS == cli.PLOT_KINDS and plot_cli.STATS == P.STATS == cli.PLOT_STATS
    r = run("plot", "--help")
    assert r.exit_code == 0 and "Example:" in r.stdout and "jacprop[plot]" in r.stdout


@needs_mpl
def test_profile_per_time_step_of_a_sequence_model(tmp_path, monkeypatch):
    keras = SAMPLES / "keras"
    drawn = {}
    save = P.save
    monkeypatch.setattr(P, "save", lambda fig, path, dpi=100: (drawn.update(fig=fig), save(fig, path, dpi)))
    r = run("plot", "profile", str(keras / "conv1d.k3.keras"), str(keras / "conv1d.csv"), "--features", "2",
            "--outputs", "out[2]", "-o", str(tmp_path / "steps.svg"))
    assert r.exit_code == 0, r.output
    X = np.loadtxt(keras / "conv1d.csv", delimiter=",", skiprows=1)
    _, J = jacprop.jacobian(jacprop.load(str(keras / "conv1d.k3.keras")), X)
    (line,) = [line for line in drawn["fig"].axes[0].lines if line.get_gid()]
    assert line.get_gid() == "steps:x:out[2]" and list(line.get_xdata()) == list(range(11))  # (11, 2) input
    assert np.allclose(line.get_ydata(), np.abs(J[:, 2].reshape(len(X), 11, 2)).sum(-1).mean(0))
    lstm = run("plot", "profile", str(keras / "lstm.k2.h5"), str(keras / "lstm.csv"), "-o", str(tmp_path / "l.svg"))
    assert lstm.exit_code == 0, lstm.output  # F from the model's (T, F) input: no --features needed
    gids = {line.get_gid() for line in drawn["fig"].axes[0].lines}
    assert "steps:x:out[0]" in gids and len(drawn["fig"].axes) == 2
    one_line_error(run("plot", "profile", str(keras / "conv1d.k3.keras"), str(keras / "conv1d.csv"), "--features", "3",
                       "-o", str(tmp_path / "x.png")), "time steps of 3")
