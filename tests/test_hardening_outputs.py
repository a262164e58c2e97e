"""Issue 12, classes 2, 4 and 5 end to end: hostile names give inert, well-formed outputs; OS
errors are one line; two identical runs give byte-identical outputs (run_info.json apart)."""

from __future__ import annotations

import csv
import io
import zipfile
from pathlib import Path

import hostile_cases as hc
import openpyxl
import polars as pl
import pytest
from cli_helpers import exit_code as _kqi

from kqi.io import inert_text, make_inert, md_text
from kqi.synth import make_city

SMALL = {"n_cells": 60, "days": 3, "tests_per_cell_day": 10}


@pytest.fixture(scope="module")
def city(tmp_path_factory: pytest.TempPathFactory):
    return make_city(tmp_path_factory.mktemp("city"), seed=3, **SMALL)


def _argv(city, out: Path, cells: Path | None = None) -> list[str]:
    return ["-q", "run", "--cells", str(cells or city.cells), "--tests", str(city.tests),
            "--kpis", str(city.kpis), "--complaints", str(city.complaints), "--out", str(out)]


@pytest.fixture(scope="module")
def hostile_out(city, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("hostile")
    cells = pl.read_csv(city.cells, infer_schema_length=0)
    names = hc.HOSTILE_NAMES
    cells = cells.with_columns(
        pl.Series("vendor", [names[k % len(names)] for k in range(cells.height)]),
        pl.Series("region", [names[(k + 3) % len(names)] for k in range(cells.height)]),
        pl.Series("cell_name", [names[(k + 5) % len(names)] for k in range(cells.height)]),
        pl.lit("x").alias('=HYPERLINK("http://evil")'),
    )
    bad = cells.head(len(hc.NEGATIVE_NUMBERS)).with_columns(
        pl.Series("lat", list(hc.NEGATIVE_NUMBERS)), pl.lit("-195").alias("lon"),
        pl.Series("cell_id", [f"Y{k}" for k in range(len(hc.NEGATIVE_NUMBERS))]))
    path = root / "cells.csv"
    pl.concat([cells, bad]).write_csv(path)
    out = root / "out"
    assert _kqi(_argv(city, out, path)) == 0
    return out


def test_workbook_reloads(hostile_out: Path) -> None:
    wb = openpyxl.load_workbook(hostile_out / "work_orders.xlsx")
    for title in wb.sheetnames:
        assert not any(ord(ch) < 32 for ch in title)


def test_no_control_characters_in_any_output(hostile_out: Path) -> None:
    for p in sorted(hostile_out.rglob("*")):
        if p.is_file() and p.suffix in (".csv", ".md", ".json", ".html"):
            text = p.read_text(encoding="utf-8")
            bad = {ch for ch in text if (ord(ch) < 32 and ch not in "\t\n\r") or ord(ch) == 0x7F
                   or 0x202A <= ord(ch) <= 0x202E}
            assert not bad, (p.name, bad)


def test_csv_outputs_are_well_formed_and_inert(hostile_out: Path) -> None:
    for p in sorted(hostile_out.rglob("*.csv")):
        rows = list(csv.reader(io.StringIO(p.read_text(encoding="utf-8"))))
        assert len({len(r) for r in rows}) == 1, p.name
        for field in (f for r in rows for f in r):
            assert not field.startswith(("=", "@", "\t", "\r")), (p.name, field)
            if field[:1] in "+-":
                assert inert_text(field) == field, (p.name, field)  # a number: left alone
    rejects = (hostile_out / "rejects" / "cells.csv").read_text(encoding="utf-8")
    assert "'=HYPERLINK" in rejects.splitlines()[0]
    lats = pl.read_csv(hostile_out / "rejects" / "cells.csv", infer_schema_length=0)["lat"]
    assert sorted(lats.to_list()) == sorted(hc.NEGATIVE_NUMBERS)


def test_summary_md_takes_no_markup_from_names(hostile_out: Path, city, tmp_path: Path) -> None:
    md = (hostile_out / "summary.md").read_text(encoding="utf-8")
    assert "<script" not in md.lower()
    assert all(not line.startswith("#") or line.startswith(("# ", "## ")) for line in md.splitlines())
    headings = [line for line in md.splitlines() if line.startswith("#")]
    assert not any("Heading" in h for h in headings)


@pytest.mark.parametrize("name", hc.HOSTILE_NAMES)
def test_md_text_is_one_inert_line(name: str) -> None:
    out = md_text(name)
    assert "\n" not in out
    assert "<" not in out
    assert not out.startswith("#")


def test_make_inert_numbers_and_formulas() -> None:
    df = pl.DataFrame({"v": [*hc.NEGATIVE_NUMBERS, *hc.FORMULAS]})
    out = make_inert(df)["v"].to_list()
    assert out[:len(hc.NEGATIVE_NUMBERS)] == list(hc.NEGATIVE_NUMBERS)
    assert all(v.startswith("'") for v in out[len(hc.NEGATIVE_NUMBERS):])


@pytest.mark.parametrize(("errno_", "message"), [
    (28, "No space left on device"), (30, "Read-only file system"), (13, "Permission denied"),
    (5, "Input/output error"), (122, "Disk quota exceeded")])
def test_os_errors_while_writing_are_one_line(*, city, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                              monkeypatch: pytest.MonkeyPatch, errno_: int,
                                              message: str) -> None:
    def fail(*_a: object, **_k: object) -> None:
        raise OSError(errno_, message)

    monkeypatch.setattr(pl.DataFrame, "write_csv", fail)
    out = tmp_path / "out"
    assert _kqi(_argv(city, out)) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert str(out) in err[0]
    assert message in err[0]
    assert "internal error" not in err[0]
    # the run made --out and wrote nothing into it: it takes the folder away again
    assert not out.exists()


def _contents(out: Path) -> dict[str, bytes]:
    return {p.relative_to(out).as_posix(): p.read_bytes() for p in sorted(out.rglob("*"))
            if p.is_file() and p.name not in ("run_info.json", ".kqi.lock")}


def test_identical_runs_give_identical_bytes(city, tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    assert _kqi(_argv(city, a)) == 0
    assert _kqi(_argv(city, b)) == 0
    first, second = _contents(a), _contents(b)
    assert set(first) == set(second)
    assert {"map.html", "work_orders.xlsx", "manifest.json", "summary.md"} <= set(first)
    differ = [name for name in first if first[name] != second[name]]
    assert not differ
    with zipfile.ZipFile(a / "work_orders.xlsx") as z:
        assert {i.date_time for i in z.infolist()} == {(2000, 1, 1, 0, 0, 0)}
    assert (a / "run_info.json").is_file()
