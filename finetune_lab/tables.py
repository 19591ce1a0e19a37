"""One table renderer for every report: fixed-width text for a terminal, or a Markdown table.

Cells are strings the caller has already formatted (digits, '-' for missing), so this module
only lays them out: leaderboards (compare), per-class reports (metrics), benchmark tables.
"""

from __future__ import annotations

from collections.abc import Sequence

FORMATS = ("text", "markdown")


def render(
    header: Sequence[str],
    rows: Sequence[Sequence[str]],
    fmt: str = "text",
    max_width: int | None = None,
    align: str = "",
) -> str:
    """`header` and `rows` as a table in `fmt` ('text' or 'markdown'), without a final newline.

    align: one letter per column, 'l' (left, the default) or 'r' (right, for numbers); columns
    past its end are left-aligned. max_width: longer cells are cut to it, ending in '...'.
    Rows shorter than the header are padded with empty cells (e.g. a summary line under a table).
    """
    if fmt not in FORMATS:
        raise ValueError(f"table format {fmt!r}: choose one of {', '.join(FORMATS)}")
    if any(len(row) > len(header) for row in rows):
        raise ValueError(f"a row has more cells than the header's {len(header)}")
    aligns = align.ljust(len(header), "l")
    cells = [[_cut(cell, max_width) for cell in row] + [""] * (len(header) - len(row)) for row in rows]
    if fmt == "markdown":
        rule = "|" + "|".join("---:" if a == "r" else "---" for a in aligns) + "|"
        return "\n".join([_markdown_line(header), rule, *(_markdown_line(row) for row in cells)])
    widths = [max([len(title), *(len(row[i]) for row in cells)]) for i, title in enumerate(header)]

    def line(row: Sequence[str]) -> str:
        padded = (c.rjust(w) if a == "r" else c.ljust(w) for c, w, a in zip(row, widths, aligns, strict=True))
        return "  ".join(padded).rstrip()

    return "\n".join([line(header), line(["-" * w for w in widths]), *(line(row) for row in cells)])


def _cut(cell: str, max_width: int | None) -> str:
    """The cell, or its start and '...' when longer than max_width (many run names in one cell)."""
    if max_width is None or len(cell) <= max_width:
        return cell
    return cell[: max(max_width - 3, 0)] + "..."


def _markdown_line(cells: Sequence[str]) -> str:
    return "| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |"
