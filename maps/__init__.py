"""maps: the folium map of poor cells, causes, complaints and areas (``map.html``).

Public API::

    from kqi.maps import render_map
    render_map("out/map.html", cells=cells, cell_kqi=cell_kqi, diagnosis=diag.table,
               areas=diag.areas, complaints=complaints, links=links, work_orders=wo, isd=isd,
               config=cfg)

Offline use: ``python -m kqi.maps.assets [FOLDER]`` fetches Leaflet and its plugins from the npm
registry; set ``output.map_assets`` to that folder (see ``docs/maps.md``).
"""

from __future__ import annotations

from kqi.maps._errors import MapError
from kqi.maps.assets import fetch_assets
from kqi.maps.render import render_map

__all__ = ["MapError", "fetch_assets", "render_map"]
