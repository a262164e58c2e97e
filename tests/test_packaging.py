"""The package as a user installs it: one import name, stages as kqi.ingest, kqi.clustering and
kqi.maps, nothing test-only inside."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_wheel_installs_one_import_name(tmp_path: Path) -> None:
    wheels = tmp_path / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps",
                    "-w", str(wheels), str(REPO)], check=True, capture_output=True)
    (wheel,) = wheels.glob("kqi-*.whl")
    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target",
                    str(site), str(wheel)], check=True, capture_output=True)
    installed = sorted(p.name for p in site.iterdir() if p.name != "bin")
    assert installed == ["kqi", wheel.name.split("-")[0] + "-" + wheel.name.split("-")[1]
                         + ".dist-info"]
    pkg = site / "kqi"
    assert {"ingest", "clustering", "maps"} <= {p.name for p in pkg.iterdir() if p.is_dir()}
    assert not list(pkg.rglob("_cdp.py"))     # the test-only DevTools client stays in tests/
    # imported from another folder, the stages resolve inside the installed kqi
    code = ("import importlib.util, kqi.ingest, kqi.clustering, kqi.maps; "
            "print(kqi.ingest.__file__); print(kqi.maps.__file__); "
            "print(importlib.util.find_spec('ingest'), importlib.util.find_spec('maps'))")
    env = {**os.environ, "PYTHONPATH": str(site)}
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, check=True,
                         capture_output=True, text=True).stdout.splitlines()
    assert out[0] == str(pkg / "ingest" / "__init__.py")
    assert out[1] == str(pkg / "maps" / "__init__.py")
    assert out[2] == "None None"              # no top-level 'ingest' or 'maps' to shadow


def test_editable_install_resolves_the_stage_folders() -> None:
    import kqi.clustering
    import kqi.ingest
    import kqi.maps

    assert Path(kqi.ingest.__file__).parent == REPO / "ingest"
    assert Path(kqi.clustering.__file__).parent == REPO / "clustering"
    assert Path(kqi.maps.__file__).parent == REPO / "maps"
