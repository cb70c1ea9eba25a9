from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, EmailStr, Field, StringConstraints

from botplatform.kit.schemas import InputModel

ClientId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{8,64}$")]
VisitorText = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=4096)
]


class SessionIn(InputModel):
    token: Annotated[str, StringConstraints(max_length=2000)] | None = Field(
        None, description="The visitor token this browser holds, to continue its conversation"
    )
    user_id: Annotated[str, StringConstraints(min_length=1, max_length=64)] | None = Field(
        None, description="A logged-in user of the site, vouched for by user_hash"
    )
    user_hash: Annotated[str, StringConstraints(max_length=128)] | None = Field(
        None, description="Hex HMAC-SHA256 of user_id with the channel's identity secret"
    )


class SessionOut(BaseModel):
    token: str = Field(description="Send as `Authorization: Bearer …` (and in the socket hello)")
    expires_at: datetime
    visitor_id: str
    widget: dict[str, Any] = Field(description="What the widget shows: name, colours, hours")


class ReplyChoice(InputModel):
    id: Annotated[str, StringConstraints(min_length=1, max_length=256)]
    title: Annotated[str, StringConstraints(min_length=1, max_length=100)]


class VisitorMessageIn(InputModel):
    client_id: ClientId = Field(
        description="The widget's id for this message: sent twice, kept once"
    )
    text: VisitorText | None = None
    reply: ReplyChoice | None = Field(None, description="A tapped button or list row")
    name: Annotated[str, StringConstraints(strip_whitespace=True, max_length=100)] | None = None


class ReadIn(InputModel):
    ids: list[Annotated[str, StringConstraints(max_length=200)]] = Field(max_length=100)


class ProfileIn(InputModel):
    name: Annotated[str, StringConstraints(strip_whitespace=True, max_length=100)] | None = None
    email: EmailStr | None = Field(None, description="Where a reply goes while the visitor is away")


class Accepted(BaseModel):
    client_id: str
    duplicate: bool = Field(description="Already received under this client_id")
