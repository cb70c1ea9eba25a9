"""Segments and the contacts' CSV import over plain HTTP, on both backends: the builder's
buttons without JavaScript, the live-count fragment, saving and editing, refusals shown in the
page, who may change what, CSRF."""

from __future__ import annotations

import re

import httpx

from tests.conftest import Api
from tests.dashboard.helpers import browser_login, csrf_of, unlabelled_controls

CSV = "phone,name,tags,city\n+15550008001,Ann,vip,Paris\n+15550008002,Bob,,Paris\n"


async def test_segments_are_built_saved_edited_and_deleted_without_javascript(
    client: httpx.AsyncClient, api: Api
) -> None:
    owner = await api.register()
    ws = await api.create_workspace(owner)
    await browser_login(client, owner.email, owner.password)
    contacts = await client.get(f"/app/w/{ws}/contacts")
    assert f'href="/app/w/{ws}/segments"' in contacts.text
    token = csrf_of(contacts.text)
    imported = await client.post(
        f"/app/w/{ws}/contacts/import",
        data={"csrf_token": token, "consent_source": "paper"},
        files={"file": ("c.csv", CSV.encode(), "text/csv")},
    )
    assert imported.status_code == 200 and "2 new" in imported.text
    editor = await client.get(f"/app/w/{ws}/segments/new")
    assert editor.status_code == 200 and unlabelled_controls(editor.text) == []
    form = {"csrf_token": token, "name": "Paris", "match": "all"}
    form |= {"c-0-type": "tags", "c-0-operator": "has_any", "c-0-value": "vip"}
    added = await client.post(f"/app/w/{ws}/segments", data={**form, "action": "add"})
    assert added.status_code == 200 and 'id="c-1-type"' in added.text  # a second row
    assert "Condition 2: give at least one tag" in added.text  # the new row is empty
    form |= {"c-1-type": "attribute", "c-1-operator": "eq", "c-1-key": "city", "c-1-value": "x"}
    count = await client.post(f"/app/w/{ws}/segments/count", data=form)
    assert 'data-count="0"' in count.text
    form |= {"match": "any", "c-1-value": "Paris"}
    count = await client.post(f"/app/w/{ws}/segments/count", data=form)
    assert 'data-count="2"' in count.text
    broken = await client.post(
        f"/app/w/{ws}/segments/count", data={**form, "c-1-operator": "gt", "c-1-value": "soon"}
    )
    assert "Condition 2: operator &#39;gt&#39; compares numbers" in broken.text
    rebuilt = await client.post(
        f"/app/w/{ws}/segments/builder", data={**form, "c-1-type": "last_inbound"}
    )
    assert 'id="c-1-key"' not in rebuilt.text and "Days" in rebuilt.text

    refused = await client.post(f"/app/w/{ws}/segments", data={**form, "name": ""})
    assert refused.status_code == 422 and "needs a name" in refused.text
    created = await client.post(f"/app/w/{ws}/segments", data=form)
    assert created.status_code == 303
    segment_url = created.headers["location"].split("?")[0]
    shown = await client.get(segment_url)
    assert 'value="Paris"' in shown.text and 'data-count="2"' in shown.text
    duplicate = await client.post(f"/app/w/{ws}/segments", data=form)
    assert duplicate.status_code == 409 and "already exists" in duplicate.text
    removed = await client.post(segment_url, data={**form, "action": "remove-0"})
    assert removed.status_code == 200 and 'id="c-1-type"' not in removed.text
    saved = await client.post(
        segment_url,
        data={
            "csrf_token": token,
            "name": "Paris only",
            "match": "all",
            "c-0-type": "attribute",
            "c-0-operator": "eq",
            "c-0-key": "city",
            "c-0-value": "Paris",
        },
    )
    assert saved.status_code == 303
    listing = await client.get(f"/app/w/{ws}/segments")
    assert "Paris only" in listing.text
    assert re.search(r"Paris only</a></td><td>2</td>", listing.text)
    assert (await client.post(f"{segment_url}/delete", data={})).status_code == 403  # no token
    deleted = await client.post(f"{segment_url}/delete", data={"csrf_token": token})
    assert deleted.status_code == 303
    assert "No segments yet" in (await client.get(f"/app/w/{ws}/segments")).text

    bad = await client.post(
        f"/app/w/{ws}/contacts/import",
        data={"csrf_token": token},
        files={"file": ("c.csv", b"phone\n12\n+15550008003\nabc\n", "text/csv")},
    )
    assert bad.status_code == 422
    assert "<td>2</td>" in bad.text and "<td>4</td>" in bad.text


async def test_readers_see_segments_but_cannot_change_them(
    client: httpx.AsyncClient, api: Api
) -> None:
    owner = await api.register()
    ws = await api.create_workspace(owner)
    created = await client.post(
        f"/api/v1/workspaces/{ws}/segments",
        json={"name": "All", "definition": {}},
        headers=owner.headers,
    )
    segment_id = created.json()["data"]["id"]
    viewer = await api.add_member(owner, ws, "viewer")
    await browser_login(client, viewer.email, viewer.password)
    listing = await client.get(f"/app/w/{ws}/segments")
    assert listing.status_code == 200 and "New segment" not in listing.text
    shown = await client.get(f"/app/w/{ws}/segments/{segment_id}")
    assert shown.status_code == 200 and "Save segment" not in shown.text
    token = csrf_of(shown.text)
    count = await client.post(f"/app/w/{ws}/segments/count", data={"csrf_token": token})
    assert 'data-count="0"' in count.text
    for url in (f"/app/w/{ws}/segments", f"/app/w/{ws}/segments/{segment_id}"):
        answer = await client.post(url, data={"csrf_token": token, "name": "Mine"})
        assert answer.status_code == 403, url
    contacts = await client.get(f"/app/w/{ws}/contacts")
    assert "Import from a CSV file" not in contacts.text
    answer = await client.post(
        f"/app/w/{ws}/contacts/import",
        data={"csrf_token": token},
        files={"file": ("c.csv", CSV.encode(), "text/csv")},
    )
    assert answer.status_code == 403
