"""The plans a new installation starts with (the migration seeds the same values; a test
keeps the two in step). A superadmin edits quotas later; None means unlimited."""

from __future__ import annotations

from typing import Any

QUOTA_FIELDS = (
    "messages_per_month",
    "channels",
    "members",
    "bots",
    "broadcasts_per_month",
    "recipients_per_broadcast",
    "recipients_per_month",
    "ai_tokens_per_month",
    "api_requests_per_minute",
    "retention_days",
)

DEFAULT_PLANS: tuple[dict[str, Any], ...] = (
    {
        "name": "starter",
        "position": 0,
        "messages_per_month": 10_000,
        "channels": 3,
        "members": 10,
        "bots": 5,
        "broadcasts_per_month": 20,
        "recipients_per_broadcast": 1_000,
        "recipients_per_month": 5_000,
        "ai_tokens_per_month": 200_000,
        "api_requests_per_minute": 600,
        "retention_days": 90,
    },
    {
        "name": "pro",
        "position": 1,
        "messages_per_month": 100_000,
        "channels": 10,
        "members": 50,
        "bots": 25,
        "broadcasts_per_month": 200,
        "recipients_per_broadcast": 25_000,
        "recipients_per_month": 100_000,
        "ai_tokens_per_month": 2_000_000,
        "api_requests_per_minute": 3_000,
        "retention_days": 365,
    },
    {
        "name": "enterprise",
        "position": 2,
        "messages_per_month": 1_000_000,
        "channels": 100,
        "members": 500,
        "bots": 200,
        "broadcasts_per_month": 2_000,
        "recipients_per_broadcast": 250_000,
        "recipients_per_month": 1_000_000,
        "ai_tokens_per_month": 20_000_000,
        "api_requests_per_minute": 20_000,
        "retention_days": None,
    },
)
