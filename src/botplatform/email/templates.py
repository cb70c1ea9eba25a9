"""The text of transactional emails. Values are inserted into plain text; the HTML part
escapes them (names and workspace names are user input)."""

from __future__ import annotations

from html import escape


def invitation(workspace_name: str, inviter: str, role: str, link: str) -> tuple[str, str, str]:
    subject = f"You're invited to {workspace_name}"
    text = (
        f"{inviter} invited you to join {workspace_name} as {role}.\n\n"
        f"Accept the invitation:\n{link}\n\n"
        "The link works once and expires. If you did not expect this, ignore this email.\n"
    )
    html = (
        f"<p>{escape(inviter)} invited you to join <strong>{escape(workspace_name)}</strong> "
        f"as {escape(role)}.</p>"
        f'<p><a href="{escape(link, quote=True)}">Accept the invitation</a></p>'
        "<p>The link works once and expires. If you did not expect this, ignore this email.</p>"
    )
    return subject, text, html
