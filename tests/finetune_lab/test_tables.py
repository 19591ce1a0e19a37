"""The one table renderer: text and Markdown layout, alignment, cut cells, short rows."""

import pytest

from finetune_lab.tables import render

HEADER = ["run", "dev f1"]
ROWS = [["a-s1, a-s2", "0.8200 ± 0.0200"], ["b", "0.9"]]


def test_text_table_pads_columns_and_draws_a_rule():
    assert render(HEADER, ROWS).splitlines() == [
        "run         dev f1",
        "----------  ---------------",
        "a-s1, a-s2  0.8200 ± 0.0200",
        "b           0.9",  # no trailing spaces
    ]


def test_right_aligned_columns_and_short_rows():
    lines = render(["", "f1", "n"], [["neg", "0.5000", "1"], ["accuracy", "0.6667"]], align="lrr").splitlines()
    assert lines == [
        "              f1  n",
        "--------  ------  -",
        "neg       0.5000  1",
        "accuracy  0.6667",
    ]


def test_long_cells_are_cut_to_max_width():
    table = render(["run"], [["x" * 30]], max_width=10)
    assert table.splitlines()[2] == "xxxxxxx..."
    assert render(["run"], [["x" * 30]]).splitlines()[2] == "x" * 30  # no cap by default


def test_markdown_escapes_pipes_and_marks_right_aligned_columns():
    table = render(["a|b", "n"], [["x|y", "3"], ["z"]], fmt="markdown", align="lr")
    assert table.splitlines() == ["| a\\|b | n |", "|---|---:|", "| x\\|y | 3 |", "| z |  |"]


def test_header_only_table():
    assert render(["run", "n"], []) == "run  n\n---  -"


@pytest.mark.parametrize(
    "kwargs, message",
    [({"fmt": "html"}, "table format 'html'"), ({"rows": [["1", "2", "3"]]}, "more cells than the header's 2")],
)
def test_bad_input_is_a_value_error(kwargs, message):
    with pytest.raises(ValueError, match=message):
        render(**{"header": HEADER, "rows": ROWS, **kwargs})
