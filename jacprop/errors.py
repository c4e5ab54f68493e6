"""Domain errors.  The library raises these; only the CLI turns them into
``jacprop: error: ...`` lines and exit codes (2 for all of them)."""


class JacpropError(Exception):
    """Bad usage or bad input; the message names the file and the place."""

    exit_code = 2


class ModelError(JacpropError):
    """An unreadable, malformed or unsupported model file."""


class InputError(JacpropError):
    """Malformed input rows (CSV, stdin)."""


class UsageError(JacpropError):
    """Options that contradict each other or the model."""


def one_line(e) -> str:
    """An exception's message on one line (library messages from h5py or numpy may span several)."""
    return " ".join(str(e).split())


def no_data_rows(where: str | None, skipped: int = 0, unselected: int = 0) -> InputError:
    """The one error for an input without data rows (``where``: the file, "N inputs", or None); ``unselected``:
    rows read but not among --rows."""
    prefix = f"{where}: " if where else ""
    why = [f"{skipped} skipped for NaN/inf values"] if skipped else []
    why += [f"{unselected} rows read, none among --rows"] if unselected else []
    return InputError(f"{prefix}no data rows" + (f" ({'; '.join(why)})" if why else ""))
