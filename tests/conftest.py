"""One suite, two backends: every test that uses the app runs on SQLite + in-process and on
PostgreSQL + Redis. A backend whose service is missing fails the run when CI=true (or
BOTPLATFORM_REQUIRE_BACKENDS=1); elsewhere it is skipped with the reason."""

from __future__ import annotations

import asyncio
import email
import email.message
import email.policy
import hashlib
import hmac
import json
import os
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
import redis
from aiosmtpd.controller import Controller
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from moto.server import ThreadedMotoServer
from sqlalchemy import delete, event, update
from sqlalchemy.exc import DBAPIError

from botplatform import migrate
from botplatform.audit.chain import GENESIS_HASH
from botplatform.config import Settings
from botplatform.kit import core as kit_core
from botplatform.kit import shared_cache
from botplatform.kit.kv import MemoryStore, RedisStore, SqliteStore
from botplatform.main import create_app
from botplatform.models import AuditHead, Base, Plan, User
from botplatform.plans import cache as plans_cache
from botplatform.plans.defaults import DEFAULT_PLANS
from botplatform.runtime import Runtime
from botplatform.sandbox import FakeGraph
from botplatform.sandbox import create_app as create_graph_app
from botplatform.sandbox.slack import FakeSlack
from botplatform.sandbox.slack import create_app as create_slack_app
from botplatform.sandbox.telegram import DEFAULT_TOKEN as TELEGRAM_TOKEN
from botplatform.sandbox.telegram import FakeBotApi
from botplatform.sandbox.telegram import create_app as create_telegram_app
from tests.fakes import openai as fake_openai
from tests.serving import free_port, serving

# Real provider payloads, shared beside the checkout (never copied into it).
PROVIDER_SAMPLES = Path(
    os.environ.get(
        "PROVIDER_SAMPLES_DIR",
        Path(__file__).resolve().parents[1].parent / "shared" / "provider-samples",
    )
)
PG_URL = os.environ.get(
    "TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/botplatform_test"
)
# The app connects as this role — neither owner nor superuser — so row-level security binds it.
APP_ROLE = os.environ.get("TEST_DATABASE_APP_ROLE", "botplatform_app")
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
BACKENDS = [
    name.strip()
    for name in os.environ.get("BOTPLATFORM_TEST_BACKENDS", "sqlite,postgres").split(",")
    if name.strip()
]


GRAPH_PORT = free_port()
OPENAI_PORT = free_port()
SLACK_PORT = free_port()
SLACK_TOKEN = "xoxb-test-slack-token"
SLACK_SIGNING_SECRET = "test-slack-signing-secret"
TELEGRAM_PORT = free_port()
REQUIRE_BACKENDS = (
    os.environ.get("CI", "").lower() == "true"
    or os.environ.get("BOTPLATFORM_REQUIRE_BACKENDS") == "1"
)


RUN_SLOW = os.environ.get("RUN_SLOW_TESTS") == "1"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests marked `slow` (over a minute of real processes) stay out of the default run."""
    if RUN_SLOW:
        return
    skip = pytest.mark.skip(reason="slow: set RUN_SLOW_TESTS=1 (or bench/run.py --only broadcast)")
    for item in items:
        if item.get_closest_marker("slow"):
            item.add_marker(skip)


def _missing(reason: str) -> None:
    if REQUIRE_BACKENDS:
        pytest.fail(f"required test backend unavailable: {reason}", pytrace=False)
    pytest.skip(f"backend unavailable: {reason}")


async def _recreate_postgres_database(url: str) -> None:
    base, name = url.rsplit("/", 1)
    connection = await asyncpg.connect(f"{base}/postgres", timeout=5)
    try:
        await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await connection.execute(f'CREATE DATABASE "{name}"')
        exists = await connection.fetchval("SELECT 1 FROM pg_roles WHERE rolname = $1", APP_ROLE)
        if not exists:
            await connection.execute(f'CREATE ROLE "{APP_ROLE}" LOGIN')
    finally:
        await connection.close()


def app_role_url(owner_url: str) -> str:
    """The same database, reached as the app role."""
    scheme, rest = owner_url.split("://", 1)
    return f"{scheme}://{APP_ROLE}@{rest.split('@', 1)[1]}"


class SmtpSink:
    """A real SMTP server (aiosmtpd) on loopback that keeps what it receives. `stall` holds
    the conversation for those addresses at RCPT TO, before any message data is sent."""

    def __init__(self) -> None:
        self.messages: list[email.message.EmailMessage] = []
        self.stall: dict[str, float] = {}
        self.stalled = threading.Event()
        self.rcpt_at: dict[str, float] = {}  # time.monotonic() of each address's first RCPT TO
        self.port = 0

    async def handle_RCPT(  # noqa: N802 - aiosmtpd's hook name
        self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: Any
    ) -> str:
        self.rcpt_at.setdefault(address, time.monotonic())
        if address in self.stall:
            self.stalled.set()
            await asyncio.sleep(self.stall[address])
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        self.messages.append(
            email.message_from_bytes(envelope.content, policy=email.policy.default)
        )
        return "250 Message accepted for delivery"

    def to(self, address: str) -> list[email.message.EmailMessage]:
        return [m for m in self.messages if m["To"] == address]

    def reset(self) -> None:
        self.messages.clear()
        self.stall.clear()
        self.stalled.clear()


@pytest.fixture(scope="session")
def smtp() -> Iterator[SmtpSink]:
    sink = SmtpSink()
    controller = Controller(sink, hostname="127.0.0.1", port=free_port())
    controller.start()
    sink.port = controller.port
    yield sink
    controller.stop()


@contextmanager
def sql_statements(runtime: Runtime) -> Iterator[list[str]]:
    """The SQL the app runs through SQLAlchemy meanwhile, lowercased on one line each (not the
    statements `kit.core` runs on asyncpg itself)."""
    seen: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *_: Any) -> None:
        seen.append(" ".join(statement.split()).lower())

    engine = runtime.db.engine.sync_engine
    event.listen(engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", record)


@contextmanager
def driver_statements(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """The SQL `kit.core` sends on asyncpg itself meanwhile (PostgreSQL's fast path, which
    `sql_statements` does not see), one entry per execution, as sent."""
    seen: list[str] = []
    run_on_driver = kit_core._run_on_driver

    async def recording(adapted: Any, compiled: Any, rows: Any) -> Any:
        seen.append(compiled.sql)
        return await run_on_driver(adapted, compiled, rows)

    with monkeypatch.context() as patched:
        patched.setattr(kit_core, "_run_on_driver", recording)
        yield seen


async def eventually(predicate: Any, timeout: float = 15.0, interval: float = 0.05) -> Any:
    """Polls `predicate` (sync or async) until it returns something truthy."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        result = predicate()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return result
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        await asyncio.sleep(interval)


def base_settings(tmp: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "env": "test",
        "secret_key": "test-secret-key-not-for-production",
        "data_dir": tmp / "data",
        "log_dir": tmp / "logs",
        "log_to_stdout": False,
        "log_level": "INFO",
        # Cheap hashing keeps the suite fast; production defaults are in config.py.
        "argon2_time_cost": 1,
        "argon2_memory_cost_kib": 1024,
        "argon2_parallelism": 1,
        "max_body_bytes": 64 * 1024,
        # Tests run a worker inside the app on both backends; schedulers are tested alone.
        "worker_in_process": True,
        "worker_threads": 4,
        "scheduler_in_process": False,
        "smtp_host": "127.0.0.1",
        # The fake Graph API (botplatform.sandbox) listens here during the tests.
        "whatsapp_api_base_url": f"http://127.0.0.1:{GRAPH_PORT}",
        "messenger_api_base_url": f"http://127.0.0.1:{GRAPH_PORT}",
        # The fake Slack Web API (botplatform.sandbox.slack) listens here.
        "slack_api_base_url": f"http://127.0.0.1:{SLACK_PORT}/api",
        # The fake Telegram Bot API (botplatform.sandbox.telegram) listens here.
        "telegram_api_base_url": f"http://127.0.0.1:{TELEGRAM_PORT}",
        # The fake OpenAI-compatible API (tests/fakes/openai.py) listens here.
        "openai_base_url": f"http://127.0.0.1:{OPENAI_PORT}/v1",
        "openai_api_key": fake_openai.API_KEY,
        # Generous limits for the suite; tests of the limits themselves set their own.
        "rate_limit_general": "100000/minute",
        "rate_limit_auth": "100000/minute",
        "smtp_starttls": False,
        # The fake webhook receivers listen on loopback; everything else private stays refused.
        "outbound_allowlist": ["127.0.0.1/32"],
    }
    values.update(overrides)
    return Settings(**values)


def _prepare_postgres(tmp: Path, **overrides: Any) -> Settings:
    try:
        asyncio.run(_recreate_postgres_database(PG_URL))
    except (OSError, asyncpg.PostgresError) as exc:
        _missing(f"PostgreSQL at {PG_URL}: {exc}")
    try:
        client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2)
        client.ping()
        client.flushdb()
        client.close()
    except redis.RedisError as exc:
        _missing(f"Redis at {REDIS_URL}: {exc}")
    return base_settings(
        tmp,
        database_url=app_role_url(PG_URL),
        database_owner_url=PG_URL,
        redis_url=REDIS_URL,
        **overrides,
    )


@pytest.fixture(scope="session", params=BACKENDS)
def settings(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, smtp: SmtpSink
) -> Settings:
    """Settings for one backend, its database created fresh and migrated to head."""
    tmp = tmp_path_factory.mktemp(request.param)
    smtp_port = smtp.port
    if request.param == "postgres":
        settings = _prepare_postgres(tmp, smtp_port=smtp_port)
    elif request.param == "sqlite":
        settings = base_settings(
            tmp, database_url=f"sqlite:///{tmp / 'test.db'}", redis_url="", smtp_port=smtp_port
        )
    else:
        raise pytest.UsageError(f"unknown backend {request.param!r}")
    migrate.upgrade(settings)
    return settings


@pytest.fixture(scope="session")
async def app(settings: Settings) -> AsyncIterator[FastAPI]:
    application = create_app(settings)
    async with LifespanManager(application, startup_timeout=30, shutdown_timeout=60):
        yield application


@pytest.fixture(scope="session")
async def graph(app: FastAPI) -> AsyncIterator[FakeGraph]:
    """The fake WhatsApp Graph API on a loopback port, posting its webhooks straight into the
    app under test (same event loop)."""
    fake = FakeGraph(
        access_tokens={CHANNEL_TOKEN},
        app_secret=APP_SECRET,
        status_delay=0.01,
        webhook_client=httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://testserver"
        ),
    )
    async with serving(create_graph_app(fake), GRAPH_PORT, lifespan="on"):
        yield fake


@pytest.fixture(scope="session")
async def slack_server(app: FastAPI) -> AsyncIterator[FakeSlack]:
    """The fake Slack Web API on a loopback port, pushing its events into the app under test."""
    fake = FakeSlack(
        tokens={SLACK_TOKEN},
        signing_secret=SLACK_SIGNING_SECRET,
        base_url=f"http://127.0.0.1:{SLACK_PORT}",
        webhook_client=httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://testserver"
        ),
    )
    async with serving(create_slack_app(fake), SLACK_PORT, lifespan="on"):
        yield fake


@pytest.fixture
async def slack(slack_server: FakeSlack) -> AsyncIterator[FakeSlack]:
    """The fake Slack Web API, reset for this test."""
    slack_server.reset()
    yield slack_server
    slack_server.reset()


@pytest.fixture
async def wa(graph: FakeGraph) -> AsyncIterator[FakeGraph]:
    """The fake Graph API, reset for this test."""
    graph.reset()
    graph.webhook_url = None
    graph.numbers.clear()
    graph.pages.clear()
    yield graph
    graph.reset()
    graph.numbers.clear()
    graph.pages.clear()


@pytest.fixture(scope="session")
async def telegram_api(app: FastAPI) -> AsyncIterator[FakeBotApi]:
    """The fake Telegram Bot API on its loopback port, pushing updates straight into the app
    under test (same event loop)."""
    fake = FakeBotApi(
        webhook_client=httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://testserver"
        )
    )
    async with serving(create_telegram_app(fake), TELEGRAM_PORT):
        yield fake


@pytest.fixture
async def tg(telegram_api: FakeBotApi) -> AsyncIterator[FakeBotApi]:
    """The fake Telegram Bot API, reset for this test (its default bot only)."""
    telegram_api.reset()
    yield telegram_api
    telegram_api.reset()
    for token in [t for t in telegram_api.bots if t != TELEGRAM_TOKEN]:
        del telegram_api.bots[token]


@pytest.fixture(scope="session")
async def openai_server() -> AsyncIterator[fake_openai.FakeOpenAI]:
    """The fake OpenAI-compatible API on its loopback port, for the whole session."""
    fake = fake_openai.FakeOpenAI()
    async with serving(fake_openai.create_app(fake), OPENAI_PORT, lifespan="on"):
        yield fake


@pytest.fixture
async def openai(openai_server: fake_openai.FakeOpenAI) -> AsyncIterator[fake_openai.FakeOpenAI]:
    """The fake OpenAI-compatible API, reset for this test."""
    openai_server.reset()
    yield openai_server
    openai_server.reset()


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """A local S3 server (moto, over real HTTP) for the media storage and backups."""
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture(scope="session")
def runtime(app: FastAPI) -> Runtime:
    runtime: Runtime = app.state.runtime
    return runtime


async def _clean(runtime: Runtime) -> None:
    # A job of the finished test may still hold SQLite's write lock, or on PostgreSQL lock rows
    # in the other order (a deadlock): try again.
    for attempt in range(5):
        try:
            await _delete_everything(runtime)
            break
        except DBAPIError:
            if attempt == 4:
                raise
            await asyncio.sleep(1)
    await runtime.ratelimiter.reset()
    # The rows went with statements no cache sees (`kit.shared_cache`): start afresh too.
    runtime.cache.clear()
    if isinstance(runtime.kv, MemoryStore):
        await runtime.kv.close()
    elif isinstance(runtime.kv, SqliteStore):
        await runtime.kv.clear()
    elif isinstance(runtime.kv, RedisStore):
        await runtime.kv.client.flushdb()


async def _delete_everything(runtime: Runtime) -> None:
    async with runtime.db.unit_of_work(system=True) as db:
        for table in reversed(Base.metadata.sorted_tables):
            if table.name != "audit_head":
                await db.execute(delete(table))
        await db.execute(update(AuditHead).values(seq=0, hash=GENESIS_HASH))
        # The plans the migration seeded, as they were before a test edited their quotas.
        db.add_all(Plan(**values) for values in DEFAULT_PLANS)


@pytest.fixture
async def client(
    app: FastAPI, runtime: Runtime, smtp: SmtpSink
) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client on the app; every row, key and received email is gone after the test."""
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        yield http
    await _clean(runtime)
    smtp.reset()


@dataclass
class Account:
    email: str
    password: str
    token: str
    user_id: uuid.UUID

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


STRONG_PASSWORD = "violet-harbour-lantern-42"
CHANNEL_TOKEN = "EAAG-test-token-9876"
APP_SECRET = "test-app-secret-0123456789"


def meta_signature(body: bytes, secret: str = APP_SECRET) -> dict[str, str]:
    digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return {"X-Hub-Signature-256": f"sha256={digest}", "Content-Type": "application/json"}


def whatsapp_text_payload(wa_id: str, text: str, name: str, wamid: str) -> dict[str, Any]:
    """A webhook of the shape Meta sends for one inbound text message."""
    import time

    value = {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "15550001111", "phone_number_id": "1122334455667"},
        "contacts": [{"profile": {"name": name}, "wa_id": wa_id}],
        "messages": [
            {
                "from": wa_id,
                "id": wamid,
                "timestamp": str(int(time.time())),
                "type": "text",
                "text": {"body": text},
            }
        ],
    }
    return {
        "object": "whatsapp_business_account",
        "entry": [
            {"id": "1234567890987654321", "changes": [{"value": value, "field": "messages"}]}
        ],
    }


class Api:
    """Small helpers over the HTTP API so that tests read as what a user does."""

    def __init__(self, http: httpx.AsyncClient) -> None:
        self.http = http

    async def register(self, email: str | None = None, name: str = "Test User") -> Account:
        email = email or f"user-{uuid.uuid4().hex[:10]}@example.com"
        response = await self.http.post(
            "/api/v1/auth/register",
            json={"email": email, "password": STRONG_PASSWORD, "name": name},
        )
        assert response.status_code == 201, response.text
        data = response.json()["data"]
        return Account(email, STRONG_PASSWORD, data["access_token"], uuid.UUID(data["user"]["id"]))

    async def create_workspace(self, owner: Account, name: str = "Acme") -> str:
        response = await self.http.post(
            "/api/v1/workspaces", json={"name": name}, headers=owner.headers
        )
        assert response.status_code == 201, response.text
        return str(response.json()["data"]["id"])

    async def invite(self, inviter: Account, ws: str, email: str, role: str) -> dict[str, Any]:
        response = await self.http.post(
            f"/api/v1/workspaces/{ws}/invitations",
            json={"email": email, "role": role},
            headers=inviter.headers,
        )
        assert response.status_code == 201, response.text
        return dict(response.json()["data"])

    async def create_key(
        self, owner: Account, ws: str, scopes: list[str], **extra: Any
    ) -> dict[str, Any]:
        response = await self.http.post(
            f"/api/v1/workspaces/{ws}/api-keys",
            json={"name": "test key", "scopes": scopes, **extra},
            headers=owner.headers,
        )
        assert response.status_code == 201, response.text
        return dict(response.json()["data"])

    async def subscribe(
        self, owner: Account, ws: str, url: str = "http://127.0.0.1:9/hook"
    ) -> dict[str, Any]:
        """An endpoint taking every event: the workspace's events are then stored (an event
        row exists for its deliveries; with no endpoint, none is written)."""
        response = await self.http.post(
            f"/api/v1/workspaces/{ws}/webhook-endpoints",
            json={"url": url, "event_types": ["*"]},
            headers=owner.headers,
        )
        assert response.status_code == 201, response.text
        return dict(response.json()["data"])

    async def create_channel(self, owner: Account, ws: str, **extra: Any) -> dict[str, Any]:
        body = {
            "name": "Support",
            "phone_number_id": "1122334455667",
            "business_account_id": "1234567890987654321",
            "access_token": "EAAG-test-token-9876",
            "app_secret": APP_SECRET,
            **extra,
        }
        response = await self.http.post(
            f"/api/v1/workspaces/{ws}/channels", json=body, headers=owner.headers
        )
        assert response.status_code == 201, response.text
        return dict(response.json()["data"])

    async def upload_media(
        self, owner: Account, ws: str, channel_id: str, data: bytes, name: str, mime: str
    ) -> str:
        """Uploads media through a channel (`POST …/channels/{id}/media`); its media id."""
        response = await self.http.post(
            f"/api/v1/workspaces/{ws}/channels/{channel_id}/media",
            files={"file": (name, data, mime)},
            headers=owner.headers,
        )
        assert response.status_code == 201, response.text
        return str(response.json()["data"]["id"])

    async def inbound_text(
        self,
        channel_id: str,
        wa_id: str,
        text: str,
        name: str = "Customer",
        message_id: str | None = None,
        secret: str = APP_SECRET,
    ) -> str:
        """Posts a signed WhatsApp webhook, as Meta does; returns the message's wamid."""
        wamid = message_id or f"wamid.{uuid.uuid4().hex}"
        payload = whatsapp_text_payload(wa_id, text, name, wamid)
        body = json.dumps(payload).encode()
        response = await self.http.post(
            f"/webhooks/whatsapp/{channel_id}", content=body, headers=meta_signature(body, secret)
        )
        assert response.status_code == 200, response.text
        return wamid

    async def conversation_of(self, owner: Account, ws: str, contact_name: str) -> dict[str, Any]:
        async def find() -> dict[str, Any] | None:
            response = await self.http.get(
                f"/api/v1/workspaces/{ws}/conversations", headers=owner.headers
            )
            items = response.json()["data"]["items"]
            return next((c for c in items if c["contact_name"] == contact_name), None)

        return dict(await eventually(find))

    async def add_member(self, owner: Account, ws: str, role: str) -> Account:
        """A new user who joined `ws` with `role` through a real invitation."""
        member = await self.register()
        created = await self.invite(owner, ws, member.email, role)
        token = created["link"].split("token=", 1)[1]
        response = await self.http.post(
            "/api/v1/invitations/accept", json={"token": token}, headers=member.headers
        )
        assert response.status_code == 200, response.text
        return member


@pytest.fixture
def api(client: httpx.AsyncClient) -> Api:
    return Api(client)


@pytest.fixture
def tmp_settings(tmp_path: Path) -> Iterator[Settings]:
    return base_settings(tmp_path)


async def set_quota(runtime: Runtime, plan: str, **quotas: int | None) -> None:
    """Edits a plan's quotas for this test (the `client` fixture restores the defaults)."""
    async with runtime.db.unit_of_work(system=True) as db:
        await db.execute(update(Plan).where(Plan.name == plan).values(**quotas))
        shared_cache.invalidate(db, plans_cache.KIND)  # a Core UPDATE: no ORM flush sees it


async def make_superadmin(runtime: Runtime, account: Account) -> None:
    async with runtime.db.unit_of_work(system=True) as db:
        await db.execute(update(User).where(User.id == account.user_id).values(is_superadmin=True))
