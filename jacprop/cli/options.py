"""The options several commands share, and how they become the commands' frozen specs:
the model options (-> ``ModelSpec``), how the input CSV is written and read (-> ``InputSpec``),
the output (-> ``OutputSpec``), the engine.  Checked by click callbacks, so that a bad value is one
line naming the option."""

from __future__ import annotations

import functools

import click

from .app import fail, split_list

LOAD_KEYS = {"activation": "activation", "output_activation": "output_activation",  # ModelSpec field: option
             "refuse_nonfinite": "refuse_nonfinite_weights", "configs": "configs"}
CSV_KEYS = ("columns", "by_position", "id_column", "delimiter", "header", "na_values", "comment", "on_invalid")


def model_spec(models, o: dict, **extra):
    """The ModelSpec of MODEL... from the shared model options (``load_options``) and ``extra``."""
    from ..commands.common import ModelSpec

    return ModelSpec(models, **o["load_options"], **extra)


def input_spec(inputs, o: dict):
    """The InputSpec of INPUTS from the shared CSV options and --rows."""
    from ..commands.common import InputSpec

    return InputSpec(inputs, rows=o["rows"], **o["csv_options"])


def output_spec(o: dict):
    """The OutputSpec from -o, --format, --dtype, --max-rows, -q and --no-row."""
    from ..commands.common import OutputSpec

    return OutputSpec(o["output"], o["fmt"], o["dtype"], o["max_rows"], o["quiet"], not o["no_row"])


def checked(parse):
    """A click callback from a parser that raises UsageError: one line naming the option."""

    def callback(ctx, param, value):
        from ..errors import UsageError

        try:
            return parse(value)
        except UsageError as e:
            raise click.BadParameter(str(e).partition(": ")[2] or str(e)) from None

    return callback


def dialect_parser(name):
    """io.dialect's parser ``name``, imported when the option is parsed (not at start-up)."""

    def parse(value):
        from ..io import dialect

        return getattr(dialect, name)(value)

    return parse


DELIMITER_HELP = ("CSV field delimiter: one character, or tab (also \\t), comma, semicolon, pipe, space. "
                  "Default: sniffed from the header line (comma, semicolon, tab or pipe; *.tsv: tab), said on "
                  "stderr unless a comma.")
HEADER_HELP = ("--header: line 1 names the columns; --no-header: it is data (columns c0, c1, ...). Default: a line 1 "
               "whose every field is a number is data, with a note.")


def input_dialect_options():
    """--delimiter, --header/--no-header, --na-values, --comment: how the input CSV is written."""
    return [
        click.option("--delimiter", callback=checked(dialect_parser("parse_delimiter")), help=DELIMITER_HELP),
        click.option("--header/--no-header", "header", default=None, help=HEADER_HELP),
        click.option("--na-values", multiple=True, callback=checked(dialect_parser("parse_na_values")),
                     help="Cell texts that mean a missing value (read as NaN; --on-invalid decides), "
                          "comma-separated, replacing the default: empty, NA, NaN, nan, null. A number (-999) "
                          "marks cells of that value."),
        click.option("--comment", callback=checked(dialect_parser("parse_comment")),
                     help="A character that starts a comment, to the end of the line (e.g. '#'); comment lines "
                          "are not rows."),
    ]


def model_and_input_options(fn):
    """Options shared by the commands that read models and an input CSV: they arrive as
    ``load_options`` (for a ModelSpec) and ``csv_options`` (for an InputSpec)."""
    decorators = [
        click.option("--columns", multiple=True,
                     help="Input columns by name, in order (comma-separated or repeated). Default: all but the id "
                          "column. Where the model knows its input names (see inspect), columns are matched to "
                          "them by name."),
        click.option("--by-position", is_flag=True,
                     help="Take the selected columns in order as the model's inputs, even where their names are the "
                          "model's input names in another order."),
        click.option("--id-column", help="A column carried through to the output to identify rows."),
        *input_dialect_options(),
        click.option("--on-invalid", type=click.Choice(["error", "skip", "keep"]), default="error", show_default=True,
                     help="What to do with rows holding NaN/inf or missing input cells."),
        click.option("--dtype", type=click.Choice(["float64", "float32"]), default="float64", show_default=True),
        click.option("--activation",
                     help="NPZ weight lists: the hidden layers' activation, when the file does not say."),
        click.option("--output-activation", default="linear", show_default=True,
                     help="NPZ weight lists: the last layer's activation."),
        click.option("--refuse-nonfinite-weights", is_flag=True,
                     help="Refuse models with NaN/inf weights (default: warn)."),
        click.option("--config", "configs", multiple=True, type=click.Path(dir_okay=False),
                     help="Keras weights-only file (save_weights): its architecture, the JSON model.to_json() "
                          "wrote; one per weights-only MODEL, in order."),
        click.option("-q", "--quiet", is_flag=True, help="No progress or notes on stderr."),
    ]

    @functools.wraps(fn)
    def with_options(*args, **kwargs):
        load = {key: kwargs.pop(option) for key, option in LOAD_KEYS.items()}
        load["configs"] = tuple(load["configs"])
        csv = {key: kwargs.pop(key) for key in CSV_KEYS}
        csv["columns"] = split_list(csv["columns"])
        return fn(*args, load_options=load, csv_options=csv, **kwargs)

    for d in reversed(decorators):
        with_options = d(with_options)
    return with_options


OUTPUT_HELP = ("Output file (format from the extension); default stdout. With --engine dask also DIR/ "
               "(a part file per partition + manifest.json).")


def output_options(formats):
    def decorate(fn):
        fn = click.option("--no-row", is_flag=True, help="csv: leave out the first column, row (the data row number "
                          "of the input, counted from 1).")(fn)
        fn = click.option("-o", "--output", type=click.Path(allow_dash=True), help=OUTPUT_HELP)(fn)
        return click.option("--format", "fmt", type=click.Choice(formats),
                            help="Output format. Default: from -o's extension; on stdout a table on a terminal, "
                                 "csv otherwise.")(fn)
    return decorate


def engine_options(fn):
    """--engine {local,dask}, --scheduler, --workers; a directory -o only with --engine dask."""

    @functools.wraps(fn)
    def wrapper(*args, engine, scheduler, workers, **kwargs):
        import os

        if engine == "local" and (scheduler or workers):
            fail(f"{'--scheduler' if scheduler else '--workers'} needs --engine dask")
        output = kwargs.get("output")
        if engine == "local" and output and output != "-" and os.path.isdir(output):
            fail(f"-o {output}: is a directory (a directory of part files needs --engine dask)")
        cluster = {"scheduler": scheduler, "workers": workers} if engine == "dask" else None
        return fn(*args, cluster=cluster, **kwargs)

    wrapped = click.option("--workers", type=click.IntRange(1),
                           help="--engine dask without --scheduler: worker processes (1 thread each) of the "
                                "LocalCluster started on 127.0.0.1. Default: one per CPU.")(wrapper)
    wrapped = click.option("--scheduler", metavar="ADDRESS",
                           help="--engine dask: a running Dask scheduler, e.g. tcp://host:8786 "
                                "(default: start a LocalCluster).")(wrapped)
    return click.option("--engine", type=click.Choice(["local", "dask"]), default="local", show_default=True,
                        help="local: this process; dask: partitions of the INPUTS on a Dask cluster "
                             "(pip install 'jacprop[dask]'). With dask, the arguments are MODEL files (HDF5 or zip "
                             "content) up to the first that is not; the rest are INPUTS: CSV files or quoted globs "
                             "like 'data/part-*.csv'.")(wrapped)


NPZ_OPTIONS = [
    click.option("--activation", help="NPZ weight lists: the hidden layers' activation, when the file does not say."),
    click.option("--output-activation", default="linear", show_default=True,
                 help="NPZ weight lists: the last layer's activation."),
    click.option("--config", "configs", multiple=True, type=click.Path(dir_okay=False),
                 help="Keras weights-only file (save_weights): its architecture, the JSON model.to_json() "
                      "wrote; one per weights-only MODEL, in order."),
]


def npz_options(fn):
    for d in reversed(NPZ_OPTIONS):
        fn = d(fn)
    return fn
