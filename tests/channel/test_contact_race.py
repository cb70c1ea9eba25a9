"""Two transactions creating the same new contact at once (an inbound message and an API send
to a number never seen before) meet on the identity's unique key: the second one takes the
first one's contact instead of failing with a 500."""

from __future__ import annotations

import asyncio
import uuid

import httpx
import pytest
from sqlalchemy import func, select

from botplatform.config import Settings
from botplatform.conversation.service import contact_for
from botplatform.models import Channel, Contact, ContactIdentity
from botplatform.runtime import Runtime
from tests.conftest import Api, sql_statements


@pytest.mark.usefixtures("client")
async def test_a_contact_created_twice_at_once_is_one_contact(
    settings: Settings, runtime: Runtime, api: Api
) -> None:
    if settings.is_sqlite:
        pytest.skip("SQLite has one writer at a time: two inserts never overlap")
    owner = await api.register()
    ws = await api.create_workspace(owner)
    channel_id = uuid.UUID((await api.create_channel(owner, ws))["id"])
    number = "15550004242"

    async with runtime.db.unit_of_work(system=True) as first:
        channel = await first.get(Channel, channel_id)
        assert channel is not None
        mine = await contact_for(first, channel, number, "Ada")  # inserted, not committed

        async def second() -> uuid.UUID:
            async with runtime.db.unit_of_work(system=True) as db:
                other_channel = await db.get(Channel, channel_id)
                assert other_channel is not None
                # Its read sees no identity yet; its insert waits on ours, then clashes.
                return (await contact_for(db, other_channel, number, None)).id

        racing = asyncio.create_task(second())
        await asyncio.sleep(0.5)
        assert not racing.done()  # blocked on the unique key until the first commits
    assert await asyncio.wait_for(racing, 10) == mine.id
    async with runtime.db.unit_of_work(system=True) as db:  # the loser's contact is gone
        count = select(func.count()).select_from(Contact).where(Contact.workspace_id == ws)
        assert await db.scalar(count) == 1


async def test_a_first_contact_is_written_without_a_savepoint(
    client: httpx.AsyncClient, runtime: Runtime, api: Api
) -> None:
    """Contact and identity are written together (one round trip on PostgreSQL); the unique
    key decides a race, so no savepoint is taken for it."""
    owner = await api.register()
    ws = await api.create_workspace(owner)
    channel_id = uuid.UUID((await api.create_channel(owner, ws))["id"])
    async with runtime.db.unit_of_work(system=True) as db:
        channel = await db.get(Channel, channel_id)
        assert channel is not None
        with sql_statements(runtime) as seen:
            made = await contact_for(db, channel, "15550004343", "Ada")
        assert not [s for s in seen if "savepoint" in s], seen
        assert made.name == "Ada"
    async with runtime.db.unit_of_work(system=True) as db:
        identity = await db.scalar(
            select(ContactIdentity).where(ContactIdentity.external_id == "15550004343")
        )
        assert identity is not None and identity.profile_name == "Ada"
        assert identity.contact_id == made.id
        contact = await db.get(Contact, made.id)
        assert contact is not None and contact.name == "Ada"
