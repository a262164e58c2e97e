"""kqi: network-experience (KQI) quality analytics for mobile networks.

Public API::

    import kqi
    cell_kqi = kqi.flag_cells("app_tests.parquet")          # polars DataFrame
    result = kqi.run(cells=..., tests=..., kpis=..., out="out/")
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

__all__ = ["Config", "KqiError", "__version__", "flag_cells", "load_config", "run"]

from kqi.config import Config, load_config
from kqi.errors import KqiError


def flag_cells(source: Any, config: Config | None = None):
    """Per cell x service good-rates and poor flags; see :func:`kqi.flagging.flag_cells`."""
    from kqi.flagging import flag_cells as _flag_cells

    return _flag_cells(source, config)


def run(**kwargs: Any):
    """Run the whole analysis; see :func:`kqi.pipeline.run`."""
    from kqi.pipeline import run as _run

    return _run(**kwargs)
