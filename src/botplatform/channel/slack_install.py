"""Connecting a Slack app: its bot token is checked with auth.test, which names the Slack
workspace (team) and the app's bot user; both are kept on the channel (the bot user tells a
mention and the app's own messages apart, the team which installation an event is for)."""

from __future__ import annotations

import secrets
import uuid
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncSession

from botplatform.channel.schemas import SlackChannelCreate
from botplatform.channels.base import ProviderSendError
from botplatform.channels.slack.adapter import auth_test
from botplatform.config import Settings
from botplatform.kit.errors import BadGateway, Conflict, Unprocessable
from botplatform.kit.scoping import scoped
from botplatform.models import Channel


async def check_token(http: httpx.AsyncClient, settings: Settings, token: str) -> dict[str, Any]:
    """auth.test's answer for `token`; 422 when Slack refuses it, 502 when Slack is away."""
    try:
        return await auth_test(http, settings, token)
    except ProviderSendError as exc:
        if exc.retryable:
            raise BadGateway(
                "Slack could not be reached to check the bot token; try again.",
                code="provider_unreachable",
                details={"error": exc.code},
            ) from exc
        raise Unprocessable(
            f"Slack refused the bot token ({exc.code}).",
            code="invalid_slack_token",
            details={"error": exc.code},
        ) from exc


async def create_channel(
    db: AsyncSession,
    workspace_id: uuid.UUID,
    installed: dict[str, Any],
    bot_token: str,
    signing_secret: str,
    data: SlackChannelCreate,
) -> Channel:
    team_id = str(installed.get("team_id") or "")
    for channel in (await db.execute(scoped(Channel, workspace_id))).scalars():
        if channel.provider == "slack" and channel.config.get("team_id") == team_id:
            raise Conflict("This Slack workspace is already connected.", code="channel_exists")
    channel = Channel(
        workspace_id=workspace_id,
        provider="slack",
        name=data.name or str(installed.get("team") or "Slack"),
        status="active",
        config={
            "team_id": team_id,
            "team_name": installed.get("team"),
            "bot_user_id": installed.get("user_id"),
            "bot_id": installed.get("bot_id"),
            "auto_reply": data.auto_reply or None,
        },
        access_token=bot_token,
        app_secret=signing_secret,
        verify_token=secrets.token_urlsafe(24),  # unused by Slack; the column wants one
        send_rate_per_second=data.send_rate_per_second,
    )
    db.add(channel)
    await db.flush()
    return channel
