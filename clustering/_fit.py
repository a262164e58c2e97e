"""The one place that runs hdbscan: in kqi's helper process when the run has one (kqi/_sidecar.py),
else here."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from kqi import _sidecar


@_sidecar.remote
def _fit_predict(x: np.ndarray, params: dict[str, Any]) -> np.ndarray:
    import hdbscan

    # identical rows (many cells with every KPI at its normal value, co-sited cells) make zero
    # core distances: hdbscan handles them but numpy may warn on the way
    with warnings.catch_warnings(), np.errstate(divide="ignore", invalid="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        return hdbscan.HDBSCAN(**params).fit_predict(x)


def fit_predict(x: np.ndarray, **params: Any) -> np.ndarray:
    """``hdbscan.HDBSCAN(**params).fit_predict(x)``, numpy's warnings about zero distances off."""
    return _sidecar.call(_fit_predict, x, params)
