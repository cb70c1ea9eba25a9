"""The dashboard connects Messenger and Instagram channels (a form per provider; the page
shows the webhook URL, verify token and fields to subscribe) and their sandbox in one click."""

from __future__ import annotations

import httpx

from botplatform.sandbox import FakeGraph
from tests.conftest import Api
from tests.dashboard.helpers import browser_login, csrf_of, post_form, unlabelled_controls


async def test_connect_messenger_and_instagram_from_the_dashboard(
    client: httpx.AsyncClient, api: Api
) -> None:
    owner = await api.register()
    ws = await api.create_workspace(owner)
    await browser_login(client, owner.email, owner.password)
    form = await client.get(f"/app/w/{ws}/channels/new?provider=messenger")
    assert form.status_code == 200 and "Page access token" in form.text
    assert not unlabelled_controls(form.text)
    new = f"/app/w/{ws}/channels/new?provider=messenger"
    bad = await post_form(
        client,
        new,
        f"/app/w/{ws}/channels",
        {"provider": "messenger", "name": "FB", "page_id": "x"},
    )
    assert bad.status_code == 422 and 'aria-invalid="true"' in bad.text
    made = await post_form(
        client,
        new,
        f"/app/w/{ws}/channels",
        {
            "provider": "messenger",
            "name": "Facebook Page",
            "page_id": "1029384756",
            "access_token": "EAAG-page-secret",
            "verify_token": "my-verify-token-2",
        },
    )
    assert made.status_code == 303, made.text
    detail = await client.get(made.headers["location"])
    assert "/webhooks/messenger/" in detail.text and "my-verify-token-2" in detail.text
    assert "EAAG-page-secret" not in detail.text
    assert "message_echoes" in detail.text and "1029384756" in detail.text
    insta = await post_form(
        client,
        f"/app/w/{ws}/channels/new?provider=instagram",
        f"/app/w/{ws}/channels",
        {
            "provider": "instagram",
            "name": "Insta",
            "instagram_account_id": "17841400000000",
            "access_token": "IGQ-secret",
        },
    )
    assert insta.status_code == 303, insta.text
    listing = await client.get(f"/app/w/{ws}/channels")
    assert "Connect Messenger" in listing.text and "17841400000000" in listing.text


async def test_messenger_sandbox_in_one_click(
    client: httpx.AsyncClient, api: Api, wa: FakeGraph
) -> None:
    owner = await api.register()
    ws = await api.create_workspace(owner)
    await browser_login(client, owner.email, owner.password)
    listing = await client.get(f"/app/w/{ws}/channels")
    assert "Messenger sandbox" in listing.text
    made = await client.post(
        f"/app/w/{ws}/channels/sandbox",
        data={"provider": "messenger", "csrf_token": csrf_of(listing.text)},
    )
    assert made.status_code == 303, made.text
    detail = await client.get(made.headers["location"])
    assert "/_sandbox/meta/inbound" in detail.text and "/webhooks/messenger/" in detail.text
    [page] = wa.pages.values()
    assert page.provider == "messenger" and page.page_id in detail.text
