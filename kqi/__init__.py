"""kqi: network-experience (KQI) quality analytics for mobile networks.

Public API::

    import kqi
    cell_kqi = kqi.flag_cells("app_tests.parquet")           # polars DataFrame
    result = kqi.run(cells=..., tests=..., kpis=..., out="out/")   # or out=None: nothing written
    result.work_orders, result.diagnosis, result.links, ...

Stages are subpackages: ``kqi.ingest``, ``kqi.clustering``, ``kqi.maps``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from kqi.config import Config, load_config
from kqi.errors import ConfigError, InputError, KqiError

__version__ = "0.1.0"

__all__ = [
    "Config",
    "ConfigError",
    "InputError",
    "KqiError",
    "RunResult",
    "__version__",
    "flag_cells",
    "load_config",
    "run",
]

if TYPE_CHECKING:  # the type checker sees the real objects; at run time they load on first use
    from kqi.flagging import flag_cells
    from kqi.pipeline import RunResult, run

#: public name -> module that defines it; imported on first access so ``import kqi`` stays light
#: (numba and the stages load only when a function is used)
_LAZY = {"flag_cells": "kqi.flagging", "run": "kqi.pipeline", "RunResult": "kqi.pipeline"}


def __getattr__(name: str) -> Any:
    """Return the real function (not a wrapper), so ``help(kqi.run)`` shows its signature."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'kqi' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    # the public names and the module's own attributes; not the helpers imported for typing
    return sorted({*__all__, *(n for n in globals() if n.startswith("__")), "ingest", "clustering",
                   "maps"} - {"__getattr__", "__dir__"})
