"""What is wrong with an import file, by line and column (the error itself lives in connectors.errors)."""

from __future__ import annotations

from connectors.errors import ImportRejected, Problem

__all__ = ["ImportRejected", "Problem", "column_letter"]


def column_letter(index: int) -> str:
    """``0`` -> ``A``, ``26`` -> ``AA``: how spreadsheets name a column."""
    letters = ""
    index += 1
    while index:
        index, rest = divmod(index - 1, 26)
        letters = chr(ord("A") + rest) + letters
    return letters
