"""Branding: validation (colours, domain, logo size and type, with nothing stored on a
refusal), permissions, the public logo and stylesheet, the domain unique across workspaces,
and the login page on a workspace's own host showing its branding."""

from __future__ import annotations

import struct
import uuid
import zlib
from pathlib import Path

import httpx
from sqlalchemy import func, select

from botplatform.branding.service import MAX_LOGO_BYTES
from botplatform.models import AuditLog
from botplatform.runtime import Runtime
from tests.conftest import Account, Api, eventually

DOMAIN = "chat.acme-example.com"


def png(width: int = 2, pad: int = 0) -> bytes:
    """A real PNG (valid chunks); `pad` bytes of a text chunk make it as large as wanted."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", width, 1, 8, 2, 0, 0, 0)
    pixels = zlib.compress(b"\x00" + b"\x10\x80\x40" * width)
    padding = chunk(b"tEXt", b"c\x00" + b"x" * pad) if pad else b""
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + padding
        + chunk(b"IDAT", pixels)
        + chunk(b"IEND", b"")
    )


def _files_of(runtime: Runtime, ws: str) -> list[str]:
    folder = Path(runtime.settings.data_dir) / "media" / "ws" / ws / "branding"
    return sorted(p.name for p in folder.glob("*") if "~" not in p.name) if folder.is_dir() else []


async def _audit_count(runtime: Runtime, ws: str, action: str) -> int:
    async with runtime.db.unit_of_work(system=True) as db:
        statement = select(func.count()).where(
            AuditLog.workspace_id == uuid.UUID(ws), AuditLog.action == action
        )
        return int((await db.execute(statement)).scalar_one())


async def _branding(client: httpx.AsyncClient, who: Account, ws: str) -> dict[str, object]:
    response = await client.get(f"/api/v1/workspaces/{ws}/branding", headers=who.headers)
    assert response.status_code == 200, response.text
    return dict(response.json()["data"])


async def _upload(
    client: httpx.AsyncClient, who: Account, ws: str, data: bytes, mime: str, name: str = "l.png"
) -> httpx.Response:
    return await client.put(
        f"/api/v1/workspaces/{ws}/branding/logo",
        files={"file": (name, data, mime)},
        headers=who.headers,
    )


async def test_branding_is_saved_read_and_audited(
    client: httpx.AsyncClient, api: Api, runtime: Runtime
) -> None:
    owner = await api.register()
    ws = await api.create_workspace(owner, "Acme")
    assert await _branding(client, owner, ws) == {
        "name": None,
        "display_name": "Acme",
        "primary_color": None,
        "background_color": None,
        "text_color": None,
        "logo_url": None,
        "custom_domain": None,
    }
    body = {
        "name": "Acme Support",
        "primary_color": "#0B7A5A",
        "background_color": "#ffffff",
        "text_color": "#1a1a1a",
        "custom_domain": "Chat.Acme-Example.com.",
    }
    saved = await client.put(f"/api/v1/workspaces/{ws}/branding", json=body, headers=owner.headers)
    assert saved.status_code == 200, saved.text
    data = await _branding(client, owner, ws)
    assert data["display_name"] == "Acme Support"
    assert data["primary_color"] == "#0b7a5a"  # stored lower case
    assert data["custom_domain"] == DOMAIN  # lower case, final dot dropped
    assert await _audit_count(runtime, ws, "branding.update") == 1
    theme = await client.get(f"/branding/{ws}/theme.css")
    assert theme.status_code == 200
    assert theme.headers["content-type"].startswith("text/css")
    assert "--brand-primary: #0b7a5a;" in theme.text
    assert "--brand-text: #1a1a1a;" in theme.text
    # A PUT replaces everything: left out means back to the default.
    cleared = await client.put(
        f"/api/v1/workspaces/{ws}/branding", json={"name": "Acme"}, headers=owner.headers
    )
    assert cleared.status_code == 200
    assert cleared.json()["data"]["primary_color"] is None
    assert cleared.json()["data"]["custom_domain"] is None
    assert "--brand" not in (await client.get(f"/branding/{ws}/theme.css")).text


async def test_bad_colours_and_domains_are_refused_and_nothing_changes(
    client: httpx.AsyncClient, api: Api
) -> None:
    owner = await api.register()
    ws = await api.create_workspace(owner)
    good = {"primary_color": "#112233", "custom_domain": "help.example.org"}
    assert (
        await client.put(f"/api/v1/workspaces/{ws}/branding", json=good, headers=owner.headers)
    ).status_code == 200
    before = await _branding(client, owner, ws)
    bad_bodies = [
        {"primary_color": "red"},
        {"primary_color": "#12345"},
        {"background_color": "#gggggg"},
        {"text_color": "#1122334"},
        {"text_color": "#fff; } body { background: url(x)"},
        {"primary_color": 123456},
        {"custom_domain": "localhost"},
        {"custom_domain": "10.0.0.1"},
        {"custom_domain": "-bad.example.com"},
        {"custom_domain": "two..dots.com"},
        {"custom_domain": "spa ce.example.com"},
        {"custom_domain": "https://chat.example.com/"},
        {"custom_domain": "bücher.example"},
        {"custom_domain": "a" * 64 + ".example.com"},
        {"name": ""},
        {"name": "x" * 201},
        {"unknown": "field"},
    ]
    for body in bad_bodies:
        response = await client.put(
            f"/api/v1/workspaces/{ws}/branding", json=body, headers=owner.headers
        )
        assert response.status_code == 422, (body, response.text)
        assert response.json()["success"] is False
    assert await _branding(client, owner, ws) == before


async def test_a_host_name_belongs_to_one_workspace(client: httpx.AsyncClient, api: Api) -> None:
    owner_a = await api.register()
    ws_a = await api.create_workspace(owner_a, "A")
    owner_b = await api.register()
    ws_b = await api.create_workspace(owner_b, "B")
    claim = {"custom_domain": DOMAIN}
    first = await client.put(
        f"/api/v1/workspaces/{ws_a}/branding", json=claim, headers=owner_a.headers
    )
    assert first.status_code == 200
    for spelling in (DOMAIN, DOMAIN.upper(), DOMAIN + "."):
        second = await client.put(
            f"/api/v1/workspaces/{ws_b}/branding",
            json={"custom_domain": spelling},
            headers=owner_b.headers,
        )
        assert second.status_code == 409, second.text
        assert second.json()["error"]["code"] == "domain_taken"
    assert (await _branding(client, owner_b, ws_b))["custom_domain"] is None
    # Saving A again with its own domain is not a conflict with itself.
    again = await client.put(
        f"/api/v1/workspaces/{ws_a}/branding", json=claim, headers=owner_a.headers
    )
    assert again.status_code == 200
    # Released by A, it can be claimed by B.
    await client.put(f"/api/v1/workspaces/{ws_a}/branding", json={}, headers=owner_a.headers)
    taken = await client.put(
        f"/api/v1/workspaces/{ws_b}/branding", json=claim, headers=owner_b.headers
    )
    assert taken.status_code == 200
    # A deleted workspace lets its host name go.
    assert (
        await client.delete(f"/api/v1/workspaces/{ws_b}", headers=owner_b.headers)
    ).status_code == 200
    reclaimed = await client.put(
        f"/api/v1/workspaces/{ws_a}/branding", json=claim, headers=owner_a.headers
    )
    assert reclaimed.status_code == 200, reclaimed.text


async def test_logo_upload_checks_size_and_type_and_stores_nothing_refused(
    client: httpx.AsyncClient, api: Api, runtime: Runtime
) -> None:
    owner = await api.register()
    ws = await api.create_workspace(owner)
    refused = [
        (png(pad=MAX_LOGO_BYTES), "image/png", "too_large"),
        (b"<svg xmlns='http://www.w3.org/2000/svg'><script/></svg>", "image/svg+xml", None),
        (b"plain text, not an image", "text/plain", "not_allowed"),
        (png(), "image/jpeg", "mismatch"),  # the bytes say PNG
        (b"%PDF-1.4 a document", "application/pdf", "not_allowed"),
        (b"", "image/png", "empty"),
    ]
    for data, mime, reason in refused:
        response = await _upload(client, owner, ws, data, mime)
        assert response.status_code == 422, (mime, response.text)
        error = response.json()["error"]
        assert error["code"] == "logo_rejected"
        if reason:
            assert error["details"]["reason"] == reason
    assert _files_of(runtime, ws) == []
    assert (await _branding(client, owner, ws))["logo_url"] is None

    logo = png()
    stored = await _upload(client, owner, ws, logo, "image/png")
    assert stored.status_code == 200, stored.text
    url = stored.json()["data"]["logo_url"]
    assert url.startswith(f"/branding/{ws}/logo?v=")
    served = await client.get(url)
    assert served.status_code == 200
    assert served.content == logo
    assert served.headers["content-type"] == "image/png"
    assert served.headers["x-content-type-options"] == "nosniff"
    assert len(_files_of(runtime, ws)) == 1
    assert await _audit_count(runtime, ws, "branding.logo") == 1

    # Replacing it removes the old file once the change has committed.
    second = png(width=3)
    assert (await _upload(client, owner, ws, second, "image/png")).status_code == 200
    assert (await client.get(f"/branding/{ws}/logo")).content == second
    await eventually(lambda: len(_files_of(runtime, ws)) == 1)
    removed = await client.delete(f"/api/v1/workspaces/{ws}/branding/logo", headers=owner.headers)
    assert removed.status_code == 200
    assert removed.json()["data"]["logo_url"] is None
    assert (await client.get(f"/branding/{ws}/logo")).status_code == 404
    await eventually(lambda: _files_of(runtime, ws) == [])


async def test_members_read_and_only_settings_holders_change(
    client: httpx.AsyncClient, api: Api
) -> None:
    owner = await api.register()
    ws = await api.create_workspace(owner)
    admin = await api.add_member(owner, ws, "admin")
    for role in ("developer", "manager", "agent", "analyst", "viewer"):
        member = await api.add_member(owner, ws, role)
        assert (await _branding(client, member, ws))["display_name"] == "Acme"
        put = await client.put(
            f"/api/v1/workspaces/{ws}/branding",
            json={"primary_color": "#000000"},
            headers=member.headers,
        )
        assert put.status_code == 403, role
        logo = await _upload(client, member, ws, png(), "image/png")
        assert logo.status_code == 403, role
        gone = await client.delete(f"/api/v1/workspaces/{ws}/branding/logo", headers=member.headers)
        assert gone.status_code == 403, role
    body = {"primary_color": "#000000"}
    allowed = await client.put(
        f"/api/v1/workspaces/{ws}/branding", json=body, headers=admin.headers
    )
    assert allowed.status_code == 200
    stranger = await api.register()
    hidden = await client.get(f"/api/v1/workspaces/{ws}/branding", headers=stranger.headers)
    assert hidden.status_code == 404


async def test_login_page_on_a_custom_domain_shows_that_workspace(
    client: httpx.AsyncClient, api: Api
) -> None:
    owner = await api.register()
    ws = await api.create_workspace(owner, "Plain Name")
    other = await api.register()
    other_ws = await api.create_workspace(other, "Other Co")
    await client.put(
        f"/api/v1/workspaces/{ws}/branding",
        json={"name": "Acme <Help> Desk", "primary_color": "#aa0000", "custom_domain": DOMAIN},
        headers=owner.headers,
    )
    await client.put(
        f"/api/v1/workspaces/{other_ws}/branding",
        json={"name": "Other Brand", "custom_domain": "help.other-example.net"},
        headers=other.headers,
    )
    await _upload(client, owner, ws, png(), "image/png")

    branded = await client.get("/app/login", headers={"host": f"{DOMAIN.upper()}:3000"})
    assert branded.status_code == 200
    assert "Acme &lt;Help&gt; Desk" in branded.text
    assert f'href="/branding/{ws}/theme.css?v=' in branded.text
    assert f'src="/branding/{ws}/logo?v=' in branded.text
    assert 'alt="Acme &lt;Help&gt; Desk"' in branded.text
    assert "Other Brand" not in branded.text
    assert "style=" not in branded.text  # the CSP allows no inline style
    # The form still logs in, and a refused login on that host stays branded.
    refused = await client.post(
        "/app/login",
        headers={"host": DOMAIN},
        data={"email": owner.email, "password": "wrong", "csrf_token": "x"},
    )
    assert refused.status_code == 403  # no valid CSRF token: refused before anything else

    plain = await client.get("/app/login")
    assert "Acme" not in plain.text and "/branding/" not in plain.text
    unknown = await client.get("/app/login", headers={"host": "unknown.example.com"})
    assert unknown.status_code == 200 and "/branding/" not in unknown.text
    theme = await client.get(f"/branding/{ws}/theme.css")
    assert "--brand-primary: #aa0000;" in theme.text
