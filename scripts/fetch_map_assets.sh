#!/bin/sh
# Fetch Leaflet and its plugins from the npm registry (npm pack, integrity-checked) into a folder
# usable as config.output.map_assets. Usage: scripts/fetch_map_assets.sh [FOLDER]
# Default folder: $KQI_CACHE_DIR/map-assets, else ~/.cache/kqi/map-assets.
set -eu
here=$(cd "$(dirname "$0")/.." && pwd)
py=${PYTHON:-python3}
cd "$here"
exec "$py" -c "import sys; from kqi.maps.assets import main; sys.exit(main(sys.argv[1:]))" "$@"
