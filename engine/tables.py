"""The ``+---+`` tables ``taosx replica`` prints, for ``tdsync replica status`` and ``diff``.

>>> print(render(["replica", "task"], [["amber", 2]]))
+---------+------+
| replica | task |
+---------+------+
| amber   | 2    |
+---------+------+

Cells are left-aligned as in the seed; ``None`` prints as an empty cell; a line break inside a
cell becomes a space (a table row is one line). Widths count East Asian wide characters twice.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable, Sequence

__all__ = ["render", "text_of", "display_width"]


def text_of(value: object) -> str:
    """How a value shows in a cell."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:g}"
    text = str(value)
    return " ".join(text.split()) if any(c in text for c in "\r\n\t") else text


def display_width(text: str) -> int:
    width = 0
    for char in text:
        if unicodedata.combining(char):
            continue
        width += 2 if unicodedata.east_asian_width(char) in ("W", "F") else 1
    return width


def _pad(text: str, width: int) -> str:
    return text + " " * (width - display_width(text))


def render(headers: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    """The table as text (no trailing newline): border, header, border, rows, border."""
    cells = [[text_of(v) for v in row] for row in rows]
    for row in cells:
        if len(row) != len(headers):
            raise ValueError(f"a row has {len(row)} cells for {len(headers)} columns")
    widths = [max([display_width(h), *(display_width(r[i]) for r in cells)]) for i, h in enumerate(headers)]
    border = "+" + "+".join("-" * (w + 2) for w in widths) + "+"

    def line(values: Sequence[str]) -> str:
        return "| " + " | ".join(_pad(v, w) for v, w in zip(values, widths)) + " |"

    out = [border, line(list(headers)), border, *(line(r) for r in cells), border]
    return "\n".join(out)
