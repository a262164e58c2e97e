"""Density clustering (hdbscan) for the analysis stages.

- :func:`signature_clusters`: group cells by their standardized KPI evidence (what they have in
  common), so a diagnosis can be checked against the network's own structure.
- :func:`spatial_clusters`: group points by place (haversine), with a hard limit on how far apart
  members of one group may lie; used for poor-quality areas (and usable for complaint hotspots).

Both are deterministic: inputs are taken in the order given (callers sort by a total key), hdbscan
runs single-threaded with a fixed algorithm, and labels are renumbered by first appearance.
"""

from __future__ import annotations

from kqi.clustering.signatures import (
    cluster_profiles,
    renumber,
    robust_standardize,
    signature_clusters,
)
from kqi.clustering.spatial import spatial_clusters

__all__ = [
    "cluster_profiles",
    "renumber",
    "robust_standardize",
    "signature_clusters",
    "spatial_clusters",
]
