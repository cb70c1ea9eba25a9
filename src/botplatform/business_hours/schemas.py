from __future__ import annotations

import re
import zoneinfo
from typing import Annotated

from pydantic import BaseModel, Field, StringConstraints, field_validator, model_validator

from botplatform.kit.schemas import InputModel

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_TIME = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$|^24:00$")

Clock = Annotated[str, StringConstraints(pattern=_TIME.pattern)]


class Range(InputModel):
    """Open from `start` (inclusive) to `end` (exclusive), local time; `end` may be 24:00."""

    start: Clock = Field(examples=["09:00"])
    end: Clock = Field(examples=["17:30"])

    @model_validator(mode="after")
    def _ordered(self) -> Range:
        if self.end <= self.start:
            raise ValueError("`end` must be after `start` (a range never crosses midnight)")
        return self


class BusinessHours(InputModel):
    """The workspace's time zone and weekly opening hours; a day that is absent or empty is
    closed all day."""

    timezone: Annotated[str, StringConstraints(min_length=1, max_length=64)] = Field(
        "UTC", examples=["Europe/Paris"]
    )
    days: dict[str, list[Range]] = Field(
        default_factory=dict,
        examples=[{"mon": [{"start": "09:00", "end": "17:00"}]}],
        description="Keys mon, tue, wed, thu, fri, sat, sun",
    )

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            zoneinfo.ZoneInfo(value)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r} (IANA, e.g. Europe/Paris)") from exc
        return value

    @field_validator("days")
    @classmethod
    def _known_days(cls, value: dict[str, list[Range]]) -> dict[str, list[Range]]:
        unknown = sorted(set(value) - set(DAYS))
        if unknown:
            raise ValueError(f"unknown day(s) {unknown}; use {list(DAYS)}")
        for day, ranges in value.items():
            if len(ranges) > 10:
                raise ValueError(f"{day}: at most 10 ranges")
        return value


class BusinessHoursOut(BaseModel):
    timezone: str
    days: dict[str, list[Range]]
    open_now: bool
