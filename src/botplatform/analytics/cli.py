"""`botplatform analytics rebuild --since YYYY-MM-DD`: aggregates the closed days again."""

from __future__ import annotations

import uuid
from datetime import date
from typing import TYPE_CHECKING, Annotated

import typer

from botplatform.kit.cli_help import Group

if TYPE_CHECKING:
    from botplatform.runtime import Runtime

analytics_app = typer.Typer(
    help="Analytics: rebuild the daily rollups",
    no_args_is_help=True,
    rich_markup_mode=None,
    cls=Group,
)


def _day(value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError as exc:
        raise typer.BadParameter("expected a date YYYY-MM-DD") from exc


@analytics_app.command("rebuild")
def rebuild(
    since: Annotated[str, typer.Option(help="First local day to aggregate again (YYYY-MM-DD)")],
    workspace: Annotated[
        str | None, typer.Option(help="One workspace's id (default: every live workspace)")
    ] = None,
) -> None:
    """Aggregate every closed day from --since again, from the rows (durations too)."""
    from sqlalchemy import select

    from botplatform.analytics import service
    from botplatform.config import load_settings
    from botplatform.kit.scoping import enter_workspace
    from botplatform.models import Workspace
    from botplatform.runtime import run_with_runtime

    first = _day(since)
    try:
        only = uuid.UUID(workspace) if workspace else None
    except ValueError as exc:
        raise typer.BadParameter("expected a workspace id (UUID)") from exc

    async def work(runtime: Runtime) -> list[tuple[str, int]]:
        async with runtime.db.unit_of_work(write=False, system=True) as db:
            statement = select(Workspace.id).where(Workspace.deleted_at.is_(None))
            if only is not None:
                statement = statement.where(Workspace.id == only)
            ids = list((await db.execute(statement.order_by(Workspace.id))).scalars())
        done: list[tuple[str, int]] = []
        for ws in ids:  # a transaction per workspace
            async with runtime.db.unit_of_work() as db:
                await enter_workspace(db, ws)
                row = await db.get(Workspace, ws)
                if row is not None:
                    done.append((str(ws), len(await service.rebuild(db, row, first))))
        return done

    for ws, days in run_with_runtime(load_settings(), work):
        typer.echo(f"workspace {ws}: {days} days aggregated")
