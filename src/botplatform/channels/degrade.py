"""A richer message made fit for a poorer channel, in one place: buttons and lists become
numbered text (the bot engine accepts "2" as the second option), media becomes its link."""

from __future__ import annotations

from botplatform.channels.messages import Capability
from botplatform.message.schemas import MessageBody

MEDIA_KINDS = frozenset({"image", "video", "audio", "document", "sticker"})
TEXT_LIMIT = 4096


def _numbered(body: MessageBody) -> MessageBody:
    titles = [b.title for b in body.buttons] or [
        row.title + (f" — {row.description}" if row.description else "")
        for section in body.sections
        for row in section.rows
    ]
    lines = [body.header] if body.header else []
    lines.append(body.text or "")
    lines.append("")
    lines.extend(f"{index}. {title}" for index, title in enumerate(titles, start=1))
    if body.footer:
        lines += ["", body.footer]
    lines += ["", "Reply with the number of your choice."]
    return MessageBody(type="text", text="\n".join(lines)[:TEXT_LIMIT], reply_to=body.reply_to)


def degrade(body: MessageBody, capabilities: frozenset[Capability]) -> MessageBody:
    if body.type == "interactive":
        needs = Capability.LISTS if body.sections else Capability.BUTTONS
        return body if needs in capabilities else _numbered(body)
    if body.type in MEDIA_KINDS and Capability.MEDIA not in capabilities and body.media:
        parts = [body.media.caption or "", body.media.link or ""]
        text = "\n".join(p for p in parts if p) or "(media not supported on this channel)"
        return MessageBody(type="text", text=text[:TEXT_LIMIT], reply_to=body.reply_to)
    return body
