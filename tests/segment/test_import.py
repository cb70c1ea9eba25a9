"""CSV import of contacts: all or nothing, duplicates merged, consent recorded."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from botplatform.kit.scoping import scoped
from botplatform.models import ConsentEvent, Contact, ContactIdentity
from botplatform.runtime import Runtime
from botplatform.segment import importer
from tests.conftest import Account, Api


async def _import(
    client: httpx.AsyncClient, who: Account, ws: str, text: str, **form: str
) -> httpx.Response:
    return await client.post(
        f"/api/v1/workspaces/{ws}/contacts/import",
        files={"file": ("contacts.csv", text.encode(), "text/csv")},
        data=form,
        headers=who.headers,
    )


def _attr_gt(key: str, value: int) -> dict[str, Any]:
    return {"type": "attribute", "key": key, "operator": "gt", "value": value}


async def _contacts(runtime: Runtime, ws: str) -> dict[str, dict[str, Any]]:
    """Each contact by its WhatsApp number, with its consent ledger."""
    ws_id = uuid.UUID(ws)
    async with runtime.db.unit_of_work(system=True) as db:
        rows = (
            await db.execute(
                scoped(ContactIdentity, ws_id)
                .join(Contact, Contact.id == ContactIdentity.contact_id)
                .with_only_columns(ContactIdentity.external_id, Contact)
            )
        ).all()
        found = {}
        for external_id, contact in rows:
            ledger = (
                await db.execute(
                    scoped(ConsentEvent, ws_id)
                    .where(ConsentEvent.contact_id == contact.id)
                    .order_by(ConsentEvent.created_at)
                )
            ).scalars()
            found[external_id] = {
                "name": contact.name,
                "tags": contact.tags,
                "attributes": contact.attributes,
                "opted_out": contact.opted_out,
                "consent": [(c.action, c.source) for c in ledger],
            }
        return found


async def test_import_creates_contacts_with_tags_attributes_and_consent(
    client: httpx.AsyncClient, api: Api, runtime: Runtime
) -> None:
    owner = await api.register()
    ws = await api.create_workspace(owner)
    csv = (
        "Phone,Name,Tags,City,Lifetime Value,opted_out\n"
        "+1 (555) 000-1001,Ann,vip;news,Paris,120.5,\n"
        "0015550001002,Bob,news|promo,Berlin,,no\n"
        "15550001003,Cid,,,,yes\n"
    )
    response = await _import(client, owner, ws, csv, consent_source="web_form")
    assert response.status_code == 200, response.text
    result = response.json()["data"]
    assert result == {
        "rows": 3,
        "contacts": 3,
        "created": 3,
        "updated": 0,
        "opted_out": 1,
        "kept_opted_out": 0,
        "consent_recorded": 3,
    }
    found = await _contacts(runtime, ws)
    assert set(found) == {"15550001001", "15550001002", "15550001003"}
    ann = found["15550001001"]
    assert ann["name"] == "Ann" and ann["tags"] == ["vip", "news"]
    assert ann["attributes"] == {"city": "Paris", "lifetime_value": "120.5"}
    assert ann["consent"] == [("opt_in", "web_form")] and ann["opted_out"] is False
    assert found["15550001002"]["tags"] == ["news", "promo"]
    assert found["15550001002"]["attributes"] == {"city": "Berlin"}
    assert found["15550001003"]["opted_out"] is True
    assert found["15550001003"]["consent"] == [("opt_out", "web_form")]
    # The imported contacts are an audience at once; the opted-out one never is.
    counted = await client.post(
        f"/api/v1/workspaces/{ws}/segments/preview-count",
        json={"conditions": [_attr_gt("lifetime_value", 100)]},
        headers=owner.headers,
    )
    assert counted.json()["data"]["count"] == 1
    everyone = await client.post(
        f"/api/v1/workspaces/{ws}/segments/preview-count", json={}, headers=owner.headers
    )
    assert everyone.json()["data"]["count"] == 2
    audit = await client.get(f"/api/v1/workspaces/{ws}/audit-logs", headers=owner.headers)
    assert "contact.import" in audit.text


async def test_one_bad_row_reports_every_bad_line_and_imports_nothing(
    client: httpx.AsyncClient, api: Api, runtime: Runtime
) -> None:
    owner = await api.register()
    ws = await api.create_workspace(owner)
    csv = (
        "phone,name,tags,opted_out,consent_source\n"
        "+15550002001,Good,,,\n"
        "not a number,Bad phone,,,\n"
        "+15550002003,Bad flag,,maybe,\n"
        "+15550002004,Good too,,,\n"
        "+15550002005,Bad source,,,Web Form!\n"
        "+15550002006,Too,many,cells,,x\n"
    )
    response = await _import(client, owner, ws, csv)
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "invalid_rows"
    assert "nothing was imported" in error["message"]
    lines = {d["line"]: d["message"] for d in error["details"]}
    assert set(lines) == {3, 4, 6, 7}
    assert lines[3].startswith("phone:") and "opted_out" in lines[4]
    assert "consent_source" in lines[6] and "more cells" in lines[7]
    assert await _contacts(runtime, ws) == {}


async def test_duplicates_in_the_file_and_known_numbers_update_rather_than_duplicate(
    client: httpx.AsyncClient, api: Api, runtime: Runtime
) -> None:
    owner = await api.register()
    ws = await api.create_workspace(owner)
    channel = await api.create_channel(owner, ws)
    await api.inbound_text(channel["id"], "15550003001", "hello", name="Known")
    await api.conversation_of(owner, ws, "Known")  # the inbound path created the contact
    first = await _import(client, owner, ws, "phone,name,tags,tier\n+15550003002,Out,,\n")
    assert first.status_code == 200
    stop = await _import(client, owner, ws, "phone,opted_out\n+15550003002,true\n")
    assert stop.json()["data"]["opted_out"] == 1
    csv = (
        "phone,name,tags,tier\n"
        "+15550003001,,vip,gold\n"
        "+1 555 000 3001,Known Person,news,\n"  # the same number again: merged
        "+15550003002,Out,vip,\n"  # opted out: stays so
        "+15550003003,New,,silver\n"
    )
    response = await _import(client, owner, ws, csv)
    assert response.status_code == 200, response.text
    result = response.json()["data"]
    assert (result["rows"], result["contacts"], result["created"], result["updated"]) == (
        4, 3, 1, 2
    )  # fmt: skip
    found = await _contacts(runtime, ws)
    assert set(found) == {"15550003001", "15550003002", "15550003003"}
    known = found["15550003001"]
    assert known["name"] == "Known Person"
    assert known["tags"] == ["vip", "news"] and known["attributes"] == {"tier": "gold"}
    assert found["15550003002"]["opted_out"] is True
    assert found["15550003002"]["tags"] == ["vip"]
    again = await _import(client, owner, ws, "phone,opted_out\n+15550003002,false\n")
    assert again.json()["data"]["kept_opted_out"] == 1
    assert (await _contacts(runtime, ws))["15550003002"]["opted_out"] is True
    async with runtime.db.unit_of_work(system=True) as db:
        contacts = await db.scalar(
            select(func.count()).select_from(Contact).where(Contact.workspace_id == uuid.UUID(ws))
        )
    assert contacts == 3


async def test_a_large_file_is_written_in_chunks_in_one_transaction(
    client: httpx.AsyncClient, api: Api, runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    owner = await api.register()
    ws = await api.create_workspace(owner)
    monkeypatch.setattr(importer, "CHUNK", 100)
    lines = ["phone,name,n"] + [f"+1555100{i:04d},P{i},{i}" for i in range(1050)]
    response = await _import(client, owner, ws, "\n".join(lines) + "\n")
    assert response.status_code == 200, response.text
    assert response.json()["data"]["created"] == 1050
    counted = await client.post(
        f"/api/v1/workspaces/{ws}/segments/preview-count",
        json={"conditions": [{"type": "attribute", "key": "n", "operator": "gte", "value": 1000}]},
        headers=owner.headers,
    )
    assert counted.json()["data"]["count"] == 50


async def test_file_limits_and_malformed_files_are_clear(
    client: httpx.AsyncClient, api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    owner = await api.register()
    ws = await api.create_workspace(owner)
    monkeypatch.setattr(importer, "MAX_IMPORT_BYTES", 100)
    big = await _import(client, owner, ws, "phone\n" + "+15550004001\n" * 20)
    assert big.status_code == 413 and big.json()["error"]["code"] == "payload_too_large"
    monkeypatch.setattr(importer, "MAX_IMPORT_BYTES", 10_000)
    monkeypatch.setattr(importer, "MAX_IMPORT_ROWS", 5)
    many = await _import(client, owner, ws, "phone\n" + "+15550004001\n" * 6)
    assert many.status_code == 413 and many.json()["error"]["details"] == {"max_rows": 5}
    for text, words in [
        ("", "header row"),
        ("name,city\nAnn,Paris\n", "`phone` column"),
        ("phone,bad column!\n+15550004001,x\n", "bad column!"),
        ("phone\n", "no rows"),
    ]:
        response = await _import(client, owner, ws, text)
        assert response.status_code == 422, (text, response.text)
        assert words in response.text
    latin = await client.post(
        f"/api/v1/workspaces/{ws}/contacts/import",
        files={"file": ("c.csv", "phone,name\n+15550004001,Zoë\n".encode("latin-1"), "text/csv")},
        headers=owner.headers,
    )
    assert latin.status_code == 422 and "UTF-8" in latin.text
    source = await _import(client, owner, ws, "phone\n+15550004001\n", consent_source="No Way")
    assert source.status_code == 422
    assert source.json()["error"]["code"] == "invalid_consent_source"
