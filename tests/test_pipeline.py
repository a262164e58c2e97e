"""End to end: `kqi demo` and `kqi run` as a user runs them, and what they leave on disk."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import openpyxl
import polars as pl
import pytest
from cli_helpers import exit_code

from kqi.synth import make_city

SMALL = {"n_cells": 240, "days": 7, "tests_per_cell_day": 20}
REQUIRED_OUTPUTS = (
    "cell_kqi.csv", "cell_kqi.parquet", "diagnosis.csv", "diagnosis.parquet", "work_orders.csv",
    "work_orders.xlsx", "complaint_links.csv", "hotspots.csv", "summary.json", "summary.md",
    "map.html", "manifest.json",
)


def _kqi(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = exit_code(argv)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture(scope="module")
def city(tmp_path_factory: pytest.TempPathFactory):
    """A small city in GBK with Chinese headers and a few malformed rows planted."""
    return make_city(tmp_path_factory.mktemp("city"), seed=11, encoding="gbk",
                     chinese_headers=True, corrupt=True, **SMALL)


@pytest.fixture(scope="module")
def run_out(city, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("out")
    code = exit_code(["-q", "run", "--cells", str(city.cells), "--tests", str(city.tests),
                      "--kpis", str(city.kpis), "--complaints", str(city.complaints),
                      "--subscribers", str(city.subscribers), "--out", str(out)])
    assert code == 0
    return out


def test_run_writes_every_contract_output(run_out: Path) -> None:
    for name in REQUIRED_OUTPUTS:
        assert (run_out / name).is_file(), name
    kqi = pl.read_csv(run_out / "cell_kqi.csv")
    assert kqi.columns[:6] == ["cell_id", "service", "tests", "good_tests", "good_rate", "poor"]
    wo = pl.read_csv(run_out / "work_orders.csv")
    assert wo.columns[:13] == [
        "rank", "cell_id", "cell_name", "site_id", "vendor", "region", "poor_services",
        "primary_cause", "secondary_causes", "evidence", "complaints", "priority_score", "action"]
    assert wo["rank"].to_list() == list(range(1, wo.height + 1))
    assert set(wo["primary_cause"]) <= {
        "interference", "high_load", "fault", "weak_coverage", "overshooting", "unknown"}
    poor_cells = kqi.filter(pl.col("poor"))["cell_id"].unique()
    assert sorted(wo["cell_id"]) == sorted(poor_cells)
    links = pl.read_csv(run_out / "complaint_links.csv")
    assert {"complaint_id", "cell_id", "distance_m"} <= set(links.columns)
    hotspots = pl.read_csv(run_out / "hotspots.csv")
    volume = hotspots.filter(pl.col("kind") == "volume")
    assert volume.height > 0
    assert volume["region"].null_count() == volume["lat"].null_count() == 0


def test_manifest_accounting_closes(run_out: Path) -> None:
    manifest = json.loads((run_out / "manifest.json").read_text(encoding="utf-8"))
    assert set(manifest["feeds"]) >= {"cells", "app_tests", "cell_kpis", "complaints"}
    for name, feed in manifest["feeds"].items():
        assert feed["rows_read"] == feed["rows_accepted"] + feed["rows_rejected"], name
        assert len(feed["sha256"]) == 64
    assert manifest["kqi_version"]
    assert manifest["config"]["kqi"]["thresholds"]["browsing"] == 0.8
    # times are kept apart so that the manifest is byte-identical between identical runs
    assert "timings_s" not in manifest
    assert "started_utc" not in manifest
    info = json.loads((run_out / "run_info.json").read_text(encoding="utf-8"))
    assert info["timings_s"]
    assert info["started_utc"]
    assert "run_info.json" in manifest["outputs"]


def test_exactly_the_malformed_rows_are_rejected(city, run_out: Path) -> None:
    expected = pl.read_csv(city.expected_rejects)
    manifest = json.loads((run_out / "manifest.json").read_text(encoding="utf-8"))
    for feed in ("app_tests", "complaints", "cells", "cell_kpis"):
        want = sorted(expected.filter(pl.col("feed") == feed)["line"].to_list())
        path = run_out / "rejects" / f"{feed}.csv"
        got = sorted(pl.read_csv(path, infer_schema=False)["line"].cast(pl.Int64).to_list()) \
            if path.exists() else []
        assert got == want, feed
        assert manifest["feeds"][feed]["rows_rejected"] == len(want)
    rejects = pl.read_csv(run_out / "rejects" / "app_tests.csv", infer_schema=False)
    assert rejects["reason"].str.len_chars().min() > 0


def test_no_msisdn_anywhere_in_the_output(city, run_out: Path) -> None:
    raw = city.complaints.read_bytes().decode("gbk", errors="replace")
    header = raw.splitlines()[0].split(",")
    col = next(i for i, h in enumerate(header) if h.strip().lower() in ("msisdn", "手机号", "号码", "用户号码"))
    msisdns = {line.split(",")[col].strip('"') for line in raw.splitlines()[1:]
               if len(line.split(",")) > col}
    msisdns = {m for m in msisdns if len(m) >= 8 and m.isdigit()}
    assert len(msisdns) > 10
    blobs: list[str] = []
    for p in run_out.rglob("*"):
        if p.suffix == ".xlsx":
            with zipfile.ZipFile(p) as z:
                blobs += [z.read(n).decode("utf-8", "replace") for n in z.namelist()]
        elif p.is_file() and p.suffix in (".csv", ".json", ".md", ".html"):
            blobs.append(p.read_text(encoding="utf-8", errors="replace"))
    text = "\n".join(blobs)
    leaked = [m for m in msisdns if m in text]
    assert leaked == []


def test_workbook_opens_with_summary_and_vendor_sheets(run_out: Path) -> None:
    wb = openpyxl.load_workbook(run_out / "work_orders.xlsx")
    assert wb.sheetnames[0].lower().startswith("summary")
    wo = pl.read_csv(run_out / "work_orders.csv")
    for vendor in wo["vendor"].unique().to_list():
        assert any(vendor in name for name in wb.sheetnames), vendor
        assert wb[vendor].max_row == 1 + wo.filter(pl.col("vendor") == vendor).height
    # the case table as a table: scope rows (all, vendors, regions) x counts, as in summary.json
    summary = json.loads((run_out / "summary.json").read_text(encoding="utf-8"))
    ws = wb.worksheets[0]
    assert ws["A3"].value == "Poor-quality cells"          # a titled table, in words
    header = [c.value for c in ws[4]]
    assert header[:4] == ["Scope", "Cells reporting", "Poor cells", "Poor share"]
    rows = {r[0]: r for r in ws.iter_rows(min_row=5, max_col=len(header), values_only=True) if r[0]}
    assert rows["All cells"][1] == summary["cells_reporting"]
    assert rows["All cells"][2] == summary["poor_cells"]
    for vendor, counts in summary["by_vendor"].items():
        assert rows[f"Vendor: {vendor}"][2] == counts["poor_cells"]
    # the input row accounting as a table, numbers stored as numbers
    values = [[c.value for c in r] for r in ws.iter_rows()]
    head = next(i for i, r in enumerate(values) if r[:4] == ["Input", "Rows read", "Accepted",
                                                              "Rejected"])
    feeds = {r[0]: r for r in values[head + 1:head + 1 + len(summary["inputs"])]}
    assert feeds["App tests"][1] == summary["inputs"]["app_tests"]["rows_read"]
    assert feeds["App tests"][3] == summary["inputs"]["app_tests"]["rows_rejected"] > 0


def test_summary_md_names_the_inputs_in_words_with_their_files(run_out: Path, city) -> None:
    """summary.md's Inputs table: each feed as readers name it, with the file it came from."""
    md = (run_out / "summary.md").read_text(encoding="utf-8")
    lines = md.splitlines()
    head = lines.index("| input | file | rows read | accepted | rejected |")
    table = lines[head + 2:lines.index("", head)]
    rows = {cells[0]: cells[1] for cells in (r.strip("|").split(" | ") for r in table)}
    rows = {k.strip(): v.strip() for k, v in rows.items()}
    assert rows["App tests"] == city.tests.name
    assert rows["Cell KPIs (hourly)"] == city.kpis.name
    assert rows["Cells (engineering parameters)"] == city.cells.name
    assert "cell_kpis" not in " ".join(rows)


def test_work_orders_csv_opens_in_excel(run_out: Path) -> None:
    """UTF-8 with a byte order mark (Excel reads Chinese right on a double click); the
    contract's column names unchanged for every reader that skips the mark."""
    raw = (run_out / "work_orders.csv").read_bytes()
    assert raw.startswith(b"\xef\xbb\xbfrank,cell_id,")
    assert pl.read_csv(run_out / "work_orders.csv").columns[:2] == ["rank", "cell_id"]
    import csv

    with (run_out / "work_orders.csv").open(encoding="utf-8-sig", newline="") as f:
        assert next(csv.reader(f))[:2] == ["rank", "cell_id"]


def test_same_inputs_give_identical_csvs(city, run_out: Path, tmp_path: Path) -> None:
    out2 = tmp_path / "again"
    assert exit_code(["-q", "run", "--cells", str(city.cells), "--tests", str(city.tests),
                      "--kpis", str(city.kpis), "--complaints", str(city.complaints),
                      "--subscribers", str(city.subscribers), "--out", str(out2)]) == 0
    for p in sorted(run_out.rglob("*.csv")):
        rel = p.relative_to(run_out)
        assert (out2 / rel).read_bytes() == p.read_bytes(), rel


def test_demo_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _kqi(["demo", "--out", str(tmp_path / "demo"), "--cells", "150", "--days", "3"],
                        capsys)
    assert code == 0
    assert (tmp_path / "demo" / "input").is_dir()
    for name in REQUIRED_OUTPUTS:
        assert (tmp_path / "demo" / name).is_file(), name
    assert "work_orders.csv" in out
    assert "poor" in out


@pytest.mark.parametrize(
    ("mutate", "needle"),
    [
        ("missing", "not found"),
        ("no_rows", "no data rows"),
        ("no_column", "cell_id"),
        ("binary", "decode"),
    ],
)
def test_unusable_input_is_one_line_and_nonzero(city, tmp_path: Path, mutate: str, needle: str,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "tests.csv"
    lines = city.tests.read_text(encoding="utf-8").splitlines()
    if mutate == "no_rows":
        bad.write_text(lines[0] + "\n", encoding="utf-8")
    elif mutate == "no_column":
        header = lines[0].split(",")
        keep = [i for i, h in enumerate(header) if h != "cell_id"]
        bad.write_text("\n".join(",".join(row.split(",")[i] for i in keep) for row in lines[:50]),
                       encoding="utf-8")
    elif mutate == "binary":
        bad.write_bytes(b"\x00\xff\xfe\x81" * 5000)
    code, _, err = _kqi(["run", "--cells", str(city.cells), "--tests", str(bad), "--kpis",
                         str(city.kpis), "--out", str(tmp_path / "o")], capsys)
    assert code == 2
    # stage lines (done, or still running: kqi.progress) may precede it; the error itself is
    # exactly one line
    lines_err = [ln for ln in err.strip().splitlines()
                 if ln.strip() and "✓" not in ln and not ln.endswith(" ...")]
    assert len(lines_err) == 1, err
    assert "tests.csv" in lines_err[0]
    assert needle in lines_err[0].lower()
    assert "Traceback" not in err


def test_bad_config_is_one_line(city, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "bad.toml"
    cfg.write_text("[kqi.thresholds]\nbrowsng = 0.8\n", encoding="utf-8")
    code, _, err = _kqi(["run", "--cells", str(city.cells), "--tests", str(city.tests), "--kpis",
                         str(city.kpis), "--out", str(tmp_path / "o"), "--config", str(cfg)], capsys)
    assert code == 2
    assert "browsng" in err
    assert "bad.toml" in err
    assert len(err.strip().splitlines()) == 1  # nothing ran: config is read first


def test_rerun_into_same_folder_leaves_no_stale_outputs(city, tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "o"
    args = ["run", "--cells", str(city.cells), "--tests", str(city.tests), "--kpis", str(city.kpis),
            "--out", str(out)]
    code, stdout, _ = _kqi([*args, "--complaints", str(city.complaints)], capsys)
    assert code == 0
    assert (out / "complaint_links.csv").exists()
    assert "rows rejected" in stdout  # the planted malformed rows are reported, not only filed
    code, _, _ = _kqi(args, capsys)
    assert code == 0
    assert not (out / "complaint_links.csv").exists()
    assert not (out / "hotspots.csv").exists()
    assert not (out / "rejects" / "complaints.csv").exists()
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    assert "complaints" not in manifest["feeds"]
    on_disk = {str(p.relative_to(out)) for p in out.rglob("*") if p.is_file()}
    assert on_disk == {*manifest["outputs"], "manifest.json"}


def test_quiet_and_verbose_after_the_subcommand(city, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    args = ["run", "--cells", str(city.cells), "--tests", str(city.tests), "--kpis", str(city.kpis),
            "--out", str(tmp_path / "o")]
    code, out, err = _kqi([*args, "-q"], capsys)
    assert code == 0
    assert out == ""
    assert "✓" not in err
    code, out, err = _kqi([*args, "-v"], capsys)
    assert code == 0
    assert "wrote to" in out
    # each ingest stage's line says how many rows it read, and how fast (kqi.progress)
    done = [ln for ln in err.splitlines() if "✓ ingest KPIs (" in ln]
    assert len(done) == 1
    assert " rows, " in done[0]
    assert "rows/s)" in done[0]


def test_in_memory_run_matches_the_file_run(tmp_path: Path) -> None:
    """The whole analysis from polars/Arrow tables with out=None gives the file run's tables,
    rejects the same rows (held on the result) and writes nothing."""
    import kqi

    city = make_city(tmp_path / "city", seed=5, n_cells=200, days=7, tests_per_cell_day=20)
    # two bad test rows: an unknown cell and an unknown service, in the file and in memory
    tests_text = city.tests.read_text(encoding="utf-8").splitlines()
    header = tests_text[0].split(",")
    row = dict(zip(header, tests_text[1].split(","), strict=True))
    bad1 = {**row, "cell_id": "NOT-A-CELL"}
    bad2 = {**row, "service": "fishing"}
    tests_text += [",".join(r[h] for h in header) for r in (bad1, bad2)]
    city.tests.write_text("\n".join(tests_text) + "\n", encoding="utf-8")

    file_out = tmp_path / "file-run"
    from_files = kqi.run(cells=city.cells, tests=city.tests, kpis=city.kpis,
                         complaints=city.complaints, subscribers=city.subscribers, out=file_out)

    def frame(p: Path) -> pl.DataFrame:  # every column as text, as a CSV reader leaves them
        return pl.read_csv(p, infer_schema=False)

    before = sorted(p.name for p in tmp_path.iterdir())
    mem = kqi.run(cells=frame(city.cells), tests=frame(city.tests).lazy(),
                  kpis=frame(city.kpis).to_arrow(), complaints=frame(city.complaints),
                  subscribers=frame(city.subscribers), out=None)
    assert sorted(p.name for p in tmp_path.iterdir()) == before   # nothing written
    assert mem.out is None
    assert mem.files == []
    for name in ("cell_kqi", "daily", "diagnosis", "clusters", "areas", "links", "hotspots",
                 "silent", "work_orders"):
        got, want = getattr(mem, name), getattr(from_files, name)
        assert got is not None
        assert want is not None
        assert got.equals(want), name
        assert got.height, name
    # the same rows rejected, with the same lines and reasons, held on the result
    assert mem.reports["app_tests"].rows_rejected == 2
    on_disk = pl.read_csv(file_out / "rejects" / "app_tests.csv", infer_schema=False)
    held = mem.rejects["app_tests"]
    assert held.height == 2
    assert held["reason"].to_list() == on_disk["reason"].to_list()
    # in memory, "line" is the 1-based row number (as for Parquet); the CSV's line counts the header
    assert [int(x) + 1 for x in held["line"].to_list()] == [int(x) for x in on_disk["line"].to_list()]
    assert mem.summary["work_orders"] == from_files.summary["work_orders"]
    assert mem.manifest["inputs"]["tests"] == "<tests LazyFrame>"


def test_public_api_shows_real_signatures() -> None:
    import inspect
    import subprocess
    import sys

    import kqi

    assert kqi.run.__module__ == "kqi.pipeline"
    assert "out" in inspect.signature(kqi.run).parameters
    assert inspect.signature(kqi.flag_cells).return_annotation in ("pl.DataFrame", pl.DataFrame)
    assert "Parameters" in (kqi.run.__doc__ or "")
    assert kqi.InputError.__module__ == "kqi.errors"
    assert kqi.Config().kqi.min_tests == 30
    # import kqi stays light: no numba, polars or stage module until a function is used
    code = ("import sys, kqi; bad = [m for m in ('numba', 'polars', 'kqi.pipeline', 'kqi.ingest') "
            "if m in sys.modules]; print(bad)")
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True).stdout.strip() == "[]"


def test_workbook_in_chinese_has_its_sentences_in_chinese(city, tmp_path: Path) -> None:
    """``[output] language = "zh"``: the evidence, recommended actions and review notes of the
    workbook are Chinese (figures unchanged); work_orders.csv keeps the contract's English."""
    import re

    import kqi

    cfg = kqi.config.config_from_dict({"output": {"language": "zh", "map": False}})
    r = kqi.run(cells=city.cells, tests=city.tests, kpis=city.kpis, complaints=city.complaints,
                out=tmp_path / "zh", config=cfg)
    wb = openpyxl.load_workbook(tmp_path / "zh" / "work_orders.xlsx")
    # the workbook's own sheets are named in Chinese, the vendors' sheets by vendor
    vendors = sorted(r.work_orders["vendor"].drop_nulls().unique().to_list())
    assert wb.sheetnames[:2] == ["汇总", "全部工单"]
    assert wb.sheetnames[2:] == vendors + (["未知厂家"] if r.work_orders["vendor"].null_count()
                                           else [])
    ws = wb[wb.sheetnames[1]]
    header = [c.value for c in ws[1]]
    rows = list(ws.iter_rows(min_row=2, values_only=True))
    assert len(rows) == r.work_orders.height > 0
    acronyms = {"dB", "dBm", "MR", "ID", "CQI", "PRB", "RRC", "RSRP", "SINR", "ISD", "KPI", "KPIs", "PIM", "TA"}
    seen = 0
    for column in ("依据", "建议措施", "待复核说明"):
        for value in (row[header.index(column)] for row in rows):
            if not value:
                continue
            seen += 1
            assert re.search("[\u4e00-\u9fff]", value), (column, value)   # not ASCII only
            words = set(re.findall("[A-Za-z]{2,}", value)) - acronyms
            assert words == set(), (column, value)
    assert seen > r.work_orders.height
    # the summary sheet's sentences too (the network's reference, the proposals' basis ...):
    # what English is left is the config's setting names and the data's own names
    names = {"kqi", *r.cells["vendor"].drop_nulls().to_list(),
             *r.cells["region"].drop_nulls().to_list()}
    for row in wb[wb.sheetnames[0]].iter_rows(values_only=True):
        for value in row:
            if not isinstance(value, str):
                continue
            rest = re.sub(r"\S+\.(?:csv|parquet)\b", "", value)        # file names
            rest = re.sub(r"\b[a-z0-9]+(?:_[a-z0-9]+)+\b", "", rest)    # setting names
            words = set(re.findall("[A-Za-z]{2,}", rest)) - acronyms
            assert all(any(w in v for v in names) for w in words), value
    csv = pl.read_csv(tmp_path / "zh" / "work_orders.csv")
    assert csv["evidence"].to_list() == r.work_orders["evidence"].to_list()
    assert not any(re.search("[\u4e00-\u9fff]", v) for v in csv["evidence"].to_list())
    # the numbers of each sentence unchanged
    shown = [row[header.index("依据")] for row in rows]
    by_cell = dict(zip(r.work_orders["cell_id"], r.work_orders["evidence"], strict=True))
    for row, zh in zip(rows, shown, strict=True):
        en = by_cell[row[header.index("小区ID")]]
        assert re.findall(r"-?\d+(?:\.\d+)?", zh) == re.findall(r"-?\d+(?:\.\d+)?", en)
