"""The `botplatform` command: the Python counterpart of the original npm scripts."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from botplatform.audit.cli import audit_app
from botplatform.bootstrap import NewCredentials, first_start, generate_password, seed_demo_members
from botplatform.config import Settings, load_settings
from botplatform.kit.errors import AppError
from botplatform.kit.keys_cli import keys_app
from botplatform.runtime import Runtime, run_with_runtime
from botplatform.worker.cli import queue_app

app = typer.Typer(help="WhatsApp Bot Platform", no_args_is_help=True, add_completion=False)
db_app = typer.Typer(help="Database: migrate, seed, reset, ping", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(queue_app, name="queue")
app.add_typer(audit_app, name="audit")
app.add_typer(keys_app, name="keys")


def _print_credentials(created: list[NewCredentials]) -> None:
    if not created:
        return
    typer.echo("\n  Credentials (shown only this once — keep them safe):")
    for item in created:
        typer.echo(f"    {item.role:<11} {item.email:<34} {item.password}")
    typer.echo("")


def _setup(settings: Settings) -> None:
    from botplatform import migrate

    migrate.upgrade(settings)
    _print_credentials(run_with_runtime(settings, first_start))


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Bind address (HOST)")] = None,
    port: Annotated[int | None, typer.Option(help="Port (PORT, default 3000)")] = None,
    reload: Annotated[bool, typer.Option(help="Restart on code changes (development)")] = False,
) -> None:
    """Run the platform. On the embedded default it migrates and creates the first
    superadmin and demo workspace first (AUTO_MIGRATE overrides)."""
    import uvicorn

    settings = load_settings()
    if settings.should_auto_migrate:
        _setup(settings)
    bind_host, bind_port = host or settings.host, port or settings.port
    from botplatform.dashboard import assets as dashboard_assets

    if absent := dashboard_assets.missing():
        names = ", ".join(asset.target for asset in absent)
        typer.echo(f"warning: browser assets not installed ({names}); run `botplatform assets`")
    typer.echo(f"WhatsApp Bot Platform on http://{_display_host(bind_host)}:{bind_port}")
    uvicorn.run(
        "botplatform.main:app_factory",
        factory=True,
        host=bind_host,
        port=bind_port,
        reload=reload,
        # X-Forwarded-For is read by our own middleware (TRUSTED_PROXIES), in one place.
        proxy_headers=False,
        log_config=None,
        access_log=False,
    )


def _display_host(host: str) -> str:
    wildcard_or_loopback = ("127.0.0.1", "0.0.0.0", "::")  # noqa: S104 - compared, not bound
    return "localhost" if host in wildcard_or_loopback else host


def _require_redis(settings: Settings, what: str) -> None:
    if not settings.redis_url:
        typer.echo(
            f"error: in embedded mode (no REDIS_URL) the {what} runs inside `botplatform serve`;"
            f" set REDIS_URL to run it as a separate process.",
            err=True,
        )
        raise typer.Exit(2)


@app.command()
def worker(
    processes: Annotated[int | None, typer.Option(help="Processes (WORKER_PROCESSES)")] = None,
    threads: Annotated[int | None, typer.Option(help="Threads each (WORKER_THREADS)")] = None,
) -> None:
    """Run background job workers (production mode, REDIS_URL set)."""
    from botplatform.worker.runner import run_workers

    settings = load_settings()
    _require_redis(settings, "worker")
    run_workers(processes or settings.worker_processes, threads or settings.worker_threads)


@app.command()
def scheduler() -> None:
    """Run the cron scheduler; of several, one leads and fires (production mode)."""
    from botplatform.worker.runner import run_scheduler

    _require_redis(load_settings(), "scheduler")
    run_scheduler()


sandbox_app = typer.Typer(help="Fake providers to try the platform without their accounts")
app.add_typer(sandbox_app, name="sandbox")


@sandbox_app.command("whatsapp")
def sandbox_whatsapp(
    webhook_url: Annotated[
        str, typer.Option(help="The channel's webhook URL (shown when you create the channel)")
    ],
    port: Annotated[int, typer.Option(help="Port of the fake Graph API")] = 3100,
    host: Annotated[str, typer.Option(help="Bind address")] = "127.0.0.1",
    token: Annotated[str, typer.Option(help="Access token the fake accepts")] = (
        "sandbox-token"  # noqa: S107 - a fake's well-known demo value
    ),
    app_secret: Annotated[str, typer.Option(help="App secret it signs webhooks with")] = (
        "sandbox-app-secret"  # noqa: S107 - a fake's well-known demo value
    ),
) -> None:
    """Run a fake WhatsApp Cloud API on loopback: it accepts the platform's sends, answers
    with real-looking ids, posts signed status webhooks back, and lets you play the customer."""
    from botplatform.sandbox import FakeGraph, run

    base = f"http://{host}:{port}"
    typer.echo(
        f"Fake WhatsApp Graph API on {base}\n"
        f"  1. Start the platform with WHATSAPP_API_BASE_URL={base}\n"
        f"  2. Its channel must use access_token={token} and app_secret={app_secret}\n"
        f"  3. Write as a customer:\n"
        f"     curl -X POST {base}/_sandbox/inbound -H 'content-type: application/json' \\\n"
        f'          -d \'{{"from": "15551234567", "text": "hello"}}\'\n'
        f"  4. See what the platform sent: curl {base}/_sandbox/sent\n"
    )
    run(
        host, port, FakeGraph(access_tokens={token}, app_secret=app_secret, webhook_url=webhook_url)
    )


@app.command()
def setup() -> None:
    """Migrate the database, create the first superadmin and a demo workspace if absent, and
    install the dashboard's browser assets."""
    _setup(load_settings())
    assets()
    typer.echo("Setup complete.")


@app.command()
def assets() -> None:
    """Install the browser assets (the dashboard's htmx, the API docs' Swagger UI) from the npm
    registry, digest-checked."""
    from botplatform.dashboard import assets as dashboard_assets

    try:
        for path in dashboard_assets.install_all():
            typer.echo(f"installed {path}")
    except dashboard_assets.AssetError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc


@app.command("create-admin")
def create_admin(
    email: Annotated[str, typer.Option(prompt=True, help="Email of the new superadmin")],
    name: Annotated[str, typer.Option(help="Display name")] = "Administrator",
    password: Annotated[
        str | None, typer.Option(help="Password; generated and printed when omitted")
    ] = None,
) -> None:
    """Create a platform superadmin (or promote an existing user)."""
    from botplatform.auth.service import create_user, find_by_email

    chosen = password or generate_password()

    async def work(runtime: Runtime) -> list[NewCredentials]:
        async with runtime.db.unit_of_work() as db:
            user = await find_by_email(db, email)
            if user is not None:
                user.is_superadmin = True
                typer.echo(f"{user.email} is now a superadmin.")
                return []
            user = await create_user(db, runtime, email, chosen, name, is_superadmin=True)
            return [NewCredentials(user.email, chosen, "superadmin")] if not password else []

    try:
        _print_credentials(run_with_runtime(load_settings(), work))
    except AppError as exc:
        typer.echo(f"error: {exc.message}", err=True)
        raise typer.Exit(1) from exc
    typer.echo("Superadmin ready.")


@db_app.command("migrate")
def db_migrate() -> None:
    """Apply every pending migration."""
    from botplatform import migrate

    migrate.upgrade(load_settings())
    typer.echo("Database is at the latest migration.")


@db_app.command("seed")
def db_seed() -> None:
    """Create the demo workspace and one demo user per role (migrating first if needed)."""
    from botplatform import migrate

    settings = load_settings()
    migrate.upgrade(settings)
    _print_credentials(run_with_runtime(settings, seed_demo_members))
    typer.echo("Demo data ready.")


@db_app.command("reset")
def db_reset(
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation")] = False,
) -> None:
    """Drop every table and migrate again. Refused when APP_ENV=production."""
    from botplatform import migrate

    settings = load_settings()
    if settings.env == "production":
        typer.echo("error: db reset is refused when APP_ENV=production.", err=True)
        raise typer.Exit(1)
    if not yes:
        typer.confirm("This deletes all data. Continue?", abort=True)
    migrate.downgrade(settings)
    migrate.upgrade(settings)
    typer.echo("Database reset.")


@db_app.command("ping")
def db_ping() -> None:
    """Report database and Redis reachability; exit 1 when one is down."""
    from botplatform.health.service import readiness

    checks = run_with_runtime(load_settings(), readiness)
    for name, state in checks.items():
        typer.echo(f"{name}: {state}")
    if "down" in checks.values():
        raise typer.Exit(1)


def main() -> None:  # pragma: no cover - console entry point
    sys.exit(app())
