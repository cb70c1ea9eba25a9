from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, StringConstraints, model_validator

from botplatform.kit.schemas import InputModel
from botplatform.template.variables import placeholders

Category = Literal["MARKETING", "UTILITY", "AUTHENTICATION"]
Status = Literal["APPROVED", "PENDING", "REJECTED", "PAUSED", "DISABLED"]
ShortText = Annotated[str, StringConstraints(min_length=1, max_length=60)]


class HeaderIn(InputModel):
    type: Literal["HEADER"]
    format: Literal["TEXT", "IMAGE", "VIDEO", "DOCUMENT", "LOCATION"] = "TEXT"
    text: ShortText | None = None
    example: dict[str, Any] | None = Field(
        None,
        description="`header_text` (one value) or `header_text_named_params` for a variable; "
        "`header_handle` (a media sample handle) for IMAGE, VIDEO, DOCUMENT",
    )


class BodyIn(InputModel):
    type: Literal["BODY"]
    text: Annotated[str, StringConstraints(min_length=1, max_length=1024)]
    example: dict[str, Any] | None = Field(
        None,
        description='`body_text`: [["value of {{1}}", …]], or `body_text_named_params`: '
        '[{"param_name", "example"}]; required when the text has variables',
    )


class FooterIn(InputModel):
    type: Literal["FOOTER"]
    text: ShortText


class ButtonIn(InputModel):
    type: Literal["QUICK_REPLY", "URL", "PHONE_NUMBER", "COPY_CODE"]
    text: Annotated[str, StringConstraints(min_length=1, max_length=25)] | None = None
    url: Annotated[str, StringConstraints(pattern=r"^https?://", max_length=2000)] | None = None
    phone_number: Annotated[str, StringConstraints(pattern=r"^\+?[0-9]{5,20}$")] | None = None
    example: str | list[str] | None = Field(
        None, description="URL button with {{1}}: a full sample URL; COPY_CODE: a sample code"
    )

    @model_validator(mode="after")
    def _fields(self) -> ButtonIn:
        if self.type != "COPY_CODE" and not self.text:
            raise ValueError(f"a {self.type} button needs `text`")
        if self.type == "URL" and not self.url:
            raise ValueError("a URL button needs `url`")
        if self.type == "URL" and placeholders(self.url) and not self.example:
            raise ValueError("a URL with a variable needs an `example` URL")
        if self.type == "PHONE_NUMBER" and not self.phone_number:
            raise ValueError("a PHONE_NUMBER button needs `phone_number`")
        if self.type == "COPY_CODE" and not self.example:
            raise ValueError("a COPY_CODE button needs an `example` code")
        return self


class ButtonsIn(InputModel):
    type: Literal["BUTTONS"]
    buttons: list[ButtonIn] = Field(min_length=1, max_length=10)


Component = Annotated[HeaderIn | BodyIn | FooterIn | ButtonsIn, Field(discriminator="type")]


def _check_variables(names: list[str], example: dict[str, Any] | None, where: str) -> bool:
    """Whether the names are named parameters; raises when they are mixed, not numbered
    1..n, or lack their examples (Meta refuses a variable without one)."""
    if not names:
        return False
    example = example or {}
    named = not all(name.isdigit() for name in names)
    if named:
        if any(name.isdigit() or not name.islower() for name in names):
            raise ValueError(f"{where}: use {{{{1}}}}, {{{{2}}}}… or lower-case names, not both")
        given = example.get(f"{where}_text_named_params") or []
        if sorted(str(p.get("param_name")) for p in given if isinstance(p, dict)) != sorted(names):
            raise ValueError(f"{where}: example.{where}_text_named_params must name {names}")
        return True
    if sorted(int(name) for name in names) != list(range(1, len(names) + 1)):
        raise ValueError(f"{where}: variables must be numbered {{{{1}}}} to {{{{{len(names)}}}}}")
    rows = example.get(f"{where}_text")
    sample = rows[0] if where == "body" and isinstance(rows, list) and rows else rows
    if not isinstance(sample, list) or len(sample) != len(names):
        shape = '[["…", …]]' if where == "body" else '["…"]'
        raise ValueError(f"{where}: example.{where}_text must give {len(names)} value(s): {shape}")
    return False


class TemplateCreate(InputModel):
    channel_id: uuid.UUID
    name: Annotated[str, StringConstraints(pattern=r"^[a-z0-9_]{1,512}$")] = Field(
        description="Lower-case letters, digits and underscores"
    )
    language: Annotated[str, StringConstraints(pattern=r"^[a-z]{2,3}(_[A-Z]{2})?$")] = Field(
        description="e.g. en_US, pt_BR, es"
    )
    category: Category
    components: list[Component] = Field(min_length=1, max_length=4)

    @model_validator(mode="after")
    def _shape(self) -> TemplateCreate:
        kinds = [component.type for component in self.components]
        if kinds.count("BODY") != 1:
            raise ValueError("a template has exactly one BODY")
        for kind in ("HEADER", "FOOTER", "BUTTONS"):
            if kinds.count(kind) > 1:
                raise ValueError(f"a template has at most one {kind}")
        for component in self.components:
            if isinstance(component, HeaderIn):
                self._header(component)
            elif isinstance(component, BodyIn):
                _check_variables(placeholders(component.text), component.example, "body")
        return self

    @staticmethod
    def _header(header: HeaderIn) -> bool:
        if header.format == "TEXT":
            if not header.text:
                raise ValueError("a TEXT header needs `text`")
            names = placeholders(header.text)
            if len(names) > 1:
                raise ValueError("a TEXT header has at most one variable")
            return _check_variables(names, header.example, "header")
        if header.format != "LOCATION" and not (header.example or {}).get("header_handle"):
            raise ValueError(f"a {header.format} header needs example.header_handle (a sample)")
        return False

    @property
    def parameter_format(self) -> str:
        texts = [c.text for c in self.components if isinstance(c, HeaderIn | BodyIn)]
        names = [name for text in texts for name in placeholders(text)]
        return "NAMED" if any(not name.isdigit() for name in names) else "POSITIONAL"

    def graph_payload(self) -> dict[str, Any]:
        """The body of `POST /{waba_id}/message_templates`."""
        return {
            "name": self.name,
            "language": self.language,
            "category": self.category,
            "parameter_format": self.parameter_format,
            "components": [c.model_dump(exclude_none=True) for c in self.components],
        }


class TemplateOut(BaseModel):
    id: uuid.UUID
    channel_id: uuid.UUID
    provider_template_id: str | None
    name: str
    language: str
    category: str
    status: str = Field(description="APPROVED, PENDING, REJECTED, PAUSED, DISABLED, …")
    rejected_reason: str | None
    quality_score: str | None = Field(description="GREEN, YELLOW, RED or UNKNOWN")
    parameter_format: str
    components: list[dict[str, Any]]
    variables: dict[str, Any] = Field(description="The placeholders of each component")
    status_updated_at: datetime | None
    synced_at: datetime | None
    created_at: datetime
    updated_at: datetime


class TemplateParams(InputModel):
    header: list[Any] | dict[str, Any] | None = None
    body: list[Any] | dict[str, Any] | None = None
    buttons: dict[str, list[Any] | dict[str, Any]] | None = None


class PreviewIn(InputModel):
    params: TemplateParams | None = Field(
        None, description="Values to show; the template's own example values when omitted"
    )


class PreviewOut(BaseModel):
    header: str | None
    body: str
    footer: str | None
    buttons: list[dict[str, Any]]
    params: dict[str, Any] = Field(description="The values shown")
    errors: list[str] = Field(description="Why these values could not be sent (empty: fine)")
    components: list[dict[str, Any]] = Field(
        description="The Graph API `template.components` of a send with these values"
    )


class SyncOut(BaseModel):
    created: int
    updated: int
    deleted: int = Field(description="Known here, no longer on WhatsApp: marked DELETED")
    total: int
    pages: int
