"""The templates page over plain HTTP: every control labelled, a form Meta would refuse shown
again with the reason (nothing sent), the live preview fragment, and a viewer who sees the
list without the create form or the sync and delete buttons."""

from __future__ import annotations

import httpx

from botplatform.sandbox import FakeGraph
from tests.conftest import Api
from tests.dashboard.helpers import browser_login, csrf_of, post_form, unlabelled_controls


async def test_labels_refusal_preview_and_viewer(
    client: httpx.AsyncClient, api: Api, wa: FakeGraph
) -> None:
    owner = await api.register()
    ws = await api.create_workspace(owner)
    await api.create_channel(owner, ws, business_account_id=wa.waba_id)
    await browser_login(client, owner.email, owner.password)
    url = f"/app/w/{ws}/templates"
    page = await client.get(url)
    assert page.status_code == 200
    assert unlabelled_controls(page.text) == []
    assert 'id="new-template-title"' in page.text and "Sync Support" in page.text

    form = {
        "channel_id": (
            await api.http.get(f"/api/v1/workspaces/{ws}/channels", headers=owner.headers)
        ).json()["data"]["items"][0]["id"],
        "name": "needs_examples",
        "language": "en_US",
        "category": "UTILITY",
        "body": "Hi {{1}}, your code is {{2}}.",
        "body_examples": "Ada",
    }
    refused = await post_form(client, url, url, form)
    assert refused.status_code == 422
    assert "example.body_text must give 2 value(s)" in refused.text
    assert 'value="needs_examples"' in refused.text  # the form keeps what was typed
    assert [c for c in wa.received if "message_templates" in c["path"]] == []

    preview = await client.post(
        f"{url}/preview",
        data={**form, "body_examples": "Ada\n1234", "csrf_token": csrf_of(page.text)},
    )
    assert preview.status_code == 200
    assert "Hi Ada, your code is 1234." in preview.text

    viewer = await api.add_member(owner, ws, "viewer")
    viewer_client = httpx.AsyncClient(transport=client._transport, base_url=str(client.base_url))
    async with viewer_client:
        await browser_login(viewer_client, viewer.email, viewer.password)
        seen = await viewer_client.get(url)
        assert seen.status_code == 200
        assert 'id="new-template-title"' not in seen.text
        assert "Sync Support" not in seen.text
        refused_sync = await viewer_client.post(
            f"{url}/sync/{form['channel_id']}", data={"csrf_token": csrf_of(seen.text)}
        )
        assert refused_sync.status_code == 403
