"""The Instagram Direct adapter: the Messenger Platform's Send API on the Page (or
Instagram professional account) linked to the Instagram account; quick replies instead of
button templates, and `name` instead of first and last names in profiles."""

from __future__ import annotations

from typing import ClassVar

from botplatform.channels.messenger.adapter import MessengerAdapter


class InstagramAdapter(MessengerAdapter):
    provider: ClassVar[str] = "instagram"
    instagram: ClassVar[bool] = True
    profile_fields: ClassVar[str] = "name,profile_pic"
