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


def password_reset(link: str, minutes: int) -> tuple[str, str, str]:
    subject = "Reset your password"
    text = (
        "Someone (hopefully you) asked to reset the password of your account.\n\n"
        f"Choose a new password:\n{link}\n\n"
        f"The link works once, for {minutes} minutes. If you did not ask, ignore this email:"
        " your password stays as it is.\n"
    )
    html = (
        "<p>Someone (hopefully you) asked to reset the password of your account.</p>"
        f'<p><a href="{escape(link, quote=True)}">Choose a new password</a></p>'
        f"<p>The link works once, for {minutes} minutes. If you did not ask, ignore this "
        "email: your password stays as it is.</p>"
    )
    return subject, text, html


def two_factor_changed(enabled: bool) -> tuple[str, str, str]:
    state = "enabled" if enabled else "disabled"
    subject = f"Two-factor authentication {state}"
    text = (
        f"Two-factor authentication was {state} on your account.\n\n"
        "If this was not you, reset your password at once and contact your administrator.\n"
    )
    return subject, text, f"<p>{escape(text).replace(chr(10), '<br>')}</p>"


def webhook_endpoint_disabled(
    workspace_name: str, url: str, reason: str, link: str
) -> tuple[str, str, str]:
    subject = f"Webhook endpoint disabled in {workspace_name}"
    text = (
        f"The webhook endpoint {url} of {workspace_name} was disabled: {reason}.\n\n"
        "No more events are sent to it. Fix the endpoint, then enable it again and replay the "
        f"deliveries it missed:\n{link}\n"
    )
    html = (
        f"<p>The webhook endpoint <code>{escape(url)}</code> of "
        f"<strong>{escape(workspace_name)}</strong> was disabled: {escape(reason)}.</p>"
        "<p>No more events are sent to it. Fix the endpoint, then enable it again and replay "
        f'the deliveries it missed: <a href="{escape(link, quote=True)}">webhook endpoints</a>'
        "</p>"
    )
    return subject, text, html


def unseen_chat_replies(workspace_name: str, replies: list[str]) -> tuple[str, str, str]:
    """A website chat visitor who went away before reading the answers they got."""
    subject = f"{workspace_name} replied to your chat"
    text = (
        f"{workspace_name} answered you in the chat on their website:\n\n"
        + "\n\n".join(f"> {reply}" for reply in replies)
        + "\n\nOpen the chat on their site again to continue the conversation.\n"
    )
    html = (
        f"<p><strong>{escape(workspace_name)}</strong> answered you in the chat on their "
        "website:</p>"
        + "".join(f"<blockquote>{escape(reply)}</blockquote>" for reply in replies)
        + "<p>Open the chat on their site again to continue the conversation.</p>"
    )
    return subject, text, html
