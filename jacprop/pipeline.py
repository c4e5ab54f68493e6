"""What the commands do, as plain functions: read rows in chunks, compute, write.

Each command streams: rows are read, computed and written chunk by chunk, so memory
stays flat however long the input is.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator

import numpy as np

from .errors import InputError, JacpropError, UsageError


def load_model(paths, logits=False, output_names=None, **load_options):
    """The model(s) in ``paths`` as one chain; warnings go to stderr; --logits and --output-names applied."""
    from .loaders import load

    model = load(*paths, **{k: v for k, v in load_options.items() if v is not None})
    for warning in model.source.get("warnings", []):
        print(f"jacprop: warning: {warning} (--refuse-nonfinite-weights makes this an error)", file=sys.stderr)
    model = model.logits() if logits else model
    if output_names:
        if len(output_names) != model.K:
            raise UsageError(f"--output-names: {len(output_names)} names for {model.K} outputs")
        model.output_names = list(output_names)
    return model


def select(model, input_names, outputs, wrt):
    """--outputs/--wrt -> (output indices, input indices, selected input names, selected output names)."""
    out_idx = resolve(outputs, model.output_names, "outputs")
    wrt_idx = resolve(wrt, input_names, "wrt")
    return (out_idx, wrt_idx, [input_names[i] for i in wrt_idx] if wrt_idx else list(input_names),
            [model.output_names[k] for k in out_idx] if out_idx else list(model.output_names))


def open_inputs(model, inputs, columns=None, id_column=None, delimiter=",", header=True, on_invalid="error", extra_columns=()):
    """A CsvReader whose selected columns are the model's D inputs (plus ``extra_columns`` read alongside)."""
    from .csvio import CsvReader

    reader = CsvReader(inputs, delimiter=delimiter, header=header, columns=columns, id_column=id_column,
                       on_invalid=on_invalid, exclude=extra_columns)
    if len(reader.columns) != model.D:
        hint = "" if columns else " (choose them with --columns, or name the id column with --id-column)"
        raise UsageError(
            f"{reader.path}: the model takes {model.D} inputs but {len(reader.columns)} columns were selected "
            f"{reader.columns[:6]}{'...' if len(reader.columns) > 6 else ''}{hint}"
        )
    return reader


def resolve(names_or_indices, names, what) -> list[int] | None:
    """--outputs/--wrt: names or integer indices -> indices (None = all)."""
    if not names_or_indices:
        return None
    index = {n: i for i, n in enumerate(names)}
    out = []
    for item in names_or_indices:
        if item in index:
            out.append(index[item])
        elif item.lstrip("-").isdigit() and -len(names) <= int(item) < len(names):
            out.append(int(item) % len(names))
        else:
            raise UsageError(f"--{what}: {item!r} is neither a name nor an index; the names are {names}")
    return out


def parse_rows(spec: str | None):
    """--rows 1-5,10,20-: a predicate on 1-based data row numbers (None = every row)."""
    if not spec:
        return None
    ranges = []
    for part in spec.split(","):
        lo, dash, hi = part.strip().partition("-")
        try:
            a = int(lo) if lo else 1
            b = (int(hi) if hi else np.iinfo(np.int64).max) if dash else a
        except ValueError:
            raise UsageError(f"--rows {spec}: expected row numbers and ranges like 1-5,10,20-") from None
        if a < 1 or b < a:
            raise UsageError(f"--rows {spec}: {part!r} is not a range of rows counted from 1")
        ranges.append((a, b))
    return lambda rows: np.logical_or.reduce([(rows >= a) & (rows <= b) for a, b in ranges])


def jacobian_chunks(model, reader, mode, outputs, wrt, dtype, keep=None) -> Iterator[tuple]:
    """(rows, ids, X, Y, J, extra) per chunk of the input; X holds the ``wrt`` columns only."""
    from .engine import iter_jacobian

    for chunk in reader.chunks():
        X, ids, rows, extra = chunk.X, chunk.ids, chunk.rows, chunk.extra
        if keep is not None:
            mask = keep(rows)
            X, rows = X[mask], rows[mask]
            ids = ids[mask] if ids is not None else None
            extra = {k: v[mask] for k, v in extra.items()}
        for start, Y, J in iter_jacobian(model, X, mode, outputs, wrt, np.dtype(dtype), deterministic=True):
            sl = slice(start, start + len(Y))
            yield (rows[sl], None if ids is None else ids[sl], X[sl], Y, J, {k: v[sl] for k, v in extra.items()})
        del chunk, X, ids, rows, extra  # before the reader makes the next chunk: one chunk alive at a time


def progress(show: bool):
    """A transient rows-done counter on stderr; a no-op unless ``show`` (stderr a terminal, not --quiet)."""
    from contextlib import nullcontext

    if not show:
        return nullcontext(lambda n: None)
    from contextlib import contextmanager

    from rich.console import Console
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    @contextmanager
    def bar():
        with Progress(SpinnerColumn(), TextColumn("{task.completed:,} rows"), TimeElapsedColumn(),
                      console=Console(stderr=True), transient=True) as p:
            task = p.add_task("rows", total=None)
            yield lambda n: p.advance(task, n)

    return bar()


def stream_to(writer, chunks, produce, show_progress=False, source=None) -> None:
    """Write produce(chunk) -> (rows, ids, arrays) for every chunk, then close the writer;
    on any error remove the partial file and say how many rows had reached stdout."""
    try:
        with progress(show_progress) as advance:
            for chunk in chunks:
                rows, ids, arrays = produce(chunk)
                writer.write(rows, ids, arrays)
                advance(len(rows))
        if writer.n == 0:
            skipped = getattr(source, "skipped", 0)
            where = f"{source.path}: " if source is not None else ""
            raise InputError(f"{where}no data rows" + (f" ({skipped} skipped for NaN/inf values)" if skipped else ""))
        writer.close()
    except JacpropError as e:
        writer.out.abort()
        if writer.n and writer.out.path is None:
            e.args = (f"{e.args[0]} ({writer.n} rows were already written to stdout)",)
        raise
    except BaseException:
        writer.out.abort()
        raise


def note_skipped(reader, quiet):
    if reader.skipped and not quiet:
        print(f"jacprop: skipped {reader.skipped} rows with NaN/inf inputs", file=sys.stderr)


# ---------------------------------------------------------------------------
# jacobian


def run_jacobian(models, inputs, columns, id_column, delimiter, header, on_invalid, dtype, load_options, quiet,
                 output, fmt, mode, outputs, wrt, output_names, logits, max_rows, rows=None, summary=False):
    from . import report
    from .tables import jacobian_rows

    model = load_model(models, logits=logits, output_names=output_names, **load_options)
    reader = open_inputs(model, inputs, columns, id_column, delimiter, header, on_invalid)
    out_idx, wrt_idx, in_names, out_names = select(model, reader.columns, outputs, wrt)
    fmt = report.format_for(output, fmt, sys.stdout.isatty())
    chunks = jacobian_chunks(model, reader, mode, out_idx, wrt_idx, dtype, parse_rows(rows))
    meta = {"input_names": in_names, "output_names": out_names, "id_name": id_column, "npy_field": "jacobian"}
    try:
        if summary:
            write_summary(chunks, meta, fmt, output)
            return
        from .summary import Summary

        stats = Summary(len(out_names), len(in_names))
        meta.update(table=jacobian_rows, table_close=lambda console, w: _close_jacobian_table(console, w, stats, meta))
        writer = report.open_writer(fmt, output, report.jacobian_fields(in_names, out_names), meta, dtype, max_rows)

        def produce(chunk):
            r, ids, X, Y, J, _ = chunk
            if fmt == "table":
                stats.add(r, J)
            return r, ids, {"x": X if wrt_idx is None else X[:, wrt_idx], "y": Y, "jacobian": J}

        stream_to(writer, chunks, produce, _show_progress(quiet, inputs), reader)
    finally:
        reader.close()
    note_skipped(reader, quiet)


def _show_progress(quiet, inputs) -> bool:
    """Progress only for people: stderr a terminal, input a file (not stdin), not --quiet."""
    return not quiet and str(inputs) != "-" and sys.stderr.isatty()


def _close_jacobian_table(console, writer, stats, meta):
    """After the first rows' matrices: for longer inputs, the summary over all rows."""
    if writer.n > writer.shown:
        from .tables import summary_table

        console.print(f"... {writer.n - writer.shown} more rows not shown; over all {writer.n} rows:")
        summary_table(console, stats.result(), meta["input_names"], meta["output_names"], writer.n)


def write_summary(chunks, meta, fmt, output):
    """--summary: statistics of J over rows, per output and input, ranked by mean |J|."""
    from . import report
    from .summary import STATS, Summary

    acc = None
    for r, _, _, _, J, _ in chunks:
        acc = acc or Summary(J.shape[1], J.shape[2])
        acc.add(r, J)
    if acc is None:
        raise InputError("no data rows to summarise")
    stats = acc.result()
    ins, outs = meta["input_names"], meta["output_names"]
    out = report.AtomicOutput(output)
    try:
        if fmt == "table":
            from rich.console import Console

            from .tables import summary_table

            summary_table(Console(file=report.TextBridge(out.file), highlight=False), stats, ins, outs, acc.n)
        elif fmt in ("csv", "jsonl"):
            rank = np.argsort(stats["rank"], axis=1) + 1  # rank of each input, 1 = most influential
            records = [{"output": o, "input": ins[i], **{s: stats[s][k, i].item() for s in STATS}, "rank": int(rank[k, i])}
                       for k, o in enumerate(outs) for i in range(len(ins))]
            if fmt == "csv":
                import csv
                import io

                buf = io.StringIO()
                w = csv.DictWriter(buf, fieldnames=list(records[0]), lineterminator="\n")
                w.writeheader()
                w.writerows({k: repr(v) if isinstance(v, float) else v for k, v in rec.items()} for rec in records)
                out.file.write(buf.getvalue().encode())
            else:
                import json

                out.file.write("".join(json.dumps(rec) + "\n" for rec in records).encode())
        elif fmt == "npz":
            np.savez(out.file, rows=np.array(acc.n), input_names=np.array(ins), output_names=np.array(outs), **stats)
        else:
            raise UsageError("--summary writes table, csv, jsonl or npz")
    except BaseException:
        out.abort()
        raise
    out.commit()


# ---------------------------------------------------------------------------
# propagate


def read_matrix(path, names, what) -> np.ndarray:
    """A D x D matrix from CSV with a header of input names (any order; an optional first
    column of row names), reordered to the model's input order."""
    import csv

    try:
        with open(path, encoding="utf-8-sig", newline="") as f:
            rows = [r for r in csv.reader(f) if r]
    except OSError as e:
        raise InputError(f"{what} {path}: cannot read: {e.strerror or e}") from None
    header, body = [c.strip() for c in rows[0]], rows[1:]
    if body and header and len(body[0]) == len(header) and not _is_number(body[0][0]):
        header, body = header[1:], [r[1:] for r in body]  # a first column of row names
    if sorted(header) != sorted(names) or len(body) != len(names):
        raise UsageError(f"{what} {path}: expected a {len(names)} x {len(names)} matrix with a header naming the inputs {names}")
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


def parse_gate(specs, output_names, what) -> np.ndarray | None:
    """--max-dy 0.1 | OUTPUT=0.1 (repeatable) -> a bound per output (inf where none)."""
    if not specs:
        return None
    bound = np.full(len(output_names), np.inf)
    for spec in specs:
        name, sep, value = spec.rpartition("=")
        try:
            v = float(value)
        except ValueError:
            raise UsageError(f"{what} {spec}: expected a number or OUTPUT=NUMBER") from None
        idx = resolve([name], output_names, what.lstrip("-")) if sep else None
        bound[idx if idx else slice(None)] = v
    return bound


PROPAGATE_COLUMNS = [  # array name, table header
    ("dy_linear", "Δy lin"), ("dy_gum", "u gum"), ("U_gum", "U=k·u"), ("dy_worst", "worst"),
    ("dy_mc", "σ mc"), ("mc_shift", "mc shift"), ("nonlinearity", "nonlin"),
]  # the data formats also hold mc_lo, mc_hi, dy_plus, dy_minus, cov_y and budget


def run_propagate(paths, columns, id_column, delimiter, header, on_invalid, dtype, load_options, quiet, output, fmt,
                  mode, dx, dx_columns, cov_file, corr_file, methods, samples, seed, coverage, level, output_cov,
                  check_linearity, tol, budget, max_dy, max_nonlinearity, max_rows, rows=None, engine=None):
    """``engine``: another engine (jacprop.distributed) given the prepared model and settings instead of
    the local stream: it runs ``propagate_producer(**spec)`` per partition of the inputs."""
    from . import propagate as P
    from . import report
    from .tables import propagate_rows

    methods = list(P.METHODS) if "all" in methods else list(dict.fromkeys(methods or ["gum"]))
    check_linearity = check_linearity or max_nonlinearity is not None
    if coverage is not None and level is not None:
        raise UsageError("give --coverage or --level, not both")
    k_factor = coverage if coverage is not None else P.normal_quantile((1 + level) / 2) if level is not None else None
    mc_level = level if level is not None else 0.95
    if cov_file and corr_file:
        raise UsageError("give --cov or --corr, not both")

    model = reader = stream = None
    if len(paths) >= 2:
        model = load_model(paths[:-1], **load_options)
        extra = [spec.partition("=")[2] for spec in dx_columns]
        reader = open_inputs(model, paths[-1], columns, id_column, delimiter, header, on_invalid, extra_columns=extra)
        in_names, out_names = reader.columns, model.output_names
        chunks = jacobian_chunks(model, reader, mode, None, None, dtype, parse_rows(rows))
    else:
        from .readback import read_jacobian

        for opt, given in (("--columns", columns), ("--id-column", id_column), ("--dx-column", dx_columns)):
            if given:
                raise UsageError(f"{opt} needs MODEL... INPUTS (it reads the input CSV)")
        stream = read_jacobian(paths[0] if paths else "-")
        in_names, out_names, id_column = stream.input_names, stream.output_names, stream.id_name
        keep = parse_rows(rows) or (lambda r: np.ones(len(r), bool))
        chunks = ((r[m], None if i is None else i[m], None if X is None else X[m], Y[m], J[m], {})
                  for r, i, X, Y, J in stream.chunks for m in [keep(r)])
        if "mc" in methods or check_linearity:
            raise UsageError("--method mc and --check-linearity run the network: give MODEL... INPUTS, not a Jacobian stream")

    corr = sigma = None
    if cov_file or corr_file:
        matrix = P.check_covariance(read_matrix(cov_file or corr_file, in_names, "--cov" if cov_file else "--corr"),
                                    cov_file or corr_file)
        if cov_file:
            if dx:
                raise UsageError("--cov gives the uncertainties; do not also give --dx")
            sigma, corr = P.split_covariance(matrix)
        else:
            corr = matrix
            if not np.allclose(np.diag(corr), 1):
                raise UsageError(f"--corr {corr_file}: a correlation matrix has ones on its diagonal")
    if not dx and not dx_columns and sigma is None:
        raise UsageError("say how uncertain the inputs are: --dx 0.01, --dx NAME=0.5, --dx NAME=2%, --dx-column or --cov")
    unc = P.parse_dx(dx, in_names, dx_columns, corr)
    if sigma is not None:
        unc.absolute = sigma
    has_x = model is not None or stream.has_x
    if unc.needs_x and not has_x:
        raise UsageError("a relative --dx (%) needs the inputs x: give MODEL... INPUTS, or pipe jsonl/npz from `jacprop jacobian`")
    gate_dy = parse_gate(max_dy, out_names, "--max-dy")
    fmt = report.format_for(output, fmt, sys.stdout.isatty())

    names = {"gum": ["dy_gum"] + (["U_gum"] if k_factor is not None else []), "linear": ["dy_linear"],
             "worst": ["dy_worst"], "mc": ["dy_mc", "mc_shift", "mc_lo", "mc_hi"]}
    quantities = [q for m in methods for q in names[m]] + (["nonlinearity", "dy_plus", "dy_minus"] if check_linearity else [])
    fields = [report.Field("y", (len(out_names),), list(out_names))]
    fields += [report.Field(q, (len(out_names),), [f"{q}({o})" for o in out_names]) for q in quantities]
    if output_cov:
        fields.append(report.Field("cov_y", (len(out_names),) * 2, [f"cov({a},{b})" for a in out_names for b in out_names]))
    if budget:
        fields.append(report.Field("budget", (len(out_names), len(in_names)), [f"budget({o},{i})" for o in out_names for i in in_names]))
    if has_x:
        fields.insert(0, report.Field("x", (len(in_names),)))
    tol_flag = (lambda a, n, k: a["nonlinearity"][n, k] > tol) if check_linearity else None
    meta = {"input_names": in_names, "output_names": out_names, "id_name": id_column, "columns": PROPAGATE_COLUMNS,
            "table": propagate_rows, "flag": tol_flag}
    spec = dict(in_names=in_names, out_names=out_names, methods=methods, unc=unc,
                k_factor=k_factor, mc_level=mc_level, samples=samples, seed=seed, check_linearity=check_linearity, tol=tol,
                output_cov=output_cov, budget=budget, fmt=fmt, gate_dy=gate_dy, max_nonlinearity=max_nonlinearity)
    if engine is not None:
        if reader is not None:
            reader.close()
        return engine(model=model, spec=spec, fields=fields, meta=meta)
    writer = report.open_writer(fmt, output, fields, meta, dtype, max_rows, allowed=("table", "csv", "jsonl", "npz"))
    forward = (lambda X: model.forward(X, dtype=dtype, deterministic=True)) if model is not None else None
    violations, flagged = [], []
    produce = propagate_producer(forward, flagged, violations, **spec)

    try:
        stream_to(writer, chunks, produce, model is not None and _show_progress(quiet, paths[-1]), reader)
    finally:
        if reader is not None:
            reader.close()
    if reader is not None:
        note_skipped(reader, quiet)
    propagate_findings(flagged, violations, tol, quiet)


def propagate_producer(forward, flagged, violations, *, in_names, out_names, methods, unc, k_factor, mc_level,
                       samples, seed, check_linearity, tol, output_cov, budget, fmt, gate_dy, max_nonlinearity):
    """produce(chunk) -> (rows, ids, arrays) for propagate, appending to ``flagged`` and ``violations``;
    a module-level function so that jacprop.distributed runs the very same code per partition."""
    from . import propagate as P

    def produce(chunk):
        r, ids, X, Y, J, extra = chunk
        J64 = J.astype(np.float64, copy=False)
        Xd = X if X is not None else np.zeros((len(Y), len(in_names)))
        d = unc.dx(Xd, {i: extra[c] for i, c in unc.columns.items()})
        a = {"y": Y}
        if X is not None:
            a["x"] = X
        if "linear" in methods:
            a["dy_linear"] = P.linear(J64, d)
        if "gum" in methods:
            a["dy_gum"] = P.gum(J64, d, unc.corr)
            if k_factor is not None:
                a["U_gum"] = k_factor * a["dy_gum"]
        if "worst" in methods:
            a["dy_worst"] = P.worst(J64, d)
        if "mc" in methods:
            a["mc_shift"], a["dy_mc"], a["mc_lo"], a["mc_hi"] = P.monte_carlo(forward, X, d, unc.corr, samples, seed, mc_level, r)
        if check_linearity:
            a["nonlinearity"], a["dy_plus"], a["dy_minus"] = P.linearity(forward, X, Y, J64, d)
            flagged.extend((int(r[n]), out_names[k]) for n, k in np.argwhere(a["nonlinearity"] > tol))
        if output_cov:
            a["cov_y"] = P.output_covariance(J64, d, unc.corr)
        if budget or fmt == "table":
            a["budget"] = P.budget(J64, d)
        if gate_dy is not None:
            size = np.max([np.abs(a[q]) * (k_factor or 1) if q in ("dy_gum", "dy_mc") else np.abs(a[q])
                           for q in ("dy_linear", "dy_gum", "dy_worst", "dy_mc") if q in a], axis=0)
            violations.extend((int(r[n]), out_names[k], f"{size[n, k]:.4g} > {gate_dy[k]:.4g}")
                              for n, k in np.argwhere(size > gate_dy))
        if max_nonlinearity is not None:
            violations.extend((int(r[n]), out_names[k], f"nonlinearity {a['nonlinearity'][n, k]:.3g} > {max_nonlinearity:.3g}")
                              for n, k in np.argwhere(a["nonlinearity"] > max_nonlinearity))
        return r, ids, a

    return produce


def propagate_findings(flagged, violations, tol, quiet):
    """The linearity flags and gate violations on stderr; exit 1 when a gate was crossed."""
    if flagged and not quiet:
        print(f"jacprop: {len(flagged)} (row, output) pairs depart from linearity by more than --tol {tol:g}: "
              + ", ".join(f"row {r} {o}" for r, o in flagged[:10]) + (" ..." if len(flagged) > 10 else ""), file=sys.stderr)
    if violations:
        print(f"jacprop: {len(violations)} (row, output) pairs exceed the bounds: "
              + "; ".join(f"row {r} {o}: {why}" for r, o, why in violations[:20])
              + (" ..." if len(violations) > 20 else ""), file=sys.stderr)
        sys.exit(1)


# ---------------------------------------------------------------------------
# check


def run_check(models, inputs, columns, id_column, delimiter, header, on_invalid, load_options, tol, expect_y, y_tol, fmt, quiet):
    """Backprop J against central differences (step per column from its scale), and
    optionally the outputs against expected ones; returns the exit code (0 or 1)."""
    model = load_model(models, **load_options)
    reader = open_inputs(model, inputs, columns, id_column, delimiter, header, on_invalid)
    expected = _read_expected(expect_y, model.output_names) if expect_y else None
    k, d = model.K, model.D
    worst = np.zeros(k)
    worst_at = [(0, 0)] * k
    y_err, y_rows, step = np.zeros(k), 0, None
    from .engine import jacobian

    try:
        for chunk in reader.chunks():
            X, rows = chunk.X, chunk.rows
            if step is None:
                # h_i = eps^(1/3) * scale_i balances truncation O(h^2) against rounding O(eps/h)
                scale = np.maximum(np.sqrt((X * X).mean(axis=0)), 1e-8)
                step = np.finfo(float).eps ** (1 / 3) * np.maximum(scale, 1.0)
            Y, J = jacobian(model, X)
            J_fd = np.empty_like(J)
            for i in range(d):  # a loop over input columns, each a batched forward pass over all rows
                Xp, Xm = X.copy(), X.copy()
                Xp[:, i] += step[i]
                Xm[:, i] -= step[i]
                J_fd[:, :, i] = (model.forward(Xp) - model.forward(Xm)) / (2 * step[i])
            err = np.abs(J - J_fd) / np.maximum(1.0, np.abs(J_fd).max(axis=(0, 2)))[None, :, None]
            for kk in range(k):
                n, i = np.unravel_index(err[:, kk].argmax(), err[:, kk].shape)
                if err[n, kk, i] > worst[kk]:
                    worst[kk], worst_at[kk] = err[n, kk, i], (int(rows[n]), i)
            if expected is not None:
                ref = expected[rows - 1] if rows.max() <= len(expected) else None
                if ref is None:
                    raise InputError(f"--expect-y {expect_y}: has {len(expected)} rows, fewer than the inputs")
                y_err = np.maximum(y_err, (np.abs(Y - ref) / np.maximum(1.0, np.abs(ref))).max(axis=0))
                y_rows += len(Y)
    finally:
        reader.close()
    if step is None:
        raise InputError(f"{reader.path}: no data rows")
    result = {
        "rows": int(reader._row), "tolerance": tol,
        "outputs": [{"output": o, "max_scaled_error": float(worst[kk]), "row": worst_at[kk][0],
                     "input": reader.columns[worst_at[kk][1]], "ok": bool(worst[kk] <= tol)} for kk, o in enumerate(model.output_names)],
        "steps": {n: float(s) for n, s in zip(reader.columns, step)},
    }
    if expected is not None:
        if y_rows != len(expected):
            raise InputError(f"--expect-y {expect_y}: {len(expected)} rows, but the inputs have {y_rows}")
        result["y"] = [{"output": o, "max_scaled_error": float(e), "ok": bool(e <= y_tol)} for o, e in zip(model.output_names, y_err)]
        result["y_tolerance"] = y_tol
    ok = all(o["ok"] for o in result["outputs"] + result.get("y", []))
    result["ok"] = ok
    _print_check(result, fmt)
    return 0 if ok else 1


def _read_expected(path, output_names) -> np.ndarray:
    """Expected outputs: a CSV with a column per output name, or exactly K numeric columns in order."""
    from .csvio import read_all

    try:
        return read_all(path, columns=list(output_names))[0]
    except UsageError:
        X, _, reader = read_all(path)
        if X.shape[1] != len(output_names):
            raise UsageError(f"--expect-y {path}: expected columns {output_names} or {len(output_names)} numeric columns") from None
        return X


def _print_check(result, fmt):
    if fmt == "json":
        import json

        print(json.dumps(result, indent=2))
        return
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    console = Console(highlight=False)
    table = Table(title=f"J vs central differences, {result['rows']} rows, tol {result['tolerance']:g}",
                  title_justify="left", show_edge=False, pad_edge=False)
    for col in ("output", "max |J - J_fd| / max(1, max|J|)", "row", "input", ""):
        table.add_column(col)
    for o in result["outputs"]:
        table.add_row(escape(o["output"]), f"{o['max_scaled_error']:.3g}", str(o["row"]), escape(o["input"]),
                      "ok" if o["ok"] else "[bold red]FAIL[/]")
    console.print(table)
    if "y" in result:
        t = Table(title=f"y vs --expect-y, tol {result['y_tolerance']:g}", title_justify="left", show_edge=False, pad_edge=False)
        for col in ("output", "max |y - expected| / max(1, |expected|)", ""):
            t.add_column(col)
        for o in result["y"]:
            t.add_row(escape(o["output"]), f"{o['max_scaled_error']:.3g}", "ok" if o["ok"] else "[bold red]FAIL[/]")
        console.print(t)
