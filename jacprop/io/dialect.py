"""How an input CSV is written: compression, delimiter, header line, missing values, comments.

- Compression is told by the first bytes (gzip ``1f 8b``, bzip2 ``BZh``, xz ``fd 37 7a 58 5a 00``),
  never by the name; the text inside is UTF-8 (an optional BOM) like a plain file.
- The delimiter, when not given, is sniffed from the first line (the header): the one of
  comma, semicolon, tab and pipe that occurs most often outside double quotes (comma when
  none occurs or on a tie); a file named ``*.tsv`` (also ``.tsv.gz`` ...) is tab-separated.
- A first line whose every field is a number (or a missing-value token, at least one being a
  number) is data, not a header, unless ``header=True`` says otherwise.
- Missing-value tokens (``NA_VALUES`` by default) are read as NaN, so ``--on-invalid`` decides
  what happens to their rows; a token that is itself a number (``-999``) marks every cell of
  that value.
"""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import math
import os
import re
import sys

from ..errors import InputError, UsageError

SNIFFED = (",", ";", "\t", "|")  # in the order that breaks ties
DELIMITER_NAMES = {"tab": "\t", "\\t": "\t", "comma": ",", "semicolon": ";", "pipe": "|", "space": " "}
NA_VALUES = ("", "NA", "NaN", "nan", "null")
MAGIC = ((b"\x1f\x8b", "gzip"), (b"BZh", "bzip2"), (b"\xfd7zXZ\x00", "xz"))
DECOMPRESSION_ERRORS = (EOFError, OSError, lzma.LZMAError, gzip.BadGzipFile)  # truncated or corrupt data
_QUOTED = re.compile(r'"[^"]*"')


def input_name(source) -> str:
    """How messages name an input: "stdin" for "-" (as the read-back of jacobian output does), else the path."""
    return "stdin" if str(source) == "-" else str(source)


def shown(delimiter: str) -> str:
    """A delimiter as a message shows it ('\\t' for a tab)."""
    return repr(delimiter) if delimiter != "\t" else "tab ('\\t')"


def parse_delimiter(text: str | None) -> str | None:
    """--delimiter: one character, or tab, \\t, comma, semicolon, pipe, space (None: sniff)."""
    if text is None:
        return None
    value = DELIMITER_NAMES.get(text.lower() if len(text) > 1 else text, text)
    if len(value) != 1 or value in '"\r\n' or value.isalnum() or value in ".+-":
        raise UsageError(f"--delimiter {text!r}: expected one character (e.g. ';' or '|') or one of "
                         f"{', '.join(DELIMITER_NAMES)}; not a letter, digit, quote, '.', '+' or '-'")
    return value


def parse_comment(text: str | None) -> str | None:
    """--comment: the one character that starts a comment (to the end of the line)."""
    if text is None:
        return None
    if len(text) != 1 or text in '"\r\n' or text.isalnum() or text in ".+-":
        raise UsageError(f"--comment {text!r}: expected one character such as '#'")
    return text


def parse_na_values(values) -> tuple[str, ...] | None:
    """--na-values 'NA,-999' (repeatable; an empty item is the empty cell) -> tokens; None: the defaults."""
    if not values:
        return None
    return tuple(dict.fromkeys(token.strip() for value in values for token in value.split(",")))


def na_numbers(tokens) -> list[float]:
    """The tokens that are numbers themselves (sentinels such as -999): cells of that value are missing."""
    out = []
    for token in tokens:
        try:
            value = float(token)
        except ValueError:
            continue
        if not math.isnan(value):
            out.append(value)
    return out


def compression_of(head: bytes) -> str | None:
    return next((name for magic, name in MAGIC if head.startswith(magic)), None)


def open_binary(source) -> tuple[io.BufferedIOBase, str | None]:
    """(a binary stream of the decompressed bytes, the compression or None) for a path, "-" or a
    binary stream; the compression is told by the magic bytes."""
    if hasattr(source, "read") or str(source) == "-":
        raw = source if hasattr(source, "read") else sys.stdin.buffer
        raw = raw if hasattr(raw, "peek") else io.BufferedReader(raw)
    else:
        try:
            raw = open(source, "rb")
        except OSError as e:
            raise InputError(f"{source}: cannot open input: {e.strerror or e}") from None
    try:
        kind = compression_of(raw.peek(6)[:6])
    except OSError:
        kind = None
    if kind == "gzip":
        return gzip.GzipFile(fileobj=raw, mode="rb"), kind
    if kind == "bzip2":
        return bz2.BZ2File(raw, "rb"), kind
    if kind == "xz":
        return lzma.LZMAFile(raw, "rb"), kind
    return raw, None


def open_text(source) -> tuple[io.TextIOBase, str | None]:
    """A text stream (UTF-8 with an optional BOM, any newline style) and the compression."""
    raw, kind = open_binary(source)
    return io.TextIOWrapper(raw, encoding="utf-8-sig", newline=""), kind


def sniff_delimiter(line: str, path) -> str:
    """The delimiter of a file whose first line is ``line``: tab for *.tsv, else the most
    frequent of ``SNIFFED`` outside double quotes (comma when none occurs)."""
    name = os.path.basename(str(path)).lower()
    for suffix in (".gz", ".bz2", ".xz"):
        name = name.removesuffix(suffix)
    if name.endswith(".tsv"):
        return "\t"
    text = _QUOTED.sub("", line)
    counts = [text.count(c) for c in SNIFFED]
    best = max(counts)
    return SNIFFED[counts.index(best)] if best else ","


def is_data_line(cells, na_values) -> bool:
    """Whether a first line is data: every field a number or a missing-value token, one at least a number."""
    numbers = 0
    for cell in cells:
        text = cell.strip()
        if text in na_values:
            continue
        try:
            float(text)
        except ValueError:
            return False
        numbers += 1
    return numbers > 0


def cut_comment(line: str, comment: str) -> str:
    """The line without its comment (from ``comment`` to the end), keeping the line end."""
    at = line.find(comment)
    return line if at < 0 else line[:at] + "\n"


def first_bad_utf8(path) -> str | None:
    """'line L, byte B: not UTF-8 text' for the first undecodable line of a file (None for a stream)."""
    if path is None:
        return None
    with open(path, "rb") as f:
        for number, line in enumerate(f, start=1):
            try:
                line.decode("utf-8")
            except UnicodeDecodeError as e:
                return f"line {number}, byte {e.start + 1}: not UTF-8 text"
    return None


def has_text(line: bytes) -> bool:
    """Whether a line holds something (CsvReader skips lines whose str.strip() is empty)."""
    s = line.strip()
    if not s:
        return False
    if s[0] < 0x80 and not 0x1C <= s[0] <= 0x1F:
        return True
    return bool(line.decode("utf-8", "replace").strip())


_DECIMAL_COMMA = re.compile(r"[+-]?\d+,\d+(?:[eE][+-]?\d+)?")


def not_a_number(text: str) -> str:
    """What a refused cell is called: ``'1,5' is not a number``, with a hint for a decimal comma."""
    comma = _DECIMAL_COMMA.fullmatch(text.strip())
    hint = " (a decimal comma? jacprop reads numbers with a point: 1.5)" if comma else ""
    return f"{text[:40]!r} is not a number{hint}"
