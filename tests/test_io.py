"""Output writing: atomic, deterministic, formula-inert."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from kqi.io import atomic_path, inert_text, make_inert, write_csv


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("=HYPERLINK(\"http://x\",\"y\")", "'=HYPERLINK(\"http://x\",\"y\")"),
        ("+SUM(1,2)", "'+SUM(1,2)"),
        ("-1+2", "'-1+2"),
        ("@cmd", "'@cmd"),
        ("\tx", "'\tx"),
        ("上网慢", "上网慢"),
        ("plain text", "plain text"),
        ("", ""),
        (None, None),
    ],
)
def test_inert_text(value: str | None, expected: str | None) -> None:
    assert inert_text(value) == expected


def test_make_inert_leaves_numbers_alone() -> None:
    df = pl.DataFrame({"a": ["=1+1", "ok", None], "n": [-1.0, 2.0, 3.0]})
    out = make_inert(df)
    assert out["a"].to_list() == ["'=1+1", "ok", None]
    assert out["n"].to_list() == [-1.0, 2.0, 3.0]
    assert out["a"].to_list() == [inert_text(v) for v in df["a"].to_list()]


def test_atomic_write_leaves_old_file_on_failure(tmp_path: Path) -> None:
    target = tmp_path / "x.csv"
    target.write_text("old", encoding="utf-8")
    def write_then_fail() -> None:
        with atomic_path(target) as tmp:
            tmp.write_text("half", encoding="utf-8")
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        write_then_fail()
    assert target.read_text(encoding="utf-8") == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["x.csv"]


def test_write_csv_is_deterministic(tmp_path: Path) -> None:
    df = pl.DataFrame({"a": ["x", "=y"], "b": [1.23456789, 2.0]})
    write_csv(tmp_path / "1.csv", df)
    write_csv(tmp_path / "2.csv", df)
    assert (tmp_path / "1.csv").read_bytes() == (tmp_path / "2.csv").read_bytes()
    assert "'=y" in (tmp_path / "1.csv").read_text(encoding="utf-8")


def test_outputs_are_readable_by_others(tmp_path: Path) -> None:
    import os
    import stat

    old = os.umask(0o022)
    try:
        write_csv(tmp_path / "x.csv", pl.DataFrame({"a": [1]}))
    finally:
        os.umask(old)
    mode = stat.S_IMODE((tmp_path / "x.csv").stat().st_mode)
    assert mode & 0o044 == 0o044
