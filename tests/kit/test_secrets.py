"""Secrets at rest: ciphertext in the database, rotation to a new key, never in responses
or logs."""

from __future__ import annotations

import logging
from pathlib import Path

import httpx
from cryptography.fernet import Fernet
from sqlalchemy import Text, select, type_coerce
from typer.testing import CliRunner

from botplatform.cli import app as cli
from botplatform.config import Settings
from botplatform.kit import crypto
from botplatform.models import User
from botplatform.runtime import Runtime
from tests.auth.test_two_factor import enable_2fa
from tests.conftest import STRONG_PASSWORD, Api, base_settings


async def _raw_secret(runtime: Runtime, user_id: object) -> str:
    async with runtime.db.unit_of_work(write=False, system=True) as db:
        raw = type_coerce(User.__table__.c.totp_secret, Text)
        return str((await db.execute(select(raw).where(User.__table__.c.id == user_id))).scalar())


async def test_totp_secret_is_encrypted_and_never_echoed(
    client: httpx.AsyncClient, api: Api, runtime: Runtime, settings: Settings
) -> None:
    account = await api.register()
    secret, recovery = await enable_2fa(client, account)
    raw = await _raw_secret(runtime, account.user_id)
    assert secret not in raw and raw.startswith("gAAAA")  # a Fernet token
    assert crypto.decrypt(raw) == secret
    me = await client.get("/api/v1/me", headers=account.headers)
    assert secret not in me.text

    # Nothing secret reaches the logs: not the TOTP secret, recovery codes, passwords,
    # bearer tokens or API keys.
    ws = await api.create_workspace(account)
    key = (await api.create_key(account, ws, ["workspace:read"]))["key"]
    await client.get(f"/api/v1/workspaces/{ws}", headers={"Authorization": f"Bearer {key}"})
    for handler in logging.getLogger().handlers:
        handler.flush()
    logs = "".join(path.read_text() for path in settings.log_dir.glob("*.log"))
    for value in (secret, *recovery, STRONG_PASSWORD, account.token, key):
        assert value not in logs


def test_mask_shows_only_a_hint() -> None:
    assert crypto.mask("EAAG-very-secret-token-1234") == "••••••••1234"
    assert crypto.mask("short") == "••••••••"
    assert crypto.mask(None) is None


async def test_keys_rotate_reencrypts_under_the_newest_key(
    client: httpx.AsyncClient, api: Api, runtime: Runtime, settings: Settings, tmp_path: Path
) -> None:
    account = await api.register()
    secret, _ = await enable_2fa(client, account)
    before = await _raw_secret(runtime, account.user_id)
    old_key = settings.fernet_keys[0]
    new_key = Fernet.generate_key().decode()
    env = {
        "DATABASE_URL": settings.database_url,
        "DATABASE_OWNER_URL": settings.database_owner_url,
        "REDIS_URL": settings.redis_url,
        "SECRET_KEY": settings.signing_key,
        "ENCRYPTION_KEYS": f"{new_key},{old_key}",
        "LOG_DIR": str(tmp_path),
        "LOG_TO_STDOUT": "false",
    }
    import anyio.to_thread

    result = await anyio.to_thread.run_sync(
        lambda: CliRunner().invoke(cli, ["keys", "rotate"], env=env)
    )
    assert result.exit_code == 0, result.output
    assert "re-encrypted 1 secret" in result.output
    after = await _raw_secret(runtime, account.user_id)
    assert after != before
    assert Fernet(new_key.encode()).decrypt(after.encode()).decode() == secret
    crypto.configure(settings.fernet_keys)  # the CLI configured the process-wide keyring


def test_without_keys_one_is_derived_and_rotation_needs_the_old(tmp_path: Path) -> None:
    settings = base_settings(tmp_path)
    assert settings.fernet_keys == [crypto.derive_fernet_key(settings.signing_key)]
    crypto.configure([Fernet.generate_key().decode()])
    token = crypto.encrypt("s3cret")
    crypto.configure([Fernet.generate_key().decode()])
    try:
        crypto.decrypt(token)
        raise AssertionError("an unknown key must not decrypt")
    except ValueError:
        pass
    finally:
        crypto.configure(settings.fernet_keys)
