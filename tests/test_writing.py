from __future__ import annotations

import json
from pathlib import Path

import openpyxl
import pytest

from synthgen.rundir.writing import JsonlAppender, excel_safe, read_jsonl, write_excel


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        ("=SUM(A1:A2)", "'=SUM(A1:A2)"),
        ("+1", "'+1"),
        ("-cmd", "'-cmd"),
        ("@import", "'@import"),
        ("plain", "plain"),
        ("bell\x07 and nul\x00", "bell and nul"),
        ("non\ufffecharacters\uffff", "noncharacters"),
        (3, 3),
    ],
)
def test_excel_safe(value: object, shown: object) -> None:
    assert excel_safe(value) == shown


def test_excel_sheet_escapes_but_json_keeps_exact_text(tmp_path: Path) -> None:
    row = {"id": "1", "doc": "d\x0b", "question": '=HYPERLINK("x")', "answer": "-5", "tokens": {}}
    write_excel(tmp_path / "d.xlsx", {"train": [row], "val": []})
    wb = openpyxl.load_workbook(tmp_path / "d.xlsx")
    assert wb.sheetnames == ["train", "val"]
    ws = wb["train"]
    header = [c.value for c in ws[1]]
    assert header[:4] == ["id", "doc", "question", "answer"]
    cells = {h: c for h, c in zip(header, ws[2], strict=False)}
    assert cells["question"].value == '\'=HYPERLINK("x")' and cells["question"].data_type == "s"
    assert cells["answer"].value == "'-5"
    assert cells["doc"].value == "d"
    assert row["question"] == '=HYPERLINK("x")'  # the record itself is untouched


def test_read_jsonl_drops_and_repairs_a_cut_last_line(tmp_path: Path) -> None:
    p = tmp_path / "rows.jsonl"
    w = JsonlAppender(p)
    w.write([{"a": 1}, {"a": 2}])
    w.close()
    with open(p, "a") as f:
        f.write('{"a": 3, "b": "half')  # the process died mid-write
    assert read_jsonl(p) == [{"a": 1}, {"a": 2}]
    assert read_jsonl(p, repair=True) == [{"a": 1}, {"a": 2}]
    w = JsonlAppender(p)
    w.write([{"a": 4}])
    w.close()
    assert [json.loads(x) for x in p.read_text().splitlines()] == [{"a": 1}, {"a": 2}, {"a": 4}]


def test_read_jsonl_last_line_without_newline_is_kept(tmp_path: Path) -> None:
    p = tmp_path / "rows.jsonl"
    p.write_text('{"a": 1}\n{"a": 2}')
    assert read_jsonl(p, repair=True) == [{"a": 1}, {"a": 2}]
    JsonlAppender(p).write([{"a": 3}])
    assert read_jsonl(p) == [{"a": 1}, {"a": 2}, {"a": 3}]


def test_read_jsonl_corruption_in_the_middle_raises(tmp_path: Path) -> None:
    p = tmp_path / "rows.jsonl"
    p.write_text('{"a": 1}\nnot json\n{"a": 2}\n')
    with pytest.raises(ValueError, match="corrupt line"):
        read_jsonl(p)
