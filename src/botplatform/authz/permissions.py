"""The seven workspace roles and what each may do: the one table of SPEC §2, kept as data.

Change access here and nowhere else; `tests/authz/test_permissions.py` pins the table.
"""

from __future__ import annotations

from enum import StrEnum


class Permission(StrEnum):
    WORKSPACE_READ = "workspace:read"
    WORKSPACE_UPDATE = "workspace:update"
    WORKSPACE_DELETE = "workspace:delete"
    MEMBERS_READ = "members:read"
    MEMBERS_MANAGE = "members:manage"
    BILLING_READ = "billing:read"
    BILLING_MANAGE = "billing:manage"
    API_KEYS_MANAGE = "api_keys:manage"
    AUDIT_READ = "audit:read"
    CHANNELS_READ = "channels:read"
    CHANNELS_MANAGE = "channels:manage"
    CONVERSATIONS_READ = "conversations:read"
    CONVERSATIONS_REPLY = "conversations:reply"
    CONVERSATIONS_MANAGE = "conversations:manage"
    CONTACTS_READ = "contacts:read"
    CONTACTS_MANAGE = "contacts:manage"
    CONTACTS_EXPORT = "contacts:export"
    PRIVACY_ERASE = "privacy:erase"
    BOTS_READ = "bots:read"
    BOTS_MANAGE = "bots:manage"
    AUTOMATIONS_MANAGE = "automations:manage"
    TEMPLATES_READ = "templates:read"
    TEMPLATES_MANAGE = "templates:manage"
    BROADCASTS_READ = "broadcasts:read"
    BROADCASTS_SEND = "broadcasts:send"
    WEBHOOKS_READ = "webhooks:read"
    WEBHOOKS_MANAGE = "webhooks:manage"
    ANALYTICS_READ = "analytics:read"


class Role(StrEnum):
    """From most to least power; the order is the rank used for "may assign this role"."""

    OWNER = "owner"
    ADMIN = "admin"
    DEVELOPER = "developer"
    MANAGER = "manager"
    AGENT = "agent"
    ANALYST = "analyst"
    VIEWER = "viewer"

    @property
    def rank(self) -> int:
        """0 for owner, 6 for viewer: lower outranks higher."""
        return list(Role).index(self)

    def outranks_or_equals(self, other: Role) -> bool:
        return self.rank <= other.rank


P = Permission

_EVERYONE = {P.WORKSPACE_READ, P.MEMBERS_READ}

_VIEWER = _EVERYONE | {
    P.CONVERSATIONS_READ,
    P.CONTACTS_READ,
    P.CHANNELS_READ,
    P.BOTS_READ,
    P.TEMPLATES_READ,
    P.BROADCASTS_READ,
    P.ANALYTICS_READ,
}

_ANALYST = _VIEWER | {P.CONTACTS_EXPORT, P.BILLING_READ}

# An agent works conversations of the channels it is assigned to (enforced per channel by
# the conversation domain); it has no access to analytics or configuration.
_AGENT = _EVERYONE | {
    P.CONVERSATIONS_READ,
    P.CONVERSATIONS_REPLY,
    P.CONTACTS_READ,
    P.CONTACTS_MANAGE,
    P.CHANNELS_READ,
    P.TEMPLATES_READ,
}

_MANAGER = (
    _VIEWER
    | _AGENT
    | {
        P.CONVERSATIONS_MANAGE,
        P.CONTACTS_EXPORT,
        P.BROADCASTS_SEND,
        # Who sends broadcasts writes the templates they use (docs/decisions.md).
        P.TEMPLATES_MANAGE,
        P.AUTOMATIONS_MANAGE,
        P.BILLING_READ,
    }
)

_DEVELOPER = _VIEWER | {
    P.CHANNELS_MANAGE,
    P.BOTS_MANAGE,
    P.AUTOMATIONS_MANAGE,
    P.TEMPLATES_MANAGE,
    P.WEBHOOKS_READ,
    P.WEBHOOKS_MANAGE,
    P.API_KEYS_MANAGE,
    P.BILLING_READ,
}

_OWNER = set(Permission)
# Billing and deleting the workspace stay with owners.
_ADMIN = _OWNER - {P.BILLING_MANAGE, P.WORKSPACE_DELETE}

ROLE_PERMISSIONS: dict[Role, frozenset[Permission]] = {
    Role.OWNER: frozenset(_OWNER),
    Role.ADMIN: frozenset(_ADMIN),
    Role.DEVELOPER: frozenset(_DEVELOPER),
    Role.MANAGER: frozenset(_MANAGER),
    Role.AGENT: frozenset(_AGENT),
    Role.ANALYST: frozenset(_ANALYST),
    Role.VIEWER: frozenset(_VIEWER),
}


def permissions_of(role: Role | str) -> frozenset[Permission]:
    return ROLE_PERMISSIONS[Role(role)]


# Roles limited to the channels they are assigned to (SPEC §2: "An agent sees only
# conversations of channels it is assigned to"); every other role sees every channel.
CHANNEL_SCOPED_ROLES: frozenset[Role] = frozenset({Role.AGENT})
