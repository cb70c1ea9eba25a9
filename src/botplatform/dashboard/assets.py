"""Third-party browser assets (htmx for the dashboard, uPlot for its broadcast chart,
Swagger UI for the API docs): fetched
from the npm registry with the ordinary `npm` client at setup time, checked against a pinned
digest, and served from our own static folder. Nothing is committed and nothing is loaded
from a CDN."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import tarfile
import tempfile
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from starlette.datastructures import QueryParams
from starlette.responses import Response
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

STATIC_DIR = Path(__file__).parent / "static"
VENDOR_DIR = STATIC_DIR / "vendor"


@dataclass(frozen=True)
class Asset:
    package: str
    version: str
    member: str  # path inside the package tarball
    target: str  # file name under static/vendor/
    sha256: str


HTMX = Asset(
    package="htmx.org",
    version="2.0.11",
    member="package/dist/htmx.min.js",
    target="htmx.min.js",
    sha256="d6fdc75f204e6bdefa99b69bf1e6d4ac69b8a364f77929f45c13476b4000f717",
)
# The interactive API docs (/api/docs): Swagger UI's prebuilt bundle and style. Both come from
# one package; `install_all` packs it once for both files.
SWAGGER_UI_JS = Asset(
    package="swagger-ui-dist",
    version="5.35.0",
    member="package/swagger-ui-bundle.js",
    target="swagger-ui-bundle.js",
    sha256="e6a898692f2d768e807c3ba4626068a69a2c5dd960dd6c76f3e4d3a3de180af2",
)
SWAGGER_UI_CSS = Asset(
    package="swagger-ui-dist",
    version="5.35.0",
    member="package/swagger-ui.css",
    target="swagger-ui.css",
    sha256="5ed08757e53da3e026d6cbecc61fe5d43585c9560b302d534ad56692519a273d",
)
# The broadcast page's chart of sends per second: uPlot (small, no dependencies, draws on a
# canvas; its inline sizes are set through the DOM, which the dashboard's CSP allows).
UPLOT_JS = Asset(
    package="uplot",
    version="1.6.32",
    member="package/dist/uPlot.iife.min.js",
    target="uPlot.iife.min.js",
    sha256="19c8d4c6ad88929a79f4ae49d6f7161566dfd0ba3d15cc495e974f787eb78f1f",
)
UPLOT_CSS = Asset(
    package="uplot",
    version="1.6.32",
    member="package/dist/uPlot.min.css",
    target="uPlot.min.css",
    sha256="df630c6a8d6f8eeaff264b50f73ce5b114f646ffd9a0bb74f049b0a00135fa04",
)
ASSETS = (HTMX, SWAGGER_UI_JS, SWAGGER_UI_CSS, UPLOT_JS, UPLOT_CSS)
DOCS_ASSETS = (SWAGGER_UI_JS, SWAGGER_UI_CSS)


class AssetError(RuntimeError):
    pass


@cache
def static_version(name: str) -> str:
    """A short digest of one of our static files: pages link `name?v=<digest>`, a new
    release's file gets a new address, so browsers and CDNs may keep each address for ever."""
    path = STATIC_DIR / name
    return hashlib.sha256(path.read_bytes()).hexdigest()[:12] if path.is_file() else "missing"


class FingerprintedStaticFiles(StaticFiles):
    """Our static files. Asked for by their current fingerprint (`?v=` as `static_version`
    gives it): kept for a year and never revalidated (`immutable`); asked for otherwise
    (an old page, a bookmark): revalidated each time with the ETag StaticFiles sends."""

    async def get_response(self, path: str, scope: Scope) -> Response:
        response = await super().get_response(path, scope)
        if response.status_code in (200, 304):
            version = QueryParams(scope.get("query_string", b"")).get("v")
            fingerprinted = version is not None and version == static_version(path)
            response.headers["Cache-Control"] = IMMUTABLE if fingerprinted else REVALIDATE
        return response


IMMUTABLE = "public, max-age=31536000, immutable"
REVALIDATE = "public, no-cache"


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def installed(asset: Asset, vendor_dir: Path = VENDOR_DIR) -> bool:
    path = vendor_dir / asset.target
    return path.is_file() and _digest(path) == asset.sha256


def missing(vendor_dir: Path = VENDOR_DIR, assets: tuple[Asset, ...] = ASSETS) -> list[Asset]:
    return [asset for asset in assets if not installed(asset, vendor_dir)]


def _npm_pack(asset: Asset, workdir: Path) -> Path:
    npm = shutil.which("npm")
    if npm is None:
        raise AssetError("`npm` is needed to install the browser assets (apt-get install npm)")
    spec = f"{asset.package}@{asset.version}"
    result = subprocess.run(  # noqa: S603 - fixed program and arguments, no shell
        [npm, "pack", spec, "--silent", "--pack-destination", str(workdir)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if result.returncode != 0:
        raise AssetError(f"npm pack {spec} failed: {result.stderr.strip()[:500]}")
    tarballs = list(workdir.glob("*.tgz"))
    if len(tarballs) != 1:
        raise AssetError(f"npm pack {spec} produced no tarball")
    return tarballs[0]


def _extract(asset: Asset, tarball: Path) -> bytes:
    with tarfile.open(tarball, "r:gz") as archive:
        member = archive.extractfile(asset.member)
        if member is None:
            raise AssetError(f"{asset.member} is not in {tarball.name}")
        return member.read()


def _write(asset: Asset, data: bytes, vendor_dir: Path) -> Path:
    if hashlib.sha256(data).hexdigest() != asset.sha256:
        raise AssetError(
            f"{asset.package}@{asset.version} {asset.target}: digest mismatch, not installed"
        )
    vendor_dir.mkdir(parents=True, exist_ok=True)
    target = vendor_dir / asset.target
    partial = target.with_suffix(".part")
    partial.write_bytes(data)
    partial.replace(target)
    return target


def install(asset: Asset, vendor_dir: Path = VENDOR_DIR) -> Path:
    """Downloads the package with npm, extracts the one file we serve and checks its digest."""
    return install_package([asset], vendor_dir)[0]


def install_package(assets: list[Asset], vendor_dir: Path = VENDOR_DIR) -> list[Path]:
    """Installs files of one package version from a single `npm pack` (skipped when all of
    them are already in place with the right digest)."""
    todo = [asset for asset in assets if not installed(asset, vendor_dir)]
    if todo:
        with tempfile.TemporaryDirectory() as tmp:
            tarball = _npm_pack(todo[0], Path(tmp))
            for asset in todo:
                _write(asset, _extract(asset, tarball), vendor_dir)
    return [vendor_dir / asset.target for asset in assets]


def install_all(vendor_dir: Path = VENDOR_DIR) -> list[Path]:
    packages: dict[tuple[str, str], list[Asset]] = {}
    for asset in ASSETS:
        packages.setdefault((asset.package, asset.version), []).append(asset)
    return [path for group in packages.values() for path in install_package(group, vendor_dir)]
