"""Third-party browser assets (htmx): fetched from the npm registry with the ordinary `npm`
client at setup time, checked against a pinned digest, and served from our own static
folder. Nothing is committed and nothing is loaded from a CDN."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

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
ASSETS = (HTMX,)


class AssetError(RuntimeError):
    pass


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def installed(asset: Asset, vendor_dir: Path = VENDOR_DIR) -> bool:
    path = vendor_dir / asset.target
    return path.is_file() and _digest(path) == asset.sha256


def missing(vendor_dir: Path = VENDOR_DIR) -> list[Asset]:
    return [asset for asset in ASSETS if not installed(asset, vendor_dir)]


def _npm_pack(asset: Asset, workdir: Path) -> Path:
    npm = shutil.which("npm")
    if npm is None:
        raise AssetError("`npm` is needed to install the dashboard's htmx (apt-get install npm)")
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


def install(asset: Asset, vendor_dir: Path = VENDOR_DIR) -> Path:
    """Downloads the package with npm, extracts the one file we serve and checks its digest."""
    target = vendor_dir / asset.target
    if installed(asset, vendor_dir):
        return target
    with tempfile.TemporaryDirectory() as tmp:
        tarball = _npm_pack(asset, Path(tmp))
        with tarfile.open(tarball, "r:gz") as archive:
            member = archive.extractfile(asset.member)
            if member is None:
                raise AssetError(f"{asset.member} is not in {tarball.name}")
            data = member.read()
    if hashlib.sha256(data).hexdigest() != asset.sha256:
        raise AssetError(f"{asset.package}@{asset.version}: digest mismatch, not installed")
    vendor_dir.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(".part")
    partial.write_bytes(data)
    partial.replace(target)
    return target


def install_all(vendor_dir: Path = VENDOR_DIR) -> list[Path]:
    return [install(asset, vendor_dir) for asset in ASSETS]
