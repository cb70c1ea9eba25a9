"""Caching (SPEC §8): what the webhook path and the permission check read on every request
is kept in each process and dropped in all of them when it changes; cacheable GETs answer
304 to a client that has them; our static files are fingerprinted and kept for ever."""

from __future__ import annotations

import json
import re
import uuid
from datetime import datetime, tzinfo
from pathlib import Path

import httpx
import pytest

from botplatform.authz import cache as authz_cache
from botplatform.config import Settings
from botplatform.dashboard.assets import static_version
from botplatform.kit import envelope
from botplatform.runtime import Runtime
from tests.conftest import APP_SECRET, Api, meta_signature, whatsapp_text_payload
from tests.serving import app_processes


async def _webhook(http: httpx.AsyncClient, base: str, channel_id: str, secret: str) -> int:
    payload = whatsapp_text_payload("15554440000", "hi", "Ann", f"wamid.{uuid.uuid4().hex}")
    body = json.dumps(payload).encode()
    response = await http.post(
        f"{base}/webhooks/whatsapp/{channel_id}", content=body, headers=meta_signature(body, secret)
    )
    return response.status_code


async def test_a_change_on_one_process_applies_to_the_next_request_on_another(
    settings: Settings, tmp_path: Path, client: httpx.AsyncClient
) -> None:
    if not settings.redis_url:
        pytest.skip("several processes share Redis (production mode)")
    async with (
        app_processes(settings, tmp_path / "logs") as (first, second),
        httpx.AsyncClient(base_url=first, timeout=10) as on_first,
        httpx.AsyncClient(timeout=10) as http,
    ):
        api = Api(on_first)
        owner = await api.register()
        ws = await api.create_workspace(owner)
        channel = (await api.create_channel(owner, ws))["id"]
        manager = await api.add_member(owner, ws, "manager")

        # The second process reads the channel and the manager's standing, and keeps both.
        assert await _webhook(http, second, channel, APP_SECRET) == 200
        assert await _webhook(http, second, channel, APP_SECRET) == 200
        members = f"{second}/api/v1/workspaces/{ws}/members"
        assert (await http.get(members, headers=manager.headers)).status_code == 200
        settings_page = f"{second}/api/v1/workspaces/{ws}/channels/{channel}"
        assert (await http.get(settings_page, headers=manager.headers)).status_code == 200

        # Changed through the first process...
        rotated = await on_first.patch(
            f"/api/v1/workspaces/{ws}/channels/{channel}",
            json={"app_secret": "a-brand-new-app-secret-42"},
            headers=owner.headers,
        )
        assert rotated.status_code == 200, rotated.text
        # ...the very next webhook on the second uses the new secret, and refuses the old one.
        assert await _webhook(http, second, channel, "a-brand-new-app-secret-42") == 200
        assert await _webhook(http, second, channel, APP_SECRET) in (401, 403)

        demoted = await on_first.patch(
            f"/api/v1/workspaces/{ws}/members/{manager.user_id}",
            json={"role": "viewer"},
            headers=owner.headers,
        )
        assert demoted.status_code == 200, demoted.text
        edit = await http.patch(
            settings_page, json={"name": "Renamed by a viewer"}, headers=manager.headers
        )
        assert edit.status_code == 403, edit.text

        removed = await on_first.delete(
            f"/api/v1/workspaces/{ws}/members/{manager.user_id}", headers=owner.headers
        )
        assert removed.status_code == 200, removed.text
        assert (await http.get(members, headers=manager.headers)).status_code == 404


async def test_a_list_answers_304_while_it_has_not_changed(
    client: httpx.AsyncClient, api: Api
) -> None:
    owner = await api.register()
    ws = await api.create_workspace(owner)
    url = f"/api/v1/workspaces/{ws}/channels"
    first = await client.get(url, headers=owner.headers)
    etag = first.headers["etag"]
    assert first.status_code == 200 and first.headers["cache-control"] == "private, no-cache"
    again = await client.get(url, headers={**owner.headers, "If-None-Match": etag})
    assert again.status_code == 304 and again.content == b""
    assert again.headers["etag"] == etag
    await api.create_channel(owner, ws)
    changed = await client.get(url, headers={**owner.headers, "If-None-Match": etag})
    assert changed.status_code == 200 and changed.headers["etag"] != etag
    assert len(changed.json()["data"]["items"]) == 1
    # Not for another caller: the answer is private to whoever asked.
    stranger = await api.register()
    refused = await client.get(url, headers={**stranger.headers, "If-None-Match": etag})
    assert refused.status_code == 404


async def test_an_unchanged_list_keeps_its_etag_when_the_second_turns(
    client: httpx.AsyncClient, api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The envelope says when it was made, to the second: an answer made a second later says
    nothing new, so it still matches the tag the client holds."""
    owner = await api.register()
    ws = await api.create_workspace(owner)
    url = f"/api/v1/workspaces/{ws}/channels"
    seconds = iter(range(10, 60))

    class _Ticking(datetime):
        @classmethod
        def now(cls, tz: tzinfo | None = None) -> _Ticking:
            return cls(2026, 12, 5, 16, 14, next(seconds), tzinfo=tz)

    monkeypatch.setattr(envelope, "datetime", _Ticking)
    first = await client.get(url, headers=owner.headers)
    again = await client.get(url, headers={**owner.headers, "If-None-Match": first.headers["etag"]})
    assert first.json()["timestamp"] == "2026-12-05T16:14:10Z"
    assert again.status_code == 304, again.text
    assert again.headers["etag"] == first.headers["etag"]


async def test_what_must_not_be_kept_gets_no_etag(client: httpx.AsyncClient) -> None:
    page = await client.get("/app/login")
    assert page.headers["cache-control"] == "no-store" and "etag" not in page.headers


async def test_static_files_are_fingerprinted_and_kept_for_ever(
    client: httpx.AsyncClient,
) -> None:
    page = (await client.get("/app/login")).text
    linked = re.findall(r'(/app/static/[^"?]+)\?v=([0-9a-f]{12})"', page)
    assert {path for path, _ in linked} >= {"/app/static/app.css", "/app/static/app.js"}
    for path, version in linked:
        assert version == static_version(path.removeprefix("/app/static/"))
        kept = await client.get(f"{path}?v={version}")
        assert kept.status_code == 200
        assert kept.headers["cache-control"] == "public, max-age=31536000, immutable"
    unversioned = await client.get("/app/static/app.css")
    assert unversioned.headers["cache-control"] == "public, no-cache"
    revalidated = await client.get(
        "/app/static/app.css", headers={"If-None-Match": unversioned.headers["etag"]}
    )
    assert revalidated.status_code == 304
    stale = await client.get("/app/static/app.css?v=000000000000")  # an older release's link
    assert stale.headers["cache-control"] == "public, no-cache"


async def test_the_permission_check_reads_a_member_once_until_it_changes(
    client: httpx.AsyncClient, api: Api, runtime: Runtime
) -> None:
    owner = await api.register()
    ws = await api.create_workspace(owner)
    member = await api.add_member(owner, ws, "manager")
    url = f"/api/v1/workspaces/{ws}/members"

    def held() -> bool:
        return runtime.cache.holds(authz_cache.KIND, uuid.UUID(ws), str(member.user_id))

    assert (await client.get(url, headers=member.headers)).status_code == 200
    assert held()
    listed = await client.get(url, headers=member.headers)  # answered from what is kept
    assert listed.status_code == 200 and len(listed.json()["data"]["items"]) == 2
    demoted = await client.patch(
        f"{url}/{member.user_id}", json={"role": "viewer"}, headers=owner.headers
    )
    assert demoted.status_code == 200 and not held()
    invited = await client.post(
        f"/api/v1/workspaces/{ws}/invitations",
        json={"email": "x@example.com", "role": "agent"},
        headers=member.headers,
    )
    assert invited.status_code == 403
    # An edit made through a kept row is written like any other.
    assert (await client.get(f"/api/v1/workspaces/{ws}", headers=owner.headers)).is_success
    assert runtime.cache.holds(authz_cache.KIND, uuid.UUID(ws), str(owner.user_id))
    renamed = await client.patch(
        f"/api/v1/workspaces/{ws}", json={"name": "Renamed"}, headers=owner.headers
    )
    assert renamed.status_code == 200
    assert not runtime.cache.holds(authz_cache.KIND, uuid.UUID(ws), str(owner.user_id))
    shown = await client.get(f"/api/v1/workspaces/{ws}", headers=owner.headers)
    assert shown.json()["data"]["name"] == "Renamed"
