"""Shared test fixtures."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import settings

# property tests draw the same examples on every run (the tests are deterministic; a failure is
# reproduced by running them again), with no example database kept between runs;
# HYPOTHESIS_PROFILE=explore draws new ones (and keeps the failing ones) when hunting for bugs
settings.register_profile("kqi", derandomize=True, database=None, print_blob=True)
settings.register_profile("explore", derandomize=False, print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "kqi"))

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
