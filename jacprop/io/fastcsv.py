"""pyarrow's CSV parser for plain chunks of numbers (the ``fast`` extra); ``io.reader`` falls
back to numpy whenever it is absent or refuses a chunk."""

from __future__ import annotations

import io

import numpy as np


def arrow_parse(data: bytes, n_rows, n_columns, usecols, delimiter, na_values=()) -> np.ndarray | None:
    """pyarrow's multi-threaded CSV parser over a chunk of lines (the ``fast`` extra), missing-value
    tokens as NaN; or None when pyarrow is not installed or the chunk is anything but a plain table
    of numbers (ragged rows, words, quotes around a newline): numpy then decides."""
    try:
        import pyarrow as pa
        from pyarrow import csv as pacsv
    except ImportError:
        return None
    names = [str(i) for i in range(n_columns)]
    wanted = list(dict.fromkeys(usecols))  # a column may be asked for twice (as input and as --dx-column)
    try:
        table = pacsv.read_csv(
            io.BytesIO(data),
            read_options=pacsv.ReadOptions(column_names=names, block_size=1 << 20),
            parse_options=pacsv.ParseOptions(delimiter=delimiter, quote_char='"', ignore_empty_lines=False),
            convert_options=pacsv.ConvertOptions(
                column_types={names[c]: pa.float64() for c in wanted}, include_columns=[names[c] for c in wanted],
                null_values=list(na_values), strings_can_be_null=False, quoted_strings_can_be_null=False),
        )
    except (pa.ArrowException, ValueError):
        return None
    if table.num_rows != n_rows:
        return None
    X = np.empty((n_rows, len(usecols)))
    for j, c in enumerate(usecols):  # straight from the float64 buffers (to_numpy would import pandas)
        column = table.column(wanted.index(c))
        if column.null_count:  # pyarrow.compute only here: its import costs a CLI run 30 ms
            import pyarrow.compute as pc

            column = pc.fill_null(column, np.nan)
        X[:, j] = np.concatenate([np.frombuffer(a.buffers()[1], np.float64, len(a), 8 * a.offset)
                                  for a in column.chunks])
    return X
