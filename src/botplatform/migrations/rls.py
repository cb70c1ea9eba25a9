"""Row-level security for tenant tables, for migrations: the second wall behind
`kit.scoping` (see its docstring). The settings the policies read are transaction-local
(`set_config(..., true)`); an unset one reads as '' and matches nothing. PostgreSQL only:
SQLite has no row-level security.

Migrations call these instead of writing the statements out, so every tenant table gets the
same policy shape; what a migration already applied is unaffected (the SQL is the same)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from alembic import op

TENANT = "workspace_id = NULLIF(current_setting('app.workspace_id', true), '')::uuid"
SYSTEM = "current_setting('app.bypass_rls', true) = 'on'"
TENANT_OR_SYSTEM = f"{TENANT} OR {SYSTEM}"


def _postgres() -> bool:
    return bool(op.get_bind().dialect.name == "postgresql")


def protect(
    policies: Mapping[str, str] | Iterable[str], write_also: Mapping[str, str] | None = None
) -> None:
    """Enables and forces row-level security on each table, with a `tenant_isolation` policy:
    the table's condition (`TENANT_OR_SYSTEM` for a plain list of tables), and for the tables
    in `write_also` a further condition under which rows may be written but not read."""
    if not _postgres():
        return
    conditions = (
        policies if isinstance(policies, Mapping) else dict.fromkeys(policies, TENANT_OR_SYSTEM)
    )
    for table, condition in conditions.items():
        op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
        op.execute(f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY")
        check = (
            f" WITH CHECK ({condition} OR {write_also[table]})"
            if write_also and table in write_also
            else ""
        )
        op.execute(f"CREATE POLICY tenant_isolation ON {table} USING ({condition}){check}")


def unprotect(tables: Iterable[str]) -> None:
    """Undoes `protect` (before the tables are dropped or when a downgrade keeps them)."""
    if not _postgres():
        return
    for table in tables:
        op.execute(f"DROP POLICY IF EXISTS tenant_isolation ON {table}")
        op.execute(f"ALTER TABLE {table} NO FORCE ROW LEVEL SECURITY")
        op.execute(f"ALTER TABLE {table} DISABLE ROW LEVEL SECURITY")
