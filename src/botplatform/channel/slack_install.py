"""Connecting a Slack app, two ways. With a pasted bot token: checked with auth.test, which
names the Slack workspace (team) and the app's bot user. With "Add to Slack" (the platform's
own app, SLACK_CLIENT_ID/SECRET/SIGNING_SECRET): the browser goes to Slack's authorize page
with a signed `state` naming the workspace and the member who asked, and comes back to
`/oauth/slack/callback` with a code that oauth.v2.access trades for the bot token. Either way
the team and bot user are kept on the channel (the bot user tells a mention and the app's own
messages apart, the team which installation an event is for)."""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import httpx
from sqlalchemy.ext.asyncio import AsyncSession

from botplatform.authz.permissions import Permission, permissions_of
from botplatform.channels.base import ProviderSendError
from botplatform.channels.slack.adapter import BOT_SCOPES, auth_test, oauth_access
from botplatform.config import Settings
from botplatform.kit.errors import BadGateway, BadRequest, Conflict, NotAvailable, Unprocessable
from botplatform.kit.scoping import enter_workspace, scoped
from botplatform.kit.tokens import InvalidToken, LinkSigner
from botplatform.models import Channel, Membership
from botplatform.usage import service as usage

STATE_PURPOSE = "slack-install"
#: How long an "Add to Slack" link stays good.
STATE_MAX_AGE_SECONDS = 600
CALLBACK_PATH = "/oauth/slack/callback"


@dataclass(frozen=True)
class Installed:
    """What Slack says of an installation."""

    team_id: str
    team_name: str | None
    bot_user_id: str | None
    bot_id: str | None


async def _slack(step: str, call: Any) -> dict[str, Any]:
    """A Web API call of the connection: 422 when Slack refuses, 502 when it is away."""
    try:
        answer: dict[str, Any] = await call
    except ProviderSendError as exc:
        if exc.retryable:
            raise BadGateway(
                f"Slack could not be reached to {step}; try again.",
                code="provider_unreachable",
                details={"error": exc.code},
            ) from exc
        token = step == "check the bot token"
        what = "the bot token" if token else "the install"
        raise Unprocessable(
            f"Slack refused {what} ({exc.code}).",
            code="invalid_slack_token" if token else "slack_install_failed",
            details={"error": exc.code},
        ) from exc
    return answer


async def check_token(http: httpx.AsyncClient, settings: Settings, token: str) -> Installed:
    """Who the bot token belongs to (auth.test)."""
    answer = await _slack("check the bot token", auth_test(http, settings, token))
    return Installed(
        team_id=str(answer.get("team_id") or ""),
        team_name=answer.get("team"),
        bot_user_id=answer.get("user_id"),
        bot_id=answer.get("bot_id"),
    )


async def create_channel(
    db: AsyncSession,
    workspace_id: uuid.UUID,
    installed: Installed,
    *,
    bot_token: str,
    signing_secret: str | None,
    name: str | None = None,
    auto_reply: str | None = None,
    send_rate_per_second: int = 20,
) -> Channel:
    """The channel of a Slack installation; `signing_secret` None: the platform app's."""
    for channel in (await db.execute(scoped(Channel, workspace_id))).scalars():
        if channel.provider == "slack" and channel.config.get("team_id") == installed.team_id:
            raise Conflict("This Slack workspace is already connected.", code="channel_exists")
    channel = Channel(
        workspace_id=workspace_id,
        provider="slack",
        name=name or installed.team_name or "Slack",
        status="active",
        config={
            "team_id": installed.team_id,
            "team_name": installed.team_name,
            "bot_user_id": installed.bot_user_id,
            "bot_id": installed.bot_id,
            "auto_reply": auto_reply or None,
        },
        access_token=bot_token,
        app_secret=signing_secret,
        verify_token=secrets.token_urlsafe(24),  # unused by Slack; the column wants one
        send_rate_per_second=send_rate_per_second,
    )
    db.add(channel)
    await db.flush()
    return channel


# -- "Add to Slack" --------------------------------------------------------------------------


def _ready(settings: Settings) -> None:
    if not (settings.slack_client_id and settings.slack_client_secret):
        raise NotAvailable(
            "Add to Slack needs the platform's Slack app: set SLACK_CLIENT_ID, "
            "SLACK_CLIENT_SECRET and SLACK_SIGNING_SECRET, or connect with a bot token.",
            code="slack_oauth_not_configured",
        )
    if not settings.slack_signing_secret:
        raise NotAvailable(
            "Add to Slack needs SLACK_SIGNING_SECRET, the platform app's signing secret.",
            code="slack_oauth_not_configured",
        )


def redirect_uri(settings: Settings) -> str:
    return f"{settings.app_url.rstrip('/')}{CALLBACK_PATH}"


def install_url(settings: Settings, workspace_id: uuid.UUID, user_id: uuid.UUID) -> str:
    """Slack's authorize page for the platform's app, coming back to this workspace."""
    _ready(settings)
    state = LinkSigner(settings.secret_key, STATE_PURPOSE).sign(
        {"ws": str(workspace_id), "user": str(user_id), "n": secrets.token_urlsafe(8)}
    )
    query = {
        "client_id": settings.slack_client_id,
        "scope": ",".join(BOT_SCOPES),
        "redirect_uri": redirect_uri(settings),
        "state": state,
    }
    return f"{settings.slack_authorize_url}?{urlencode(query)}"


def read_state(settings: Settings, state: str) -> tuple[uuid.UUID, uuid.UUID]:
    try:
        payload = LinkSigner(settings.secret_key, STATE_PURPOSE).load(state, STATE_MAX_AGE_SECONDS)
        return uuid.UUID(str(payload["ws"])), uuid.UUID(str(payload["user"]))
    except (InvalidToken, KeyError, ValueError) as exc:
        raise BadRequest(
            "This Add to Slack link is invalid or expired; start again from the channels page.",
            code="invalid_state",
        ) from exc


async def _may_connect(db: AsyncSession, workspace_id: uuid.UUID, user_id: uuid.UUID) -> None:
    """The member who started the install may still connect channels here."""
    membership = (
        await db.execute(scoped(Membership, workspace_id).where(Membership.user_id == user_id))
    ).scalar_one_or_none()
    if membership is None or Permission.CHANNELS_MANAGE not in permissions_of(membership.role):
        raise BadRequest("You can no longer connect channels here.", code="invalid_state")


async def finish_install(
    db: AsyncSession,
    http: httpx.AsyncClient,
    settings: Settings,
    workspace_id: uuid.UUID,
    user_id: uuid.UUID,
    code: str,
) -> Channel:
    """The code Slack came back with → the bot token (oauth.v2.access) → the channel."""
    _ready(settings)
    await enter_workspace(db, workspace_id)  # a public route: the state names the tenant
    await _may_connect(db, workspace_id, user_id)
    await usage.ensure_room(db, workspace_id, "channels")
    answer = await _slack(
        "install the app", oauth_access(http, settings, code, redirect_uri(settings))
    )
    token = str(answer.get("access_token") or "")
    team: dict[str, Any] = answer["team"] if isinstance(answer.get("team"), dict) else {}
    if not token.startswith("xoxb-") or not team.get("id"):
        raise Unprocessable("Slack gave no bot token.", code="slack_install_failed")
    installed = await check_token(http, settings, token)  # the bot_id, which oauth omits
    return await create_channel(db, workspace_id, installed, bot_token=token, signing_secret=None)
