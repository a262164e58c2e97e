"""sectors.kmz and cells.geojson, read back with parsers; ``kqi map --cells`` (a network without
tests) on synthetic and real cells."""

from __future__ import annotations

import itertools
import json
import math
import zipfile
from pathlib import Path
from xml.etree import ElementTree as ET

import polars as pl
import pytest
from cli_helpers import exit_code
from kqi.maps.exports import kml_colour, write_exports
from kqi.maps.render import CAUSE_COLOURS, CAUSE_LABELS

from kqi.config import Config
from kqi.schema import CAUSES
from kqi.synth import make_city

REPO = Path(__file__).resolve().parents[1]
NS = {"k": "http://www.opengis.net/kml/2.2"}
SMALL = {"n_cells": 240, "days": 7, "tests_per_cell_day": 20}
HOSTILE = ']]><Placemark><name>injected</name></Placemark><![CDATA[ <img src=x onerror="alert(1)"> &amp;'
NSG_FILES = ("23410", "23415", "23420", "23430")


def read_kml(path: Path) -> ET.Element:
    with zipfile.ZipFile(path) as z:
        assert z.namelist() == ["doc.kml"]
        info = z.getinfo("doc.kml")
        assert info.date_time == (2000, 1, 1, 0, 0, 0)   # not the time of writing
        return ET.fromstring(z.read("doc.kml"))


def folders(el: ET.Element) -> dict[str, ET.Element]:
    return {f.findtext("k:name", namespaces=NS) or "": f for f in el.findall("k:Folder", NS)}


def views(root: ET.Element) -> tuple[ET.Element, ET.Element, ET.Element]:
    """The document, and its two views (By cause, By vendor) below the radio folder."""
    doc = root.find("k:Document", NS)
    assert doc is not None
    (top,) = doc.findall("k:Folder", NS)
    assert top.findtext("k:styleUrl", namespaces=NS) == "#views"
    radio = doc.find("k:Style[@id='views']/k:ListStyle/k:listItemType", NS)
    assert radio is not None
    assert radio.text == "radioFolder"
    v = folders(top)
    assert list(v) == ["By cause", "By vendor"]
    assert v["By vendor"].findtext("k:visibility", namespaces=NS) == "0"   # one view at a time
    return doc, v["By cause"], v["By vendor"]


def data(pm: ET.Element) -> dict[str, str]:
    return {d.get("name") or "": d.findtext("k:value", namespaces=NS) or ""
            for d in pm.findall("k:ExtendedData/k:Data", NS)}


def has_site(ring: list, lon: float, lat: float, omni: bool) -> bool:
    """A wedge starts at its site; an omni cell's circle is centred on it ([lon, lat] order)."""
    if omni:
        pts = ring[:-1]
        cx, cy = sum(p[0] for p in pts) / len(pts), sum(p[1] for p in pts) / len(pts)
        return math.isclose(cx, lon, abs_tol=1e-4) and math.isclose(cy, lat, abs_tol=1e-4)
    return any(math.isclose(x, lon, abs_tol=2e-6) and math.isclose(y, lat, abs_tol=2e-6)
               for x, y in ring)


def is_omni(cell: dict) -> bool:
    return (cell.get("beamwidth") or 0) >= 360


def signed_area(ring: list[list[float]]) -> float:
    return 0.5 * sum(x0 * y1 - x1 * y0 for (x0, y0), (x1, y1) in itertools.pairwise(ring))


# ---- kqi run ---------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def city(tmp_path_factory: pytest.TempPathFactory):
    return make_city(tmp_path_factory.mktemp("city"), seed=23, **SMALL)


@pytest.fixture(scope="module")
def run(city, tmp_path_factory: pytest.TempPathFactory):
    import kqi

    out = tmp_path_factory.mktemp("run")
    result = kqi.run(cells=city.cells, tests=city.tests, kpis=city.kpis,
                     complaints=city.complaints, out=out)
    return result


def poor_ids(result) -> set[str]:
    """The cells the map colours by cause: diagnosed or poor in any service."""
    ids = set(result.diagnosis["cell_id"].to_list())
    ids |= set(result.cell_kqi.filter(pl.col("poor"))["cell_id"].to_list())
    return ids


def test_run_writes_both_exports_and_lists_them(run) -> None:
    assert (run.out / "sectors.kmz").is_file()
    assert (run.out / "cells.geojson").is_file()
    manifest = json.loads((run.out / "manifest.json").read_text(encoding="utf-8"))
    assert {"sectors.kmz", "cells.geojson"} <= set(manifest["outputs"])
    assert manifest["config"]["output"]["kmz"] is True


def test_kmz_folders_styles_and_placemarks(run) -> None:
    root = read_kml(run.out / "sectors.kmz")
    doc, by_cause, by_vendor = views(root)
    expected = poor_ids(run)
    assert len(expected) > 5

    # styles: one per cause present, in the map's colours (KML aabbggrr)
    styles = {s.get("id"): s for s in doc.findall("k:Style", NS)}
    causes = {r["cell_id"]: r["primary_cause"] for r in run.diagnosis.iter_rows(named=True)}
    present = {causes.get(c, "unknown") for c in expected}
    for cause in present:
        st = styles[f"cause-{cause}"]
        fill = st.findtext("k:PolyStyle/k:color", namespaces=NS)
        assert fill is not None
        assert fill[2:] == kml_colour(CAUSE_COLOURS[cause], 1.0)[2:]

    # By cause: one folder per cause present, named with its label and count, wedges of it only
    seen: list[str] = []
    sub = folders(by_cause)
    assert len(sub) == len(present)
    for name, folder in sub.items():
        marks = folder.findall("k:Placemark", NS)
        cause = next(c for c in CAUSES if name == f"{CAUSE_LABELS[c]} ({len(marks):,})")
        for pm in marks:
            d = data(pm)
            assert pm.findtext("k:styleUrl", namespaces=NS) == f"#cause-{cause}"
            assert causes.get(d["cell_id"], "unknown") == cause
            seen.append(d["cell_id"])
    assert sorted(seen) == sorted(expected)           # placemarks = poor cells, once each

    # By vendor: the same cells, a folder per vendor
    vendors = dict(run.cells.select("cell_id", pl.col("vendor").fill_null("")).iter_rows())
    in_vendor = []
    for name, folder in folders(by_vendor).items():
        for pm in folder.findall("k:Placemark", NS):
            cid = data(pm)["cell_id"]
            assert name.startswith(vendors[cid] or "Unknown vendor")
            in_vendor.append(cid)
    assert sorted(in_vendor) == sorted(expected)


def test_kmz_placemark_content(run) -> None:
    _, by_cause, _ = views(read_kml(run.out / "sectors.kmz"))
    wo = {r["cell_id"]: r for r in run.work_orders.iter_rows(named=True)}
    cells = {r["cell_id"]: r for r in run.cells.iter_rows(named=True)}
    marks = by_cause.findall(".//k:Placemark", NS)
    for pm in marks:
        d = data(pm)
        cid = d["cell_id"]
        assert pm.findtext("k:name", namespaces=NS) == (cells[cid]["cell_name"] or cid)
        desc = pm.findtext("k:description", namespaces=NS) or ""
        # the popup's content, as HTML for the balloon
        assert desc.startswith("<div")
        assert f"<br>cell {cid}" in desc
        if cid in wo:
            assert int(d["rank"]) == wo[cid]["rank"]
            assert f"work order #{wo[cid]['rank']}" in desc
        ring = [tuple(map(float, p.split(","))) for p in
                (pm.findtext(".//k:coordinates", namespaces=NS) or "").split()]
        assert ring[0] == ring[-1]
        assert len(ring) >= 4
        c = cells[cid]
        assert has_site(ring, c["lon"], c["lat"], is_omni(c))    # lon, lat order


def test_geojson_is_valid_and_carries_the_attributes(run) -> None:
    gj = json.loads((run.out / "cells.geojson").read_text(encoding="utf-8"))
    assert gj["type"] == "FeatureCollection"
    feats = gj["features"]
    assert sorted(f["properties"]["cell_id"] for f in feats) == sorted(poor_ids(run))
    cells = {r["cell_id"]: r for r in run.cells.iter_rows(named=True)}
    wo = {r["cell_id"]: r for r in run.work_orders.iter_rows(named=True)}
    for f in feats:
        p, g = f["properties"], f["geometry"]
        assert g["type"] == "Polygon"
        assert len(g["coordinates"]) == 1
        ring = g["coordinates"][0]
        assert ring[0] == ring[-1]
        assert len(ring) >= 4
        assert signed_area(ring) > 0                    # RFC 7946: exterior ring counter-clockwise
        c = cells[p["cell_id"]]
        assert has_site(ring, c["lon"], c["lat"], is_omni(c))    # [lon, lat] order
        assert all(-180 <= x <= 180 and -90 <= y <= 90 for x, y in ring)
        assert p["status"] == "poor"
        assert p["primary_cause"] in (*CAUSES, None)
        cause = p["primary_cause"] or "unknown"
        assert p["fill"] == CAUSE_COLOURS[cause]
        assert p["cause_label"] == CAUSE_LABELS[cause]
        if p["cell_id"] in wo:
            assert p["rank"] == wo[p["cell_id"]]["rank"]
            assert p["priority_score"] == pytest.approx(wo[p["cell_id"]]["priority_score"])
        for s in ("browsing", "video", "gaming"):
            assert p[f"good_rate_{s}"] is None or 0.0 <= p[f"good_rate_{s}"] <= 1.0
    ranks = [f["properties"]["rank"] for f in feats if f["properties"]["rank"] is not None]
    assert ranks == sorted(ranks)                       # in work-order order


def test_exports_are_byte_identical(city, run, tmp_path: Path) -> None:
    import kqi

    again = kqi.run(cells=city.cells, tests=city.tests, kpis=city.kpis,
                    complaints=city.complaints, out=tmp_path / "again")
    for name in ("sectors.kmz", "cells.geojson"):
        assert (run.out / name).read_bytes() == (again.out / name).read_bytes(), name


def test_exports_can_be_switched_off(city, tmp_path: Path) -> None:
    cfg = tmp_path / "kqi.toml"
    cfg.write_text("[output]\nkmz = false\ngeojson = false\nmap = false\nexcel = false\n",
                   encoding="utf-8")
    assert exit_code(["-q", "run", "--cells", str(city.cells), "--tests", str(city.tests),
                     "--kpis", str(city.kpis), "--out", str(tmp_path / "o"),
                     "--config", str(cfg)]) == 0
    assert not (tmp_path / "o" / "sectors.kmz").exists()
    assert not (tmp_path / "o" / "cells.geojson").exists()


def test_hostile_text_stays_text(tmp_path: Path) -> None:
    cells = pl.DataFrame({
        "cell_id": ["A1", "A2", "B1"], "site_id": ["A", "A", "B"],
        "cell_name": [HOSTILE + "\x01\u202e", "Alpha 2", "Bravo"],
        "lat": [31.0, 31.0, 31.01], "lon": [121.0, 121.0, 121.01],
        "azimuth": [0.0, 120.0, 0.0], "beamwidth": [65.0, 65.0, 360.0],
        "vendor": ["Z<T>E", "Z<T>E", None], "region": ["r1", "r1", "r2"],
    })
    cell_kqi = pl.DataFrame({"cell_id": ["A1", "B1"], "service": ["browsing", "gaming"],
                             "tests": [100, 40], "good_tests": [70, 30],
                             "good_rate": [0.7, 0.75], "poor": [True, True]})
    diagnosis = pl.DataFrame({"cell_id": ["A1"], "poor_services": ["browsing"],
                              "primary_cause": ["interference"], "secondary_causes": [""],
                              "evidence": ["</description><b>x</b>"]})
    files = write_exports(tmp_path, cells=cells, cell_kqi=cell_kqi, diagnosis=diagnosis)
    assert [p.name for p in files] == ["sectors.kmz", "cells.geojson"]
    root = read_kml(tmp_path / "sectors.kmz")
    _, by_cause, by_vendor = views(root)
    marks = by_cause.findall(".//k:Placemark", NS)
    assert len(marks) == 2                               # nothing injected
    names = [pm.findtext("k:name", namespaces=NS) for pm in marks]
    assert HOSTILE in names                              # shown as written, control chars gone
    pm = marks[names.index(HOSTILE)]
    desc = pm.findtext("k:description", namespaces=NS) or ""
    assert "<img" not in desc
    assert "&lt;img src=x" in desc
    assert "&lt;/description&gt;&lt;b&gt;x" in desc
    assert set(folders(by_vendor)) == {"Z<T>E (1)", "Unknown vendor (1)"}
    gj = json.loads((tmp_path / "cells.geojson").read_text(encoding="utf-8"))
    assert HOSTILE in [f["properties"]["cell_name"] for f in gj["features"]]


# ---- kqi map --cells ------------------------------------------------------------------------------

def test_map_from_cells_alone(city, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cells = pl.read_csv(city.cells, infer_schema_length=0)
    bad = cells.head(2).with_columns(pl.lit("999").alias(cells.columns[cells.columns.index("lat")]),
                                     (pl.col("cell_id") + "-bad").alias("cell_id"))
    path = tmp_path / "cells.csv"
    pl.concat([cells, bad]).write_csv(path)
    out = tmp_path / "map"
    out.mkdir()
    (out / "notes.txt").write_text("mine", encoding="utf-8")     # not kqi's: never removed
    code = exit_code(["map", "--cells", str(path), "--complaints", str(city.complaints),
                     "--out", str(out)])
    console = capsys.readouterr().out
    assert code == 0
    assert f"{cells.height:,} cells drawn" in console
    for name in ("map.html", "sectors.kmz", "cells.geojson", "summary.json", "summary.md",
                 "manifest.json", "run_info.json", "complaint_links.csv", "hotspots.csv",
                 "rejects/cells.csv", "notes.txt"):
        assert (out / name).is_file(), name
    assert not list(out.glob(".kqi-staging-*"))
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    feed = manifest["feeds"]["cells"]
    assert feed["rows_read"] == cells.height + 2
    assert (feed["rows_accepted"], feed["rows_rejected"]) == (cells.height, 2)
    assert feed["rows_read"] == feed["rows_accepted"] + feed["rows_rejected"]
    assert set(manifest["outputs"]) >= {"map.html", "sectors.kmz", "cells.geojson",
                                        "rejects/cells.csv", "complaint_links.csv"}
    comp = manifest["feeds"]["complaints"]
    assert comp["rows_read"] == comp["rows_accepted"] + comp["rows_rejected"]
    assert "-bad" in (out / "rejects" / "cells.csv").read_text(encoding="utf-8")

    # every accepted cell, not judged, in both exports
    _, by_cause, by_vendor = views(read_kml(out / "sectors.kmz"))
    assert list(folders(by_cause)) == [f"No test data ({cells.height:,})"]
    assert len(by_cause.findall(".//k:Placemark", NS)) == cells.height
    assert len(by_vendor.findall(".//k:Placemark", NS)) == cells.height
    gj = json.loads((out / "cells.geojson").read_text(encoding="utf-8"))
    assert len(gj["features"]) == cells.height
    assert {f["properties"]["status"] for f in gj["features"]} == {"not_judged"}
    page = (out / "map.html").read_text(encoding="utf-8")
    assert f"Cells, no test data ({cells.height:,})" in page
    assert "Cells, not poor" not in page
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    assert summary["cells"] == cells.height
    assert sum(summary["by_vendor"].values()) == cells.height
    assert summary["complaints"]["complaints"] == comp["rows_accepted"]

    # the same inputs, the same bytes; a later run's leftover removed, the user's file kept
    first = {n: (out / n).read_bytes() for n in ("sectors.kmz", "cells.geojson", "map.html",
                                                  "manifest.json", "summary.json")}
    assert exit_code(["-q", "map", "--cells", str(path), "--out", str(out)]) == 0
    assert not (out / "complaint_links.csv").exists()     # written by the previous run only
    assert (out / "notes.txt").read_text(encoding="utf-8") == "mine"
    assert exit_code(["-q", "map", "--cells", str(path), "--complaints", str(city.complaints),
                     "--out", str(out)]) == 0
    for name, blob in first.items():
        assert (out / name).read_bytes() == blob, name


def test_map_errors_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert exit_code(["map", "--cells", str(tmp_path / "nope.csv"), "--out",
                     str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert "nope.csv" in err[0]
    assert "not found" in err[0]
    bad = tmp_path / "cells.csv"
    bad.write_text("name,lat\nx,1\n", encoding="utf-8")
    assert exit_code(["map", "--cells", str(bad), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert "cells.csv" in err[0]
    assert not list((tmp_path / "o").glob("*.kmz"))


@pytest.mark.parametrize("plmn", NSG_FILES)
def test_map_of_real_nsg_cells(real_data: Path, tmp_path: Path, plmn: str) -> None:
    """NSG's UK LTE cell lists (ECellID, CellName, Longitude, Latitude, Azimuth), read in place."""
    path = real_data / "nsg-cells-west-sussex" / f"{plmn}_merged_cells_eutra.csv"
    if not path.is_file():
        pytest.skip(f"{path} not found")
    cfg = REPO / "docs" / "real-data" / "nsg-cells-west-sussex.toml"   # the documented config
    out = tmp_path / "out"
    assert exit_code(["-q", "map", "--cells", str(path), "--config", str(cfg),
                     "--out", str(out)]) == 0
    rows = pl.read_csv(path, infer_schema_length=0).height
    feed = json.loads((out / "manifest.json").read_text(encoding="utf-8"))["feeds"]["cells"]
    assert feed["rows_read"] == rows == feed["rows_accepted"] + feed["rows_rejected"]
    gj = json.loads((out / "cells.geojson").read_text(encoding="utf-8"))
    assert len(gj["features"]) == feed["rows_accepted"]
    for f in gj["features"]:
        lon, lat = f["geometry"]["coordinates"][0][0]
        assert 50.7 < lat < 51.3
        assert -0.3 < lon < 0.05
    _, by_cause, _ = views(read_kml(out / "sectors.kmz"))
    assert len(by_cause.findall(".//k:Placemark", NS)) == feed["rows_accepted"]
    # sites: the 28-bit ECI's eNB (ECellID >> 8)
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    enbs = (pl.read_csv(path)["ECellID"].cast(pl.Int64) // 256).n_unique()
    assert summary["sites"] == enbs


def test_write_exports_needs_cells(tmp_path: Path) -> None:
    from kqi.maps import MapError

    with pytest.raises(MapError):
        write_exports(tmp_path, cells=pl.DataFrame({"cell_id": []}), config=Config())


def test_cells_estimated_from_samples_say_so(tmp_path: Path) -> None:
    """A cell placed from its drive-test samples (kqi samples' cells_estimated.csv read as a
    cells file) is not 'no test data' like the others: its own folder, an attribute, a balloon
    line; the map gives it its own layer."""
    from kqi.maps import render_map

    cells = pl.DataFrame({
        "cell_id": ["A1", "E1"], "lat": [31.0, 31.01], "lon": [121.0, 121.01],
        "azimuth": [0.0, 90.0], "beamwidth": [65.0, 65.0],
        "estimated": pl.Series([0, 1], dtype=pl.Int8)})
    write_exports(tmp_path, cells=cells, all_cells=True)
    gj = json.loads((tmp_path / "cells.geojson").read_text(encoding="utf-8"))
    props = {f["properties"]["cell_id"]: f["properties"] for f in gj["features"]}
    assert props["E1"]["estimated"] is True
    assert props["A1"]["estimated"] is False
    assert props["E1"]["cause_label"] == "Estimated from drive-test samples"
    root = read_kml(tmp_path / "sectors.kmz")
    _, by_cause, _ = views(root)
    folders = [f.findtext("k:name", namespaces=NS) for f in by_cause.findall("k:Folder", NS)]
    assert "Estimated from drive-test samples (1)" in folders
    descs = {pm.findtext("k:name", namespaces=NS): pm.findtext("k:description", namespaces=NS)
             for pm in by_cause.findall(".//k:Placemark", NS)}
    assert "position estimated from drive-test samples" in descs["E1"]
    assert "estimated" not in descs["A1"]
    page = render_map(tmp_path / "map.html", cells=cells,
                      config=Config()).read_text(encoding="utf-8")
    assert '"Cells estimated from drive-test samples (1)"' in page
    assert '"Cells, no test data (1)"' in page
    assert "position estimated from drive-test samples (1)" in page   # the legend
    assert "position ESTIMATED from drive-test samples" in page        # E1's popup
