"""The label filter of the inbox and of the API's conversation list, on both backends (the
labels are a JSON list: PostgreSQL and SQLite each answer "has this exact label" their own
way)."""

from __future__ import annotations

import httpx

from botplatform.sandbox import FakeGraph
from tests.conftest import Api
from tests.dashboard.conftest import unique_phone
from tests.dashboard.helpers import browser_login


async def test_the_inbox_filters_by_exact_label(
    client: httpx.AsyncClient, api: Api, wa: FakeGraph
) -> None:
    owner = await api.register()
    ws = await api.create_workspace(owner)
    channel = await api.create_channel(owner, ws)
    wa.webhook_url = f"http://testserver/webhooks/whatsapp/{channel['id']}"
    labels = {
        "Ann Billing": ["billing", "vip"],
        "Bo Billings": ["billings"],
        "Cy Quote": ['say "hi" 100%'],
        "Di None": [],
    }
    for name, wanted in labels.items():
        await wa.post_inbound_text(unique_phone(), "hello", name)
        conversation = await api.conversation_of(owner, ws, name)
        if wanted:
            response = await client.patch(
                f"/api/v1/workspaces/{ws}/conversations/{conversation['id']}",
                json={"labels": wanted},
                headers=owner.headers,
            )
            assert response.status_code == 200, response.text

    # The API's list filters the same way.
    async def listed(label: str) -> set[str]:
        got = await client.get(
            f"/api/v1/workspaces/{ws}/conversations",
            params={"label": label},
            headers=owner.headers,
        )
        assert got.status_code == 200, got.text
        return {c["contact_name"] for c in got.json()["data"]["items"]}

    assert await listed("billing") == {"Ann Billing"}
    assert await listed("billings") == {"Bo Billings"}
    assert await listed('say "hi" 100%') == {"Cy Quote"}
    assert await listed("%") == set()
    await browser_login(client, owner.email, owner.password)

    async def shown(label: str) -> set[str]:
        page = await client.get(f"/app/w/{ws}/inbox", params={"label": label})
        assert page.status_code == 200
        return {name for name in labels if name in page.text}

    assert await shown("") == set(labels)
    assert await shown("billing") == {"Ann Billing"}
    assert await shown(" vip ") == {"Ann Billing"}
    assert await shown("billings") == {"Bo Billings"}
    assert await shown("bill") == set()
    assert await shown('say "hi" 100%') == {"Cy Quote"}
    assert await shown("%") == set()
    # The label shows on the list, and the live fragment keeps the filter.
    page = await client.get(f"/app/w/{ws}/inbox", params={"label": "vip"})
    assert '<span class="label">vip</span>' in page.text
    assert "label=vip" in page.text
    fragment = await client.get(f"/app/w/{ws}/inbox/list", params={"label": "billing"})
    assert "Ann Billing" in fragment.text and "Bo Billings" not in fragment.text
    too_long = await client.get(f"/app/w/{ws}/inbox", params={"label": "x" * 101})
    assert too_long.status_code == 404  # malformed filter: the page's usual answer
