"""The input options shared by the commands that read a CSV (how it is written), checked
by click callbacks so that a bad value is one line naming the option."""

from __future__ import annotations

import click


def checked(parse):
    """A click callback from a parser that raises UsageError: one line naming the option."""

    def callback(ctx, param, value):
        from .errors import UsageError

        try:
            return parse(value)
        except UsageError as e:
            raise click.BadParameter(str(e).partition(": ")[2] or str(e)) from None

    return callback


def dialect_parser(name):
    """io.dialect's parser ``name``, imported when the option is parsed (not at start-up)."""

    def parse(value):
        from .io import dialect

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
