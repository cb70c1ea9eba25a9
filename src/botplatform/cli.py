"""The `botplatform` command: the Python counterpart of the original npm scripts.

Startup is kept cheap: this module and the sub-command modules import only typer at the top;
settings, models, the app and the job queue are imported inside the commands that use them,
so `--help` and the light commands answer in well under a second."""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING, Annotated, Any

import typer

from botplatform.analytics.cli import analytics_app
from botplatform.audit.cli import audit_app
from botplatform.backup import cli as backup_cli
from botplatform.kit.cli_help import Group
from botplatform.kit.keys_cli import keys_app
from botplatform.worker.cli import queue_app

if TYPE_CHECKING:
    from botplatform.bootstrap import NewCredentials
    from botplatform.config import Settings
    from botplatform.runtime import Runtime

#: The largest WebSocket frame `serve` reads (uvicorn's default is 16 MiB).
WS_MAX_FRAME_BYTES = 64 * 1024

# Plain (click) help: paragraphs are re-wrapped to the terminal, and options show no type tags.
app = typer.Typer(
    help="WhatsApp Bot Platform",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,
    cls=Group,
)
db_app = typer.Typer(
    help="Database: migrate, seed, reset, ping",
    no_args_is_help=True,
    rich_markup_mode=None,
    cls=Group,
)
app.add_typer(db_app, name="db")
app.add_typer(queue_app, name="queue")
app.add_typer(audit_app, name="audit")
app.add_typer(keys_app, name="keys")
app.command("backup")(backup_cli.backup)
app.command("restore")(backup_cli.restore)
app.add_typer(analytics_app, name="analytics")


def _print_credentials(created: list[NewCredentials]) -> None:
    if not created:
        return
    typer.echo("\n  Credentials (shown only this once — keep them safe):")
    for item in created:
        typer.echo(f"    {item.role:<11} {item.email:<34} {item.password}")
    typer.echo("")


def _setup(settings: Settings) -> None:
    from botplatform import migrate
    from botplatform.bootstrap import first_start
    from botplatform.runtime import run_with_runtime

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

    from botplatform.config import load_settings

    settings = load_settings()
    if settings.should_auto_migrate:
        _setup(settings)
    bind_host, bind_port = host or settings.host, port or settings.port
    # The app (built by uvicorn from the environment) derives its links and channels'
    # webhook URLs from HOST and PORT when APP_URL is unset: tell it where it really listens.
    os.environ["HOST"], os.environ["PORT"] = bind_host, str(bind_port)
    from botplatform.config import public_host
    from botplatform.dashboard import assets as dashboard_assets

    if absent := dashboard_assets.missing():
        names = ", ".join(asset.target for asset in absent)
        typer.echo(f"warning: browser assets not installed ({names}); run `botplatform assets`")
    typer.echo(f"WhatsApp Bot Platform on http://{public_host(bind_host)}:{bind_port}")
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
        # Sockets (the widget's, the live inbox's) carry small JSON frames: compression saves
        # little on them and costs ~39 KiB of zlib state per socket, the largest share of an
        # idle widget socket (docs/decisions.md). A frame above this size closes the socket
        # before it is buffered (the widget's own limit is 32 KiB).
        ws_per_message_deflate=False,
        ws_max_size=WS_MAX_FRAME_BYTES,
    )


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
    from botplatform.config import load_settings
    from botplatform.worker.runner import run_workers

    settings = load_settings()
    _require_redis(settings, "worker")
    run_workers(processes or settings.worker_processes, threads or settings.worker_threads)


@app.command()
def scheduler() -> None:
    """Run the cron scheduler; of several, one leads and fires (production mode)."""
    from botplatform.config import load_settings
    from botplatform.worker.runner import run_scheduler

    _require_redis(load_settings(), "scheduler")
    run_scheduler()


sandbox_app = typer.Typer(
    help="Fake providers to try the platform without their accounts",
    rich_markup_mode=None,
    cls=Group,
)
app.add_typer(sandbox_app, name="sandbox")


SANDBOX_URL = "http://127.0.0.1:3100"


@sandbox_app.command("whatsapp")
def sandbox_whatsapp(
    webhook_url: Annotated[
        str | None,
        typer.Option(
            help="A channel's webhook URL, for a channel you created by hand with the values "
            "printed here (not needed with the dashboard's 'Connect the sandbox')"
        ),
    ] = None,
    port: Annotated[int, typer.Option(help="Port of the fake Graph API")] = 3100,
    host: Annotated[str, typer.Option(help="Bind address")] = "127.0.0.1",
    phone_number_id: Annotated[
        str, typer.Option(help="The phone number id a hand-made channel uses")
    ] = "1122334455667",
    token: Annotated[str, typer.Option(help="Access token the fake accepts")] = (
        "sandbox-token"  # noqa: S107 - a fake's well-known demo value
    ),
    app_secret: Annotated[str, typer.Option(help="App secret it signs webhooks with")] = (
        "sandbox-app-secret"  # noqa: S107 - a fake's well-known demo value
    ),
    template_approval_delay: Annotated[
        float,
        typer.Option(
            min=0,
            envvar="SANDBOX_TEMPLATE_APPROVAL_DELAY",
            help="Seconds a new message template stays PENDING before it is reviewed",
        ),
    ] = 5.0,
) -> None:
    """Run a fake WhatsApp Cloud API on loopback: it accepts the platform's sends, answers
    with real-looking ids, posts signed status webhooks back, and lets you play the customer."""
    from botplatform.sandbox import FakeGraph, run

    base = f"http://{host}:{port}"
    graph = FakeGraph(
        access_tokens={token},
        app_secret=app_secret,
        webhook_url=webhook_url,
        phone_number_id=phone_number_id,
        template_approval_delay=template_approval_delay,
    )
    typer.echo(sandbox_instructions(base, graph, token))
    run(host, port, graph)


def sandbox_instructions(base: str, graph: Any, token: str) -> str:
    """What `sandbox whatsapp` prints: how to point the platform at it, the exact values of a
    channel, and how to write as a customer."""
    hooked = f"webhooks go to {graph.webhook_url}" if graph.webhook_url else "no webhook URL yet"
    return (
        f"Fake WhatsApp Cloud API on {base}\n"
        f"  1. Start the platform with WHATSAPP_API_BASE_URL={base}\n"
        f"     e.g.  WHATSAPP_API_BASE_URL={base} uv run botplatform serve\n"
        f"  2. Create the channel: in the dashboard, Channels -> 'Connect the sandbox'\n"
        f"     (or POST /api/v1/workspaces/{{ws}}/channels/sandbox). Nothing to copy.\n"
        f"     By hand instead, use exactly these values and pass its webhook URL with\n"
        f"     --webhook-url ({hooked}):\n"
        f"       phone_number_id      {graph.phone_number_id}\n"
        f"       business_account_id  {graph.waba_id}\n"
        f"       access_token         {token}\n"
        f"       app_secret           {graph.app_secret}\n"
        f"  3. Write as a customer (each number is its own customer and conversation):\n"
        f'       uv run botplatform sandbox message "hello" --from 15551234567 --name Ada\n'
        f"     or: curl -X POST {base}/_sandbox/inbound -H 'content-type: application/json' \\\n"
        f'              -d \'{{"from": "15551234567", "name": "Ada", "text": "hello"}}\'\n'
        f"  4. Reply from the inbox; see what reached 'Meta': curl {base}/_sandbox/sent\n"
    )


def _meta_sandbox(provider: str, port: int, host: str, token: str, app_secret: str) -> None:
    from botplatform.sandbox import FakeGraph, run

    base = f"http://{host}:{port}"
    graph = FakeGraph(access_tokens={token}, app_secret=app_secret)
    typer.echo(meta_sandbox_instructions(base, provider, token, app_secret))
    run(host, port, graph)


def meta_sandbox_instructions(base: str, provider: str, token: str, app_secret: str) -> str:
    """What `sandbox messenger` / `sandbox instagram` print (one fake serves both, and
    WhatsApp too)."""
    return (
        f"Fake Meta Graph API (Messenger, Instagram and WhatsApp) on {base}\n"
        f"  1. Start the platform with MESSENGER_API_BASE_URL={base}\n"
        f"     e.g.  MESSENGER_API_BASE_URL={base} WHATSAPP_API_BASE_URL={base} "
        f"uv run botplatform serve\n"
        f"  2. Create the channel: POST /api/v1/workspaces/{{ws}}/channels/sandbox with\n"
        f'     {{"provider": "{provider}"}}. Nothing to copy: it answers the Page id.\n'
        f"     (It accepts the token {token} and signs webhooks with {app_secret}.)\n"
        f'  3. Write as a customer to that Page (a new customer unless you give "from"):\n'
        f"       curl -X POST {base}/_sandbox/meta/inbound -H 'content-type: application/json' \\\n"
        f'            -d \'{{"page_id": "<page_id>", "name": "Ada", "text": "hello"}}\'\n'
        f"  4. Reply from the inbox; see what reached 'Meta': curl {base}/_sandbox/meta/sent\n"
        f"     (each send is echoed back, then delivered and read)\n"
    )


@sandbox_app.command("slack")
def sandbox_slack(
    port: Annotated[int, typer.Option(help="Port of the fake Slack Web API")] = 3200,
    host: Annotated[str, typer.Option(help="Bind address")] = "127.0.0.1",
    token: Annotated[str, typer.Option(help="Bot token the fake accepts")] = (
        "xoxb-sandbox-token"  # noqa: S107 - a fake's well-known demo value
    ),
    signing_secret: Annotated[str, typer.Option(help="Signing secret it signs events with")] = (
        "sandbox-signing-secret"  # noqa: S107 - a fake's well-known demo value
    ),
) -> None:
    """Run a fake Slack Web API on loopback: it checks the bot token and the shapes of the
    platform's calls, and lets you write and press buttons as a Slack user."""
    from botplatform.sandbox.slack import FakeSlack, run

    base = f"http://{host}:{port}"
    typer.echo(slack_sandbox_instructions(base, token, signing_secret))
    run(host, port, FakeSlack(tokens={token}, signing_secret=signing_secret, base_url=base))


def slack_sandbox_instructions(base: str, token: str, signing_secret: str) -> str:
    return (
        f"Fake Slack Web API on {base}\n"
        f"  1. Start the platform with SLACK_API_BASE_URL={base}/api\n"
        f"  2. Create the channel: POST /api/v1/workspaces/{{ws}}/channels with\n"
        f'     {{"provider": "slack", "bot_token": "{token}", '
        f'"signing_secret": "{signing_secret}"}}\n'
        f"  3. Tell the sandbox its webhook URL (the answer's webhook_url):\n"
        f'       curl -X POST {base}/_sandbox/slack/connect -d \'{{"webhook_url": "<url>"}}\'\n'
        f'  4. Write as a Slack user (a DM with the app; add "channel": "C123" to mention it):\n'
        f'       curl -X POST {base}/_sandbox/slack/message -d \'{{"text": "hello"}}\'\n'
        f"  5. See what reached 'Slack': curl {base}/_sandbox/slack/sent ; press a button with\n"
        f"       curl -X POST {base}/_sandbox/slack/press "
        f'-d \'{{"message": "<channel:ts>", "value": "<button id>"}}\'\n'
        f"     Inject a 429: curl -X POST {base}/_sandbox/slack/fail "
        f'-d \'{{"status": 429, "error": "ratelimited", "retry_after": 3}}\'\n'
    )


SandboxPort = Annotated[int, typer.Option(help="Port of the fake Graph API")]
SandboxHost = Annotated[str, typer.Option(help="Bind address")]
SandboxToken = Annotated[str, typer.Option(help="Access token the fake accepts")]
SandboxSecret = Annotated[str, typer.Option(help="App secret it signs webhooks with")]


@sandbox_app.command("messenger")
def sandbox_messenger(
    port: SandboxPort = 3100,
    host: SandboxHost = "127.0.0.1",
    token: SandboxToken = "sandbox-token",  # noqa: S107 - a fake's well-known demo value
    app_secret: SandboxSecret = "sandbox-app-secret",  # noqa: S107 - a fake's demo value
) -> None:
    """Run a fake Messenger Send API on loopback (the same fake as `sandbox whatsapp`)."""
    _meta_sandbox("messenger", port, host, token, app_secret)


@sandbox_app.command("instagram")
def sandbox_instagram(
    port: SandboxPort = 3100,
    host: SandboxHost = "127.0.0.1",
    token: SandboxToken = "sandbox-token",  # noqa: S107 - a fake's well-known demo value
    app_secret: SandboxSecret = "sandbox-app-secret",  # noqa: S107 - a fake's demo value
) -> None:
    """Run a fake Instagram Direct API on loopback (the same fake as `sandbox whatsapp`)."""
    _meta_sandbox("instagram", port, host, token, app_secret)


@sandbox_app.command("telegram")
def sandbox_telegram(
    port: Annotated[int, typer.Option(help="Port of the fake Bot API")] = 3200,
    host: SandboxHost = "127.0.0.1",
    token: Annotated[str, typer.Option(help="Bot token the fake accepts (<bot id>:<secret>)")] = (
        "7000000001:sandbox-telegram-token"  # noqa: S107 - a fake's well-known demo value
    ),
) -> None:
    """Run a fake Telegram Bot API on loopback: it answers the platform's getMe, setWebhook
    and sends, pushes updates to the bot's webhook with its secret token, and lets you play
    the user."""
    from botplatform.sandbox import telegram

    base = f"http://{host}:{port}"
    fake = telegram.FakeBotApi(tokens=(token,))
    typer.echo(telegram_sandbox_instructions(base, token))
    telegram.run(host, port, fake)


def telegram_sandbox_instructions(base: str, token: str) -> str:
    """What `sandbox telegram` prints: how to point the platform at it and play a user."""
    return (
        f"Fake Telegram Bot API on {base}\n"
        f"  1. Start the platform with TELEGRAM_API_BASE_URL={base}\n"
        f"     e.g.  TELEGRAM_API_BASE_URL={base} uv run botplatform serve\n"
        f"  2. Create the channel with this bot token (the platform calls getMe and\n"
        f"     setWebhook here, as it would at Telegram):\n"
        f"       POST /api/v1/workspaces/{{ws}}/channels\n"
        f'       {{"provider": "telegram", "bot_token": "{token}"}}\n'
        f"     Another bot: curl -X POST {base}/_sandbox/telegram/bots\n"
        f'  3. Write as a user (each "from" is its own user and conversation):\n'
        f"       curl -X POST {base}/_sandbox/telegram/inbound \\\n"
        f"            -H 'content-type: application/json' \\\n"
        f'            -d \'{{"text": "hello", "from": 100000001, "name": "Ada"}}\'\n'
        f'     Tap a button: {{"callback_data": "<button id>", "from": 100000001}}; block the\n'
        f'     bot: {{"block": true, "from": 100000001}}\n'
        f"  4. Reply from the inbox; see what reached 'Telegram':\n"
        f"       curl {base}/_sandbox/telegram/sent\n"
        f"     Make the next send fail: curl -X POST {base}/_sandbox/telegram/fail \\\n"
        f'            -d \'{{"status": 429, "retry_after": 3}}\'\n'
    )


@sandbox_app.command("message")
def sandbox_message(
    text: Annotated[str, typer.Argument(help="What the customer writes")],
    from_: Annotated[
        str, typer.Option("--from", help="The customer's WhatsApp number (digits)")
    ] = "15551234567",
    name: Annotated[
        str | None,
        typer.Option(help="The customer's profile name (default: one made from the number)"),
    ] = None,
    phone_number_id: Annotated[
        str | None,
        typer.Option(help="The business number written to (default: the latest connected)"),
    ] = None,
    sandbox_url: Annotated[
        str, typer.Option(help="Where `botplatform sandbox whatsapp` runs")
    ] = SANDBOX_URL,
) -> None:
    """Write to your sandbox channel as a WhatsApp customer."""
    import httpx

    body: dict[str, str] = {"from": from_, "text": text}
    if name:
        body["name"] = name
    if phone_number_id:
        body["phone_number_id"] = phone_number_id
    try:
        response = httpx.post(f"{sandbox_url.rstrip('/')}/_sandbox/inbound", json=body, timeout=15)
    except httpx.HTTPError as exc:
        typer.echo(
            f"error: no sandbox at {sandbox_url} ({type(exc).__name__});"
            " start it with `botplatform sandbox whatsapp`",
            err=True,
        )
        raise typer.Exit(1) from exc
    answer = response.json() if response.headers.get("content-type", "").startswith("appl") else {}
    if response.status_code != 200:
        typer.echo(f"error: {answer.get('error') or response.text}", err=True)
        raise typer.Exit(1)
    line = f"{answer['name']} (+{answer['from']}) wrote {text!r}: {answer['delivery']}"
    if not str(answer["delivery"]).endswith(" 200"):
        typer.echo(f"error: {line}", err=True)
        raise typer.Exit(1)
    typer.echo(line)


@app.command()
def setup() -> None:
    """Migrate the database, create the first superadmin and a demo workspace if absent, and
    install the dashboard's browser assets."""
    from botplatform.config import load_settings

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
    email: Annotated[str, typer.Option(prompt=True, help="Email of the superadmin")],
    name: Annotated[str, typer.Option(help="Display name (new accounts)")] = "Administrator",
    password: Annotated[
        str | None,
        typer.Option(
            help="Password to set, for a new or an existing account; generated and printed"
            " for a new account when omitted"
        ),
    ] = None,
) -> None:
    """Create a platform superadmin, or promote an existing user. With --password the
    account's password is set (same strength rules as registration), its failed-login lock
    is lifted and its other sessions end: the way back in for a locked-out admin."""
    from botplatform.auth.service import create_user, find_by_email, set_password
    from botplatform.bootstrap import NewCredentials, generate_password
    from botplatform.config import load_settings
    from botplatform.kit.errors import AppError
    from botplatform.runtime import run_with_runtime

    async def work(runtime: Runtime) -> list[NewCredentials]:
        async with runtime.db.unit_of_work(system=True) as db:
            user = await find_by_email(db, email)
            if user is not None:
                user.is_superadmin = True
                if password is not None:
                    await set_password(db, runtime, user, password)
                    typer.echo(f"{user.email} is a superadmin; its password was set.")
                else:
                    typer.echo(f"{user.email} is now a superadmin (password unchanged).")
                return []
            chosen = password or generate_password()
            user = await create_user(db, runtime, email, chosen, name, is_superadmin=True)
            return [NewCredentials(user.email, chosen, "superadmin")] if not password else []

    try:
        _print_credentials(run_with_runtime(load_settings(), work))
    except AppError as exc:
        typer.echo(f"error: {exc.message}", err=True)
        raise typer.Exit(1) from exc
    typer.echo("Superadmin ready.")


users_app = typer.Typer(
    help="User accounts: password reset links",
    no_args_is_help=True,
    rich_markup_mode=None,
    cls=Group,
)
app.add_typer(users_app, name="users")


@users_app.command("reset-password")
def users_reset_password(
    email: Annotated[str, typer.Argument(help="Email of the account")],
) -> None:
    """Print a one-time password-reset link for an account, without sending email: the same
    link the "forgot password" email carries (works once, expires after
    PASSWORD_RESET_TTL_SECONDS)."""
    from botplatform.auth.recovery import reset_link
    from botplatform.auth.service import find_by_email
    from botplatform.config import load_settings
    from botplatform.runtime import run_with_runtime

    async def work(runtime: Runtime) -> tuple[str, int] | None:
        async with runtime.db.unit_of_work(write=False, system=True) as db:
            user = await find_by_email(db, email)
            if user is None or not user.is_active:
                return None
            return reset_link(runtime, user), runtime.settings.password_reset_ttl_seconds

    found = run_with_runtime(load_settings(), work)
    if found is None:
        typer.echo(f"error: no active account with the email {email}.", err=True)
        raise typer.Exit(1)
    link, ttl = found
    typer.echo(f"Password reset link for {email} (works once, for {ttl // 60} minutes):")
    typer.echo(link)


@db_app.command("migrate")
def db_migrate() -> None:
    """Apply every pending migration."""
    from botplatform import migrate
    from botplatform.config import load_settings

    migrate.upgrade(load_settings())
    typer.echo("Database is at the latest migration.")


@db_app.command("wait")
def db_wait(
    timeout: Annotated[int, typer.Option(help="Seconds to wait at most")] = 300,
) -> None:
    """Wait until the database is at this release's latest migration; exit 1 after TIMEOUT.
    Kubernetes runs it as the app pods' init container: they start once the migration Job
    has run."""
    import asyncio
    import time

    from botplatform.backup.database import code_heads, current_revisions
    from botplatform.config import load_settings

    settings = load_settings()
    wanted = code_heads(settings)
    deadline = time.monotonic() + timeout
    while True:
        try:
            current = asyncio.run(current_revisions(settings))
        except Exception as exc:  # not reachable yet: keep waiting, say why at the end
            current, reason = (), str(exc)
        else:
            reason = f"the database is at {', '.join(current) or 'no migration'}"
        if current == wanted:
            typer.echo(f"Database is at the latest migration ({', '.join(wanted)}).")
            return
        if time.monotonic() > deadline:
            typer.echo(
                f"error: still waiting for migration {', '.join(wanted)}: {reason}", err=True
            )
            raise typer.Exit(1)
        time.sleep(2)


@db_app.command("seed")
def db_seed() -> None:
    """Create the demo workspace and one demo user per role (migrating first if needed)."""
    from botplatform import migrate
    from botplatform.bootstrap import seed_demo_members
    from botplatform.config import load_settings
    from botplatform.runtime import run_with_runtime

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
    from botplatform.config import load_settings

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
    import asyncio

    from botplatform.config import load_settings
    from botplatform.health.light import ping

    checks = asyncio.run(ping(load_settings()))
    for name, state in checks.items():
        typer.echo(f"{name}: {state}")
    if "down" in checks.values():
        raise typer.Exit(1)


def main() -> None:  # pragma: no cover - console entry point
    sys.exit(app())
