"""Every setting of the platform, read once from the environment (and `.env`).

The names are the ones SPEC.md and the original description use, so an existing `.env` keeps
working. Nothing else in the code reads `os.environ`.
"""

from __future__ import annotations

import ipaddress
import secrets
from functools import cached_property
from pathlib import Path
from typing import Annotated, Literal

from pydantic import AliasChoices, Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

DEFAULT_DATA_DIR = Path("data")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_file=".env",
        env_ignore_empty=True,
        extra="ignore",
        case_sensitive=False,
        populate_by_name=True,
    )

    # --- core -------------------------------------------------------------------------------
    env: Literal["development", "production", "test"] = Field("development", alias="APP_ENV")
    # The original's NEXTAUTH_URL / NEXTAUTH_SECRET are accepted too, so its .env works.
    # Empty: http://<HOST, or localhost>:<PORT>, so links follow where `serve` listens.
    app_url: str = Field("", validation_alias=AliasChoices("APP_URL", "NEXTAUTH_URL"))
    secret_key: str = Field("", validation_alias=AliasChoices("SECRET_KEY", "NEXTAUTH_SECRET"))
    data_dir: Path = Field(DEFAULT_DATA_DIR, alias="DATA_DIR")
    log_dir: Path = Field(Path("logs"), alias="LOG_DIR")
    log_level: str = Field("INFO", alias="LOG_LEVEL")
    log_to_stdout: bool = Field(True, alias="LOG_TO_STDOUT")

    # --- storage backends -------------------------------------------------------------------
    # Empty DATABASE_URL means the embedded SQLite file under DATA_DIR; empty REDIS_URL means
    # in-process cache, sessions, rate limits and queue (one process only).
    database_url: str = Field("", alias="DATABASE_URL")
    # A streaming replica for the reads that opt in (lists, analytics, exports), used while
    # it is at most DATABASE_REPLICA_MAX_LAG_SECONDS behind; else the primary answers.
    database_replica_url: str = Field("", alias="DATABASE_REPLICA_URL")
    database_replica_max_lag_seconds: float = Field(
        2.0, ge=0, le=300, alias="DATABASE_REPLICA_MAX_LAG_SECONDS"
    )
    database_pool_size: int = Field(10, alias="DATABASE_POOL_SIZE")
    # "transaction" when DATABASE_URL reaches PostgreSQL through a pooler in transaction mode
    # (PgBouncer's pool_mode=transaction): no server-side prepared statement outlives its
    # transaction.
    database_pool_mode: Literal["session", "transaction"] = Field(
        "session", alias="DATABASE_POOL_MODE"
    )
    database_pre_ping: bool = Field(False, alias="DATABASE_PRE_PING")
    redis_url: str = Field("", alias="REDIS_URL")
    auto_migrate: bool | None = Field(None, alias="AUTO_MIGRATE")

    # --- HTTP -------------------------------------------------------------------------------
    host: str = Field("127.0.0.1", alias="HOST")
    port: int = Field(3000, alias="PORT")
    max_body_bytes: int = Field(1_048_576, alias="MAX_BODY_BYTES")
    max_upload_bytes: int = Field(16 * 1_048_576, alias="MAX_UPLOAD_BYTES")
    cors_origins: Annotated[list[str], NoDecode] = Field(default_factory=list, alias="CORS_ORIGINS")
    trusted_proxies: Annotated[list[str], NoDecode] = Field(
        default_factory=list, alias="TRUSTED_PROXIES"
    )

    # --- jobs, scheduler, metrics -----------------------------------------------------------
    # Default: in embedded mode the app process also runs the worker and the scheduler.
    worker_in_process: bool | None = Field(None, alias="WORKER_IN_PROCESS")
    scheduler_in_process: bool | None = Field(None, alias="SCHEDULER_IN_PROCESS")
    worker_processes: int = Field(1, ge=1, alias="WORKER_PROCESSES")
    worker_threads: int = Field(8, ge=1, alias="WORKER_THREADS")
    # A worker sharing a host with `serve` yields the CPU to it: webhooks must be acknowledged
    # at once (the provider retries slow ones), their processing can wait a moment.
    worker_nice: int = Field(10, ge=0, le=19, alias="WORKER_NICE")
    # A `botplatform worker` runs the bulk lanes (queues `broadcasts` and `statuses`) in a
    # child process of its own, niced WORKER_BULK_NICE more than itself, so the kernel gives
    # the message path the CPU first (worker/bulk.py). False: one process consumes every
    # queue. Embedded mode (the worker inside `serve`) always runs everything in one process.
    worker_bulk_apart: bool = Field(True, alias="WORKER_BULK_APART")
    worker_bulk_nice: int = Field(10, ge=0, le=19, alias="WORKER_BULK_NICE")
    # A message-path job that starts this late (ms after it was queued or due) raises the
    # short-lived "message path late" flag (Redis); broadcast chunks and status batches step
    # back while it is up (worker/pressure.py). 0: never raised.
    message_path_budget_ms: int = Field(50, ge=0, alias="MESSAGE_PATH_BUDGET_MS")
    queue_heartbeat_timeout_ms: int = Field(60_000, ge=1000, alias="QUEUE_HEARTBEAT_TIMEOUT_MS")
    # An idle consumer blocks (no polling) until an enqueue wakes it, at most this long between
    # check-ins (heartbeat, queue maintenance). Not a latency: a job wakes it at once, and a
    # stop ends the block. At most 4 s: a blocking read must end before the Redis client's 5 s
    # read timeout. Each check-in costs a round trip per queue: 3 s keeps an idle worker
    # process near 0.1% of a core.
    queue_idle_wait_ms: int = Field(3000, ge=50, le=4000, alias="QUEUE_IDLE_WAIT_MS")
    queue_maintenance_chance: int = Field(
        1000, ge=0, le=1_000_000, alias="QUEUE_MAINTENANCE_CHANCE"
    )
    # Of each worker process's threads, the share that may run broadcast jobs at once (at
    # least one): the rest stay free for the message path (docs/decisions.md, "Broadcasts").
    # A worker's bulk child runs no message path: there both bulk lanes use every thread.
    broadcast_worker_share: float = Field(0.25, gt=0, le=1, alias="BROADCAST_WORKER_SHARE")
    # The same for webhooks with delivery statuses only (a broadcast brings three per send):
    # on their own queue, `statuses`, so a customer's message never waits behind them.
    status_worker_share: float = Field(0.5, gt=0, le=1, alias="STATUS_WORKER_SHARE")
    # A webhook group that starts with few webhooks waits this long for more before it is
    # written (`channels/intake.py`): at a low steady rate, a round trip, a job and a worker
    # batch per few webhooks instead of per webhook, for that much more time before the 200
    # (docs/decisions.md, "Lingering groups and batches"). 0: never waits.
    webhook_group_linger_ms: int = Field(100, ge=0, le=200, alias="WEBHOOK_GROUP_LINGER_MS")
    # The same for an inbound batch in a worker that starts with few events: one unit of work
    # per few messages; only while its jobs come often enough for another to come meanwhile
    # (`kit/linger.GroupLinger.pays`). 0: never waits.
    worker_batch_linger_ms: int = Field(50, ge=0, le=200, alias="WORKER_BATCH_LINGER_MS")
    send_lease_seconds: int = Field(60, ge=1, alias="SEND_LEASE_SECONDS")
    sweep_after_seconds: int = Field(300, ge=0, alias="SWEEP_AFTER_SECONDS")
    # A send whose request may have left (the worker died, the answer was lost) waits this long
    # for the provider's status webhook, then ends `failed` with `delivery_unknown`.
    send_unknown_grace_seconds: int = Field(900, ge=1, alias="SEND_UNKNOWN_GRACE_SECONDS")
    automation_max_chain: int = Field(3, ge=1, le=20, alias="AUTOMATION_MAX_CHAIN")
    scheduler_lock_seconds: int = Field(10, ge=2, alias="SCHEDULER_LOCK_SECONDS")
    metrics_token: str = Field("", alias="METRICS_TOKEN")
    metrics_allow_ips: Annotated[list[str], NoDecode] = Field(
        default_factory=list, alias="METRICS_ALLOW_IPS"
    )
    worker_metrics_port: int = Field(0, ge=0, alias="WORKER_METRICS_PORT")

    # --- authentication ---------------------------------------------------------------------
    session_idle_seconds: int = Field(7 * 24 * 3600, alias="SESSION_IDLE_SECONDS")
    session_max_seconds: int = Field(30 * 24 * 3600, alias="SESSION_MAX_SECONDS")
    invitation_ttl_seconds: int = Field(7 * 24 * 3600, alias="INVITATION_TTL_SECONDS")
    password_min_length: int = Field(12, alias="PASSWORD_MIN_LENGTH")
    password_min_score: int = Field(2, ge=0, le=4, alias="PASSWORD_MIN_SCORE")
    argon2_time_cost: int = Field(3, alias="ARGON2_TIME_COST")
    argon2_memory_cost_kib: int = Field(65536, alias="ARGON2_MEMORY_COST_KIB")
    argon2_parallelism: int = Field(4, alias="ARGON2_PARALLELISM")

    # --- security ---------------------------------------------------------------------------
    encryption_keys: Annotated[list[str], NoDecode] = Field(
        default_factory=list, alias="ENCRYPTION_KEYS"
    )
    login_max_failures: int = Field(5, ge=1, alias="LOGIN_MAX_FAILURES")
    login_lockout_seconds: int = Field(60, ge=1, alias="LOGIN_LOCKOUT_SECONDS")
    login_lockout_max_seconds: int = Field(3600, ge=1, alias="LOGIN_LOCKOUT_MAX_SECONDS")
    password_reset_ttl_seconds: int = Field(3600, alias="PASSWORD_RESET_TTL_SECONDS")
    two_factor_challenge_seconds: int = Field(300, alias="TWO_FACTOR_CHALLENGE_SECONDS")
    rate_limit_enabled: bool = Field(True, alias="RATE_LIMIT_ENABLED")
    rate_limit_general: str = Field("100/minute", alias="RATE_LIMIT_GENERAL")
    rate_limit_auth: str = Field("5/minute", alias="RATE_LIMIT_AUTH")
    rate_limit_webhooks: str = Field("1000/minute", alias="RATE_LIMIT_WEBHOOKS")
    rate_limit_webchat_visitor: str = Field("30/minute", alias="RATE_LIMIT_WEBCHAT_VISITOR")
    rate_limit_webchat_ip: str = Field("300/minute", alias="RATE_LIMIT_WEBCHAT_IP")
    webchat_token_ttl_seconds: int = Field(30 * 86400, ge=60, alias="WEBCHAT_TOKEN_TTL_SECONDS")
    webchat_max_upload_bytes: int = Field(5 * 1_048_576, ge=1, alias="WEBCHAT_MAX_UPLOAD_BYTES")
    webchat_poll_seconds: float = Field(25.0, gt=0, le=55, alias="WEBCHAT_POLL_SECONDS")
    database_owner_url: str = Field("", alias="DATABASE_OWNER_URL")

    # --- first start ------------------------------------------------------------------------
    admin_email: str = Field("admin@example.com", alias="ADMIN_EMAIL")
    admin_password: str = Field("", alias="ADMIN_PASSWORD")

    # --- email (used by the job system) -----------------------------------------------------
    smtp_host: str = Field("", alias="SMTP_HOST")
    smtp_port: int = Field(587, alias="SMTP_PORT")
    smtp_user: str = Field("", alias="SMTP_USER")
    smtp_pass: str = Field("", alias="SMTP_PASS")
    smtp_from: str = Field("WhatsApp Bot Platform <noreply@localhost>", alias="SMTP_FROM")
    smtp_starttls: bool = Field(True, alias="SMTP_STARTTLS")
    smtp_ssl: bool = Field(False, alias="SMTP_SSL")
    smtp_timeout_seconds: float = Field(30, gt=0, alias="SMTP_TIMEOUT_SECONDS")
    # Marketing email (email broadcasts): emails per second handed to the SMTP server, shared
    # by every worker; and how long an unsubscribe link keeps working.
    broadcast_email_rate: int = Field(10, ge=1, le=10_000, alias="BROADCAST_EMAIL_RATE")
    email_unsubscribe_ttl_days: int = Field(3650, ge=1, alias="EMAIL_UNSUBSCRIBE_TTL_DAYS")

    # --- media storage ----------------------------------------------------------------------
    aws_access_key_id: str = Field("", alias="AWS_ACCESS_KEY_ID")
    aws_secret_access_key: str = Field("", alias="AWS_SECRET_ACCESS_KEY")
    aws_s3_bucket: str = Field("", alias="AWS_S3_BUCKET")
    aws_region: str = Field("us-east-1", alias="AWS_REGION")
    aws_endpoint_url: str = Field("", alias="AWS_ENDPOINT_URL")

    # --- backups ----------------------------------------------------------------------------
    # Set: backups are encrypted (AES-256-GCM, key derived from this); keep it apart from them.
    backup_encryption_key: str = Field("", alias="BACKUP_ENCRYPTION_KEY")
    # Cron (UTC) of the scheduled backup job; empty: no scheduled backups.
    backup_schedule: str = Field("", alias="BACKUP_SCHEDULE")
    backup_keep: int = Field(7, ge=1, alias="BACKUP_KEEP")
    # Where scheduled backups go: this S3 bucket (media's credentials) under BACKUP_S3_PREFIX,
    # else the folder BACKUP_DIR (empty: DATA_DIR/backups).
    backup_dir: Path | None = Field(None, alias="BACKUP_DIR")
    backup_s3_bucket: str = Field("", alias="BACKUP_S3_BUCKET")
    backup_s3_prefix: str = Field("backups/", alias="BACKUP_S3_PREFIX")

    # --- providers --------------------------------------------------------------------------
    whatsapp_api_key: str = Field("", alias="WHATSAPP_API_KEY")
    facebook_app_secret: str = Field("", alias="FACEBOOK_APP_SECRET")
    openai_api_key: str = Field("", alias="OPENAI_API_KEY")
    whatsapp_api_base_url: str = Field("https://graph.facebook.com", alias="WHATSAPP_API_BASE_URL")
    whatsapp_api_version: str = Field("v21.0", alias="WHATSAPP_API_VERSION")
    messenger_api_base_url: str = Field(
        "https://graph.facebook.com", alias="MESSENGER_API_BASE_URL"
    )
    messenger_api_version: str = Field("v21.0", alias="MESSENGER_API_VERSION")
    telegram_api_base_url: str = Field("https://api.telegram.org", alias="TELEGRAM_API_BASE_URL")
    slack_api_base_url: str = Field("https://slack.com/api", alias="SLACK_API_BASE_URL")
    # The platform's own Slack app, for "Add to Slack" installs (oauth.v2.access): all three
    # set, a channel is connected by installing the app instead of pasting its bot token.
    slack_client_id: str = Field("", alias="SLACK_CLIENT_ID")
    slack_client_secret: str = Field("", alias="SLACK_CLIENT_SECRET")
    slack_signing_secret: str = Field("", alias="SLACK_SIGNING_SECRET")
    slack_authorize_url: str = Field(
        "https://slack.com/oauth/v2/authorize", alias="SLACK_AUTHORIZE_URL"
    )
    openai_base_url: str = Field("https://api.openai.com/v1", alias="OPENAI_BASE_URL")

    # --- bots -------------------------------------------------------------------------------
    # Minutes without an agent's message after which a handed-off conversation goes back to
    # its bot (a bot may set its own); 0 = only resolving gives it back.
    bot_handoff_idle_minutes: int = Field(60, ge=0, alias="BOT_HANDOFF_IDLE_MINUTES")

    # --- AI (intents and generated answers) -------------------------------------------------
    openai_model: str = Field("gpt-4o-mini", alias="OPENAI_MODEL")
    openai_timeout_seconds: float = Field(15.0, gt=0, le=300, alias="OPENAI_TIMEOUT_SECONDS")
    openai_max_tokens: int = Field(400, ge=1, le=16_000, alias="OPENAI_MAX_TOKENS")
    openai_temperature: float = Field(0.2, ge=0, le=2, alias="OPENAI_TEMPERATURE")
    ai_fallback_message: str = Field(
        "Sorry, I can't answer that right now. A member of our team will get back to you.",
        alias="AI_FALLBACK_MESSAGE",
    )
    ai_knowledge_top_k: int = Field(3, ge=1, le=20, alias="AI_KNOWLEDGE_TOP_K")

    # --- monitoring -------------------------------------------------------------------------
    sentry_dsn: str = Field("", alias="SENTRY_DSN")
    sentry_traces_sample_rate: float = Field(0.0, ge=0, le=1, alias="SENTRY_TRACES_SAMPLE_RATE")

    # --- outbound calls to customer URLs (webhooks, bots' HTTP node) -------------------------
    # Host names or CIDR ranges that may be called even though they are private or loopback.
    outbound_allowlist: Annotated[list[str], NoDecode] = Field(
        default_factory=list, alias="OUTBOUND_ALLOWLIST"
    )

    # --- outgoing webhooks ------------------------------------------------------------------
    webhook_timeout_seconds: float = Field(10.0, gt=0, le=60, alias="WEBHOOK_TIMEOUT_SECONDS")
    webhook_disable_after_seconds: int = Field(
        3 * 24 * 3600, ge=60, alias="WEBHOOK_DISABLE_AFTER_SECONDS"
    )
    webhook_secret_overlap_seconds: int = Field(
        24 * 3600, ge=0, alias="WEBHOOK_SECRET_OVERLAP_SECONDS"
    )

    @field_validator(
        "cors_origins",
        "trusted_proxies",
        "encryption_keys",
        "outbound_allowlist",
        "metrics_allow_ips",
        mode="before",
    )
    @classmethod
    def _split_commas(cls, value: object) -> object:
        if isinstance(value, str):
            return [item.strip() for item in value.split(",") if item.strip()]
        return value

    @model_validator(mode="after")
    def _default_app_url(self) -> Settings:
        if not self.app_url:
            self.app_url = f"http://{public_host(self.host)}:{self.port}"
        return self

    @field_validator("backup_encryption_key")
    @classmethod
    def _strong_backup_key(cls, value: str) -> str:
        if value and len(value) < 32:
            raise ValueError("BACKUP_ENCRYPTION_KEY must be at least 32 characters")
        return value

    @field_validator("backup_schedule")
    @classmethod
    def _valid_cron(cls, value: str) -> str:
        from croniter import croniter

        if value and not croniter.is_valid(value):
            raise ValueError(f"BACKUP_SCHEDULE is not a valid cron expression: {value!r}")
        return value

    @property
    def backup_folder(self) -> Path:
        return self.backup_dir or self.data_dir / "backups"

    @field_validator("metrics_allow_ips")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        # A typo fails at start-up, not as a 500 on every scrape.
        for entry in value:
            ipaddress.ip_network(entry, strict=False)
        return value

    @property
    def fernet_keys(self) -> list[str]:
        """ENCRYPTION_KEYS (newest first), or one key derived from the signing key."""
        if self.encryption_keys:
            return self.encryption_keys
        from botplatform.kit.crypto import derive_fernet_key

        return [derive_fernet_key(self.signing_key)]

    @property
    def is_embedded(self) -> bool:
        """Embedded mode: SQLite and in-process everything, one process."""
        return not self.redis_url

    @cached_property
    def database_dsn(self) -> str:
        """The SQLAlchemy async URL for DATABASE_URL (plain postgres:// URLs are accepted)."""
        if not self.database_url:
            return f"sqlite+aiosqlite:///{self.data_dir / 'botplatform.db'}"
        return _async_dsn(self.database_url)

    @property
    def replica_dsn(self) -> str:
        """DATABASE_REPLICA_URL as a SQLAlchemy async URL ('' without a replica; PostgreSQL
        only: an embedded SQLite file has none)."""
        if not self.database_replica_url or self.is_sqlite:
            return ""
        return _async_dsn(self.database_replica_url)

    @property
    def owner_dsn(self) -> str:
        """Who migrates: DATABASE_OWNER_URL, else the app's own connection."""
        return _async_dsn(self.database_owner_url) if self.database_owner_url else self.database_dsn

    @property
    def is_sqlite(self) -> bool:
        return self.database_dsn.startswith("sqlite")

    @property
    def runs_worker_in_process(self) -> bool:
        return self.is_embedded if self.worker_in_process is None else self.worker_in_process

    @property
    def runs_scheduler_in_process(self) -> bool:
        if self.scheduler_in_process is None:
            return self.is_embedded
        return self.scheduler_in_process

    @property
    def should_auto_migrate(self) -> bool:
        # Several app replicas migrating at once is a footgun, so only the embedded SQLite
        # default migrates on start unless told otherwise.
        return self.is_sqlite if self.auto_migrate is None else self.auto_migrate

    @cached_property
    def signing_key(self) -> str:
        """SECRET_KEY, or in development a key generated once and kept under DATA_DIR."""
        if self.secret_key:
            return self.secret_key
        if self.env == "production":
            raise RuntimeError("SECRET_KEY must be set in production")
        key_file = self.data_dir / "secret_key"
        if key_file.exists():
            return key_file.read_text().strip()
        key_file.parent.mkdir(parents=True, exist_ok=True)
        key = secrets.token_urlsafe(48)
        key_file.write_text(key)
        key_file.chmod(0o600)
        return key


def public_host(host: str) -> str:
    """How a browser on this machine reaches a server bound to `host`."""
    if host in ("", "127.0.0.1", "0.0.0.0", "::", "::1"):  # noqa: S104 - compared, not bound
        return "localhost"
    return f"[{host}]" if ":" in host else host


def _async_dsn(url: str) -> str:
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+asyncpg://" + url[len(prefix) :]
    if url.startswith("sqlite:///"):
        return "sqlite+aiosqlite:///" + url[len("sqlite:///") :]
    return url


def load_settings(**overrides: object) -> Settings:
    return Settings(**overrides)  # type: ignore[arg-type]
