"""The JavaScript and CSS the map needs, and where the page loads them from.

The map uses Leaflet and two plugins, nothing else (folium's jQuery, Bootstrap and
awesome-markers defaults are dropped: no element of this map uses them). Each asset is a file of
an npm package at a pinned version, so one layout serves every source::

    <root>/<package>@<version>/<path>        e.g. <root>/leaflet@1.9.4/dist/leaflet.js

``config.output.map_assets`` picks the source:

- ``"auto"`` (default): the folder :func:`default_cache_dir` when it holds every file (as
  ``kqi map-assets`` leaves it), so a map made on a machine that fetched the assets once works
  offline; the public CDN otherwise;
- ``""``: the public CDN, ``https://cdn.jsdelivr.net/npm`` (that same layout);
- a URL prefix (``http://``, ``https://`` or ``//``): an intranet web server holding the layout;
- a folder: the files are read from it and inlined into ``map.html`` (images in the CSS become
  data URIs), so the page is one self-contained file that opens with no network at all.

``fetch_assets(folder)`` (or ``scripts/fetch_map_assets.sh``) fills a folder from the npm registry
with the ordinary ``npm pack`` client and checks each tarball against its pinned integrity hash.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import mimetypes
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

from kqi.maps._errors import MapError

log = logging.getLogger(__name__)

CDN_PREFIX = "https://cdn.jsdelivr.net/npm"


@dataclass(frozen=True)
class NpmPackage:
    """A pinned npm package and the files of it the map uses."""

    name: str
    version: str
    integrity: str          # the registry's sha512 of the tarball, as `npm pack --json` reports it
    js: tuple[str, ...] = ()
    css: tuple[str, ...] = ()
    extra: tuple[str, ...] = ()   # files the CSS refers to (images)

    @property
    def folder(self) -> str:
        return f"{self.name}@{self.version}"


#: In load order: Leaflet first, then the plugins that extend it.
PACKAGES: tuple[NpmPackage, ...] = (
    NpmPackage(
        "leaflet", "1.9.4",
        "sha512-nxS1ynzJOmOlHp+iL3FyWqK89GtNL8U8rvlMOsQdTTssxZwCXh8N2NB3GDQOL+YR3XnWyZAxwQixURb+FA74PA==",
        js=("dist/leaflet.js",),
        css=("dist/leaflet.css",),
        extra=("dist/images/layers.png", "dist/images/layers-2x.png", "dist/images/marker-icon.png",
               "dist/images/marker-icon-2x.png", "dist/images/marker-shadow.png"),
    ),
    NpmPackage(
        "leaflet.heat", "0.2.0",
        "sha512-Cd5PbAA/rX3X3XKxfDoUGi9qp78FyhWYurFg3nsfhntcM/MCNK08pRkf4iEenO1KNqwVPKCmkyktjW3UD+h9bQ==",
        js=("dist/leaflet-heat.js",),
    ),
    NpmPackage(
        "leaflet.markercluster", "1.5.3",
        "sha512-vPTw/Bndq7eQHjLBVlWpnGeLa3t+3zGiuM7fJwCkiMFq+nmRuG3RI3f7f4N4TDX7T4NpbAXpR2+NTRSEGfCSeA==",
        js=("dist/leaflet.markercluster.js",),
        css=("dist/MarkerCluster.css", "dist/MarkerCluster.Default.css"),
    ),
)


def default_cache_dir() -> Path:
    """Where ``fetch_assets`` puts the files by default: ``$KQI_CACHE_DIR/map-assets``
    (``~/.cache/kqi/map-assets`` when the variable is unset)."""
    root = os.environ.get("KQI_CACHE_DIR") or os.path.join(Path.home(), ".cache", "kqi")
    return Path(root) / "map-assets"


def is_url_prefix(source: str) -> bool:
    """True when ``map_assets`` names a web location rather than a folder."""
    return source.startswith(("http://", "https://", "//"))


def missing_files(folder: str | Path) -> list[str]:
    """Relative paths of the needed asset files that ``folder`` lacks (empty when complete)."""
    root = Path(folder)
    return [f"{p.folder}/{f}" for p in PACKAGES for f in (*p.js, *p.css, *p.extra)
            if not (root / p.folder / f).is_file()]


def head_html(source: str) -> str:
    """The ``<script>``/``<link>``/``<style>`` tags that load every asset, in load order.

    Parameters
    ----------
    source : str
        ``config.output.map_assets``: ``"auto"`` (the local cache when complete, else the CDN),
        ``""`` for the CDN, a URL prefix, or a folder to inline from.

    Raises
    ------
    MapError
        ``source`` is a folder that does not exist or lacks a needed file.
    """
    if source == "auto":
        cache = default_cache_dir()
        source = str(cache) if cache.is_dir() and not missing_files(cache) else ""
        log.info("map assets: %s", source or "public CDN (no complete local copy)")
    if source == "" or is_url_prefix(source):
        prefix = (source or CDN_PREFIX).rstrip("/")
        tags = []
        for p in PACKAGES:
            tags += [f'<link rel="stylesheet" href="{_attr(f"{prefix}/{p.folder}/{f}")}"/>'
                     for f in p.css]
            tags += [f'<script src="{_attr(f"{prefix}/{p.folder}/{f}")}"></script>' for f in p.js]
        return "\n".join(tags)
    root = Path(source).expanduser()
    if not root.is_dir():
        raise MapError(f"map assets folder {root} not found (run scripts/fetch_map_assets.sh {root})")
    missing = missing_files(root)
    if missing:
        raise MapError(f"map assets folder {root} lacks {missing[0]} "
                       f"(run scripts/fetch_map_assets.sh {root})")
    tags = []
    for p in PACKAGES:
        for f in p.css:
            tags.append(f"<style>\n{_inline_css(root / p.folder / f)}\n</style>")
        for f in p.js:
            tags.append(f"<script>\n{_inline_js(root / p.folder / f)}\n</script>")
    return "\n".join(tags)


def _attr(url: str) -> str:
    return url.replace("&", "&amp;").replace('"', "&quot;").replace("<", "&lt;")


def _inline_js(path: Path) -> str:
    text = path.read_text(encoding="utf-8")
    # a literal "</script" inside would end the inline block early
    if re.search(r"</script", text, re.IGNORECASE):
        raise MapError(f"{path}: cannot be inlined (contains '</script')")
    return text


_CSS_URL = re.compile(r"url\(\s*(['\"]?)([^'\")]+)\1\s*\)")


def _inline_css(path: Path) -> str:
    """CSS text with each relative ``url(...)`` that exists beside it turned into a data URI."""
    text = path.read_text(encoding="utf-8")
    if re.search(r"</style", text, re.IGNORECASE):
        raise MapError(f"{path}: cannot be inlined (contains '</style')")

    def data_uri(m: re.Match[str]) -> str:
        ref = m.group(2).strip()
        if ref.startswith(("data:", "http:", "https:", "//", "#")):
            return m.group(0)
        target = (path.parent / ref).resolve()
        if not target.is_file():
            return m.group(0)
        mime = mimetypes.guess_type(target.name)[0] or "application/octet-stream"
        b64 = base64.b64encode(target.read_bytes()).decode("ascii")
        return f'url("data:{mime};base64,{b64}")'

    return _CSS_URL.sub(data_uri, text)


def fetch_assets(folder: str | Path | None = None, *, npm: str = "npm") -> Path:
    """Fill ``folder`` with the map's JS/CSS from the npm registry (``npm pack``), verified.

    Files already present are kept; each package is unpacked into a temporary folder and moved
    into place only when its tarball matched the pinned integrity hash.

    Parameters
    ----------
    folder : str or Path, optional
        Destination; :func:`default_cache_dir` when omitted.
    npm : str
        The npm executable.

    Returns
    -------
    Path
        The folder, ready to be used as ``config.output.map_assets``.

    Raises
    ------
    MapError
        npm is missing, ``npm pack`` failed, or a tarball did not match its integrity hash.
    """
    root = Path(folder).expanduser() if folder is not None else default_cache_dir()
    root.mkdir(parents=True, exist_ok=True)
    exe = shutil.which(npm)
    if exe is None:
        raise MapError(f"'{npm}' not found: install Node.js/npm to fetch the map assets")
    for pkg in PACKAGES:
        files = (*pkg.js, *pkg.css, *pkg.extra)
        if all((root / pkg.folder / f).is_file() for f in files):
            continue
        with tempfile.TemporaryDirectory(prefix="kqi-npm-") as tmp:
            spec = f"{pkg.name}@{pkg.version}"
            log.info("fetching %s from the npm registry", spec)
            proc = subprocess.run([exe, "pack", "--json", "--pack-destination", tmp, spec],
                                  capture_output=True, text=True, check=False, cwd=tmp)
            if proc.returncode != 0:
                last = (proc.stderr.strip().splitlines() or ["(no output)"])[-1]
                raise MapError(f"npm pack {spec} failed: {last}")
            filename = json.loads(proc.stdout)[0]["filename"]
            tarball = Path(tmp) / filename
            algo, _, expected = pkg.integrity.partition("-")
            digest = base64.b64encode(hashlib.new(algo, tarball.read_bytes()).digest()).decode()
            if digest != expected:
                raise MapError(f"{spec}: tarball does not match its pinned integrity hash")
            staging = Path(tempfile.mkdtemp(prefix=f".{pkg.folder}.", dir=root))
            try:
                with tarfile.open(tarball, "r:gz") as tar:
                    for f in files:
                        member = tar.extractfile(f"package/{f}")
                        if member is None:
                            raise MapError(f"{spec}: tarball has no {f}")
                        out = staging / f
                        out.parent.mkdir(parents=True, exist_ok=True)
                        out.write_bytes(member.read())
                shutil.rmtree(root / pkg.folder, ignore_errors=True)
                os.replace(staging, root / pkg.folder)
            finally:
                shutil.rmtree(staging, ignore_errors=True)
    return root


def main(argv: list[str] | None = None) -> int:
    """``python -m kqi.maps.assets [FOLDER]``: fetch the assets and print the folder."""
    args = sys.argv[1:] if argv is None else argv
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        root = fetch_assets(args[0] if args else None)
    except MapError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 1
    sys.stdout.write(f"{root}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
