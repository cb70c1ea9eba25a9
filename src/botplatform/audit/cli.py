"""`botplatform audit verify`: walks the hash chain and reports the first broken link."""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer

from botplatform.kit.cli_help import Group

if TYPE_CHECKING:
    from botplatform.audit.chain import Break
    from botplatform.runtime import Runtime

audit_app = typer.Typer(
    help="Audit log: verify the hash chain", no_args_is_help=True, rich_markup_mode=None, cls=Group
)


@audit_app.command("verify")
def verify() -> None:
    """Recompute every entry's hash; exit 1 at the first entry edited, deleted or reordered."""
    from botplatform.audit import service
    from botplatform.config import load_settings
    from botplatform.runtime import run_with_runtime

    async def work(runtime: Runtime) -> tuple[int, Break | None]:
        async with runtime.db.unit_of_work(write=False, system=True) as db:
            return await service.verify(db)

    checked, broken = run_with_runtime(load_settings(), work)
    if broken is None:
        typer.echo(f"audit chain intact: {checked} entries verified")
        return
    where = f"entry {broken.seq}" + (f" (id {broken.entry_id})" if broken.entry_id else "")
    typer.echo(f"audit chain BROKEN at {where}: {broken.reason}", err=True)
    typer.echo(f"{checked} entries before it verified", err=True)
    raise typer.Exit(1)
