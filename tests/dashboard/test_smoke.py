from __future__ import annotations

import httpx

from tests.conftest import Api
from tests.dashboard.helpers import browser_login


async def test_pages_render(client: httpx.AsyncClient, api: Api) -> None:
    owner = await api.register()
    ws = await api.create_workspace(owner)
    channel = await api.create_channel(owner, ws)
    await api.inbound_text(channel["id"], "15551234567", "hello <b>there</b>", name="Ann")
    conversation = await api.conversation_of(owner, ws, "Ann")
    await browser_login(client, owner.email, owner.password)
    for path in [
        "/app",
        "/app/workspaces",
        f"/app/w/{ws}/inbox",
        f"/app/w/{ws}/inbox/{conversation['id']}",
        f"/app/w/{ws}/contacts",
        f"/app/w/{ws}/contacts/{conversation['contact_id']}",
        f"/app/w/{ws}/channels",
        f"/app/w/{ws}/channels/new",
        f"/app/w/{ws}/channels/{channel['id']}",
        f"/app/w/{ws}/api-keys",
        f"/app/w/{ws}/members",
        f"/app/w/{ws}/audit",
        f"/app/w/{ws}/settings",
        "/app/account",
    ]:
        response = await client.get(path, follow_redirects=True)
        assert response.status_code == 200, (path, response.text[:2000])
        assert "&lt;b&gt;there" in response.text or "inbox" not in path or "/inbox/" not in path
