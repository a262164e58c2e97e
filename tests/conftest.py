"""Shared test fixtures."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
#: real public data, read in place (never copied into the repository: licences); KQI_REAL_DATA
#: points the tests at another folder
REAL_DATA = Path(os.environ.get("KQI_REAL_DATA") or REPO.parent / "shared" / "data" / "real")


@pytest.fixture(scope="session")
def real_data() -> Path:
    if not REAL_DATA.is_dir():
        pytest.skip(f"real data folder not found at {REAL_DATA} (set KQI_REAL_DATA to the folder "
                    "holding nsg-cells-west-sussex/, ucc-5g-cork/, ...)")
    return REAL_DATA


@pytest.fixture(autouse=True, scope="session")
def _private_asset_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """No test reads or writes the user's real ~/.cache/kqi: the map-asset cache is a temporary
    folder (the browser test brings its own, see test_browser.assets)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("KQI_CACHE_DIR", str(tmp_path_factory.mktemp("kqi-cache")))
        yield
