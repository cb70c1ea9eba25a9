"""Row-level security on PostgreSQL: the second wall behind the scoping helper."""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy import inspect, select, text

from botplatform.config import Settings
from botplatform.db import create_engine
from botplatform.kit.scoping import enter_user, enter_workspace
from botplatform.models import Base, Invitation, Membership
from botplatform.runtime import Runtime
from tests.conftest import Api


def _postgres_only(settings: Settings) -> None:
    if settings.is_sqlite:
        pytest.skip("row-level security is a PostgreSQL feature")


async def test_every_tenant_table_has_rls_forced(settings: Settings) -> None:
    _postgres_only(settings)
    engine = create_engine(settings, settings.owner_dsn)
    try:
        async with engine.connect() as connection:
            tables = await connection.run_sync(
                lambda sync: [
                    name
                    for name in inspect(sync).get_table_names()
                    if any(c["name"] == "workspace_id" for c in inspect(sync).get_columns(name))
                ]
            )
            rows = (
                await connection.execute(
                    text(
                        "SELECT c.relname, c.relrowsecurity, c.relforcerowsecurity, "
                        "(SELECT count(*) FROM pg_policy p WHERE p.polrelid = c.oid) "
                        "FROM pg_class c WHERE c.relname = ANY(:names)"
                    ),
                    {"names": tables},
                )
            ).all()
    finally:
        await engine.dispose()
    assert {"memberships", "invitations", "api_keys", "audit_logs"} <= set(tables)
    assert sorted(tables) == sorted(
        name for name in Base.metadata.tables if "workspace_id" in Base.metadata.tables[name].c
    )
    for name, enabled, forced, policies in rows:
        assert enabled and forced and policies >= 1, name


async def test_the_app_role_is_neither_owner_nor_superuser(
    settings: Settings, runtime: Runtime
) -> None:
    _postgres_only(settings)
    async with runtime.db.unit_of_work(write=False) as db:
        me, superuser = (
            await db.execute(
                text("SELECT current_user, rolsuper FROM pg_roles WHERE rolname = current_user")
            )
        ).one()
        owners = set(
            (
                await db.execute(
                    text("SELECT DISTINCT tableowner FROM pg_tables WHERE schemaname = 'public'")
                )
            ).scalars()
        )
    assert superuser is False
    assert me not in owners


async def test_a_query_skipping_the_scoping_helper_sees_only_its_tenant(
    settings: Settings, client: httpx.AsyncClient, api: Api, runtime: Runtime
) -> None:
    _postgres_only(settings)
    owner_a, owner_b = await api.register(), await api.register()
    ws_a = await api.create_workspace(owner_a, "A")
    ws_b = await api.create_workspace(owner_b, "B")
    await api.invite(owner_a, ws_a, "for-a@example.com", "agent")
    await api.invite(owner_b, ws_b, "for-b@example.com", "agent")

    import uuid

    async with runtime.db.unit_of_work(write=False) as db:
        await enter_workspace(db, uuid.UUID(ws_a))
        # Deliberately unscoped: no WHERE workspace_id = … at all.
        emails = set((await db.execute(select(Invitation.email))).scalars())
    assert emails == {"for-a@example.com"}

    async with runtime.db.unit_of_work(write=False) as db:  # no tenant entered: nothing
        assert (await db.execute(select(Invitation))).scalars().all() == []

    async with runtime.db.unit_of_work(write=False) as db:  # a user sees only its own rows
        await enter_user(db, owner_a.user_id)
        memberships = (await db.execute(select(Membership))).scalars().all()
    assert [str(m.workspace_id) for m in memberships] == [ws_a]

    async with runtime.db.unit_of_work() as db:  # and cannot write into another tenant
        await enter_workspace(db, uuid.UUID(ws_a))
        db.add(
            Invitation(
                workspace_id=uuid.UUID(ws_b),
                email="x@example.com",
                role="agent",
                expires_at=__import__("botplatform.kit.clock", fromlist=["utcnow"]).utcnow(),
            )
        )
        from sqlalchemy.exc import DBAPIError

        with pytest.raises(DBAPIError, match="row-level security"):
            await db.flush()
        await db.rollback()
