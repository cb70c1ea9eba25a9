"""Browser assets (htmx, Swagger UI): one `npm pack` per package version, every file checked
against its pinned digest before it is written, nothing written on a mismatch."""

from __future__ import annotations

import hashlib
import io
import tarfile
from pathlib import Path

import pytest

from botplatform.dashboard import assets
from botplatform.dashboard.assets import Asset, AssetError


def _tarball(folder: Path, files: dict[str, bytes]) -> Path:
    path = folder / "pkg-1.0.0.tgz"
    with tarfile.open(path, "w:gz") as archive:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return path


def _asset(member: str, target: str, data: bytes) -> Asset:
    return Asset("pkg", "1.0.0", member, target, hashlib.sha256(data).hexdigest())


def test_one_pack_serves_every_file_of_a_package(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    files = {"package/a.js": b"console.log(1)", "package/a.css": b"body{}"}
    packs: list[str] = []

    def fake_pack(asset: Asset, workdir: Path) -> Path:
        packs.append(f"{asset.package}@{asset.version}")
        return _tarball(workdir, files)

    monkeypatch.setattr(assets, "_npm_pack", fake_pack)
    wanted = [_asset(name, name.split("/")[1], data) for name, data in files.items()]
    vendor = tmp_path / "vendor"
    paths = assets.install_package(wanted, vendor)
    assert packs == ["pkg@1.0.0"]
    assert [p.read_bytes() for p in paths] == list(files.values())
    assert assets.missing(vendor, tuple(wanted)) == []
    assets.install_package(wanted, vendor)  # already in place: no second download
    assert packs == ["pkg@1.0.0"]


def test_a_digest_mismatch_writes_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        assets, "_npm_pack", lambda asset, workdir: _tarball(workdir, {"package/a.js": b"evil"})
    )
    pinned = _asset("package/a.js", "a.js", b"good")
    vendor = tmp_path / "vendor"
    with pytest.raises(AssetError, match="digest mismatch"):
        assets.install_package([pinned], vendor)
    assert not (vendor / "a.js").exists()


def test_swagger_ui_is_pinned_next_to_htmx() -> None:
    names = {(a.package, a.target) for a in assets.ASSETS}
    assert ("swagger-ui-dist", "swagger-ui-bundle.js") in names
    assert ("swagger-ui-dist", "swagger-ui.css") in names
    assert ("uplot", "uPlot.iife.min.js") in names and ("uplot", "uPlot.min.css") in names
    assert all(len(a.sha256) == 64 and a.version[0].isdigit() for a in assets.ASSETS)
