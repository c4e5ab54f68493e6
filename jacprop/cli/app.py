"""The command line's frame: the ``jacprop`` group, and how errors become one line.

Errors become one line on stderr, ``jacprop: error: ...``, and an exit code:
0 success, 1 a check or threshold failed, 2 bad usage or input, 130 interrupted.
The command modules (``cli.derivatives``, ``cli.uncertainty``, ``cli.models``) add their
commands to ``main``; this package is the only part of jacprop that prints or exits.
"""

from __future__ import annotations

import functools
import sys

import click

from .. import __version__

CONTEXT = {"help_option_names": ["-h", "--help"]}


def fail(message: str, code: int = 2):
    click.echo(f"jacprop: error: {message}", err=True)
    sys.exit(code)


def handle_errors(fn):
    """Turn library errors into messages and exit codes; never a traceback unless --debug."""

    @functools.wraps(fn)
    def wrapper(*args, debug=False, **kwargs):
        from ..errors import JacpropError

        try:
            return fn(*args, **kwargs)
        except JacpropError as e:
            if debug:
                raise
            fail(str(e), e.exit_code)
        except KeyboardInterrupt:
            click.echo("jacprop: interrupted", err=True)
            sys.exit(130)
        except BrokenPipeError:
            _silence_stdout()
            sys.exit(0)
        except OSError as e:  # writing: disk full, stdout closed, permissions
            if debug:
                raise
            where = f"{e.filename}: " if e.filename else ""
            fail(f"{where}cannot write the output: {e.strerror or e}")
        except click.exceptions.Exit:
            raise
        except Exception as e:  # a bug: say so in one line
            if debug:
                raise
            fail(f"internal error: {type(e).__name__}: {e} (a bug in jacprop; rerun with --debug for details)")

    return click.option("--debug", is_flag=True, help="Show tracebacks.")(wrapper)


def _silence_stdout():
    """Point stdout at /dev/null, dropping what is buffered, so that exiting cannot fail on it again."""
    import os

    try:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    except (OSError, ValueError):
        pass


def split_list(values) -> tuple[str, ...] | None:
    """--columns a,b --columns c -> ('a', 'b', 'c')."""
    out = tuple(v.strip() for value in values or () for v in value.split(",") if v.strip())
    return out or None


def finish(outcome) -> None:
    """Show a command's notes on stderr and exit with its code."""
    for line in outcome.notes:
        click.echo(line, err=True)
    sys.exit(outcome.code)


def waiting_note(what: str, quiet: bool) -> None:
    """stdin is a terminal: say what jacprop waits for (a silent wait looks like a hang), then take
    everything typed up to the first Ctrl-D (the readers' block reads would each need one more)."""
    import io

    if not quiet:
        click.echo(f"jacprop: reading {what} from the terminal; end with Ctrl-D (Ctrl-Z Enter on Windows)", err=True)
    typed = sys.stdin.buffer.read()
    sys.stdin = io.TextIOWrapper(io.BufferedReader(io.BytesIO(typed)), encoding="utf-8")


def models_and_inputs(paths):
    """MODEL... INPUTS -> (models, inputs); the last argument is the input."""
    if len(paths) < 2:
        from ..errors import UsageError

        raise UsageError("give one or more MODEL files and then the INPUTS csv ('-' for stdin)")
    return tuple(paths[:-1]), paths[-1]


class Main(click.Group):
    """Click's own usage errors become one ``jacprop: error:`` line too, exit code 2."""

    def main(self, *args, **kwargs):
        kwargs.pop("standalone_mode", None)
        try:
            try:
                super().main(*args, standalone_mode=False, **kwargs)
            except SystemExit:
                _flush_stdout()
                raise
            _flush_stdout()  # here, not at interpreter exit where a failure would print a traceback
        except click.ClickException as e:
            fail(f"{' '.join(e.format_message().split())} (see jacprop --help)", e.exit_code)
        except click.exceptions.Abort:
            click.echo("jacprop: interrupted", err=True)
            sys.exit(130)
        except BrokenPipeError:  # `jacprop ... | head -1`: the reader has all it wanted
            _silence_stdout()
            sys.exit(0)
        except OSError as e:  # help or a table onto a full disk (`> /dev/full`)
            _silence_stdout()
            fail(f"cannot write the output: {e.strerror or e}")


def _flush_stdout():
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        _silence_stdout()
        raise


@click.group(cls=Main, context_settings=CONTEXT)
@click.version_option(__version__, "-V", "--version", prog_name="jacprop")
def main():
    """Jacobians dy/dx of saved neural networks at every input row, and how input
    uncertainty becomes output uncertainty (Delta y ~= J Delta x).

    Models: Keras .h5 (Keras 2 and 3), Keras 3 .keras, NPZ.  Inputs: CSV, '-' for stdin.
    """
    import warnings

    import numpy as np

    from ..engine import keep_freed_memory

    keep_freed_memory()
    np.seterr(all="ignore")  # NaN and overflow show in the results and in jacprop's own notes, not as numpy warnings
    warnings.filterwarnings("ignore", category=RuntimeWarning)
