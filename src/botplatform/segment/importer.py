"""Contacts from a CSV file, all or nothing.

Columns (header row required, names case-insensitive): `phone` (required; any usual way of
writing it, stored E.164 — the WhatsApp identity is its digits), `name`, `tags` (separated by
`;` or `|`), `opted_out` (true/false, yes/no, 1/0), `consent_source`; every other column is an
attribute (its header lower-cased, spaces as `_`). Empty cells change nothing.

Every row is checked before anything is written: one bad row and the answer is a 422 listing
each bad row by line number and reason, and nothing is imported. Then the rows are written in
chunks (a few multi-row statements per chunk, not an ORM flush per row) in the request's one
transaction. The same number twice in the file is one contact (later cells win, tags add up);
a number the workspace knows already updates that contact (attributes merged, tags added).

Consent: every contact the import leaves opted in gets an `opt_in` entry in the consent ledger
with the consent source (the row's `consent_source` cell, else the form's, else `import`);
`opted_out=true` opts the contact out (an `opt_out` entry). An import never clears an opt-out:
a contact who opted out stays so (reported as `kept_opted_out`), whatever the file says.
"""

from __future__ import annotations

import csv
import io
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pydantic import BaseModel
from sqlalchemy import String, bindparam, func, insert, select, true, update
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from botplatform.kit import core
from botplatform.kit.clock import utcnow
from botplatform.kit.errors import Conflict, PayloadTooLarge, Unprocessable
from botplatform.kit.phone import normalize_phone
from botplatform.kit.scoping import scoped_columns
from botplatform.models import ConsentEvent, Contact, ContactIdentity
from botplatform.models.base import table_of

MAX_IMPORT_BYTES = 10 * 1_048_576
MAX_IMPORT_ROWS = 100_000
MAX_REPORTED_ERRORS = 200
CHUNK = 1000
PROVIDER = "whatsapp"

_SOURCE = re.compile(r"^[a-z][a-z0-9_]{0,29}$")
_KEY = re.compile(r"^[a-z0-9_.\-]{1,64}$")
_TAG_SPLIT = re.compile(r"[;|]")
_RESERVED = {"phone", "name", "tags", "opted_out", "consent_source"}
_TRUE, _FALSE = {"true", "yes", "y", "1"}, {"false", "no", "n", "0", ""}


class ImportResult(BaseModel):
    rows: int
    contacts: int
    created: int
    updated: int
    opted_out: int
    kept_opted_out: int
    consent_recorded: int


@dataclass
class Row:
    """One number's cells, merged over every line of the file that names it."""

    phone: str
    line: int
    name: str | None = None
    tags: list[str] = field(default_factory=list)
    attributes: dict[str, str] = field(default_factory=dict)
    opted_out: bool | None = None
    source: str | None = None

    def merge(self, other: Row) -> None:
        self.name = other.name or self.name
        self.tags = list(dict.fromkeys(self.tags + other.tags))
        self.attributes.update(other.attributes)
        self.opted_out = self.opted_out if other.opted_out is None else other.opted_out
        self.source = other.source or self.source


def check_source(value: str) -> str:
    source = value.strip().lower()
    if not _SOURCE.fullmatch(source):
        raise ValueError(
            "consent_source must be a short lower-case word such as import or web_form"
        )
    return source


def _column_key(header: str) -> str:
    return re.sub(r"\s+", "_", header.strip().lower())


def _headers(fieldnames: list[str] | None) -> dict[str, str]:
    """Each header → its key; 422 (line 1) when one is unusable."""
    if not fieldnames:
        raise _invalid([{"line": 1, "message": "The file is empty: a header row is needed."}])
    keys: dict[str, str] = {}
    problems = []
    for header in fieldnames:
        key = _column_key(header or "")
        if not _KEY.fullmatch(key):
            problems.append(f"column {header!r}: use letters, digits, _ . - (at most 64)")
        elif key in keys.values():
            problems.append(f"column {header!r} appears twice")
        keys[header] = key
    if "phone" not in keys.values():
        problems.append("a `phone` column is required")
    if problems:
        raise _invalid([{"line": 1, "message": "; ".join(problems)}])
    return keys


def _invalid(errors: list[dict[str, Any]], total: int | None = None) -> Unprocessable:
    count = total if total is not None else len(errors)
    return Unprocessable(
        f"{count} row(s) of the file are not valid; nothing was imported.",
        code="invalid_rows",
        details=errors[:MAX_REPORTED_ERRORS],
    )


def _row(line: int, cells: dict[str, str], default_source: str) -> Row:
    """One line's cells, checked; ValueError with every reason."""
    reasons: list[str] = []
    try:
        phone = normalize_phone(cells.get("phone", ""))
    except ValueError as exc:
        phone = ""
        reasons.append(f"phone: {exc}" if cells.get("phone") else "phone: missing")
    name = cells.get("name", "").strip() or None
    if name is not None and len(name) > 200:
        reasons.append("name: at most 200 characters")
    tags = [t.strip() for t in _TAG_SPLIT.split(cells.get("tags", "")) if t.strip()]
    if any(len(t) > 50 for t in tags) or len(tags) > 50:
        reasons.append("tags: at most 50 tags of at most 50 characters")
    opted = cells.get("opted_out", "").strip().lower()
    if opted not in _TRUE | _FALSE:
        reasons.append("opted_out: use true or false")
    source = default_source
    if cells.get("consent_source", "").strip():
        try:
            source = check_source(cells["consent_source"])
        except ValueError as exc:
            reasons.append(str(exc))
    attributes = {k: v.strip() for k, v in cells.items() if k not in _RESERVED and v.strip()}
    if any(len(v) > 500 for v in attributes.values()):
        reasons.append("attributes: a value has more than 500 characters")
    if reasons:
        raise ValueError("; ".join(reasons))
    return Row(
        phone=phone,
        line=line,
        name=name,
        tags=tags,
        attributes=attributes,
        opted_out=(opted in _TRUE) if opted else None,
        source=source,
    )


def parse(data: bytes, default_source: str = "import") -> tuple[list[Row], int]:
    """The file's contacts (one per number) and its number of data rows; `Unprocessable`
    listing every bad row (by line number) when any is bad, `PayloadTooLarge` when too big."""
    if len(data) > MAX_IMPORT_BYTES:
        raise PayloadTooLarge(
            f"The file is larger than {MAX_IMPORT_BYTES} bytes; split it.",
            details={"max_bytes": MAX_IMPORT_BYTES},
        )
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise _invalid([{"line": 1, "message": "The file is not UTF-8 text."}]) from exc
    reader = csv.DictReader(io.StringIO(text, newline=""), restkey="\x00extra")
    keys = _headers(list(reader.fieldnames or []))
    rows: dict[str, Row] = {}
    errors: list[dict[str, Any]] = []
    bad, count = 0, 0
    try:
        for record in reader:
            count += 1
            if count > MAX_IMPORT_ROWS:
                raise PayloadTooLarge(
                    f"The file has more than {MAX_IMPORT_ROWS} rows; split it.",
                    details={"max_rows": MAX_IMPORT_ROWS},
                )
            line = reader.line_num
            if "\x00extra" in record:
                bad += 1
                errors.append({"line": line, "message": "more cells than the header has columns"})
                continue
            cells = {keys[h]: (v or "") for h, v in record.items() if h in keys}
            try:
                row = _row(line, cells, default_source)
            except ValueError as exc:
                bad += 1
                errors.append({"line": line, "message": str(exc)})
                continue
            if row.phone in rows:
                rows[row.phone].merge(row)
            else:
                rows[row.phone] = row
    except csv.Error as exc:
        bad += 1
        errors.append({"line": reader.line_num, "message": f"not valid CSV: {exc}"})
    if errors:
        raise _invalid(errors, bad)
    if count == 0:
        raise _invalid([{"line": 2, "message": "The file has no rows under its header."}])
    return list(rows.values()), count


# --- writing ----------------------------------------------------------------------------------

_CONTACTS, _IDENTITIES = table_of(Contact), table_of(ContactIdentity)
# Known numbers are looked up in two reads, each through its own key, and on PostgreSQL one
# index probe per number (a LATERAL sub-query on the identities' unique key): inside the
# import's transaction the tables grow faster than the planner's statistics, and a plain
# `external_id IN (...)` was planned as a scan of the workspace's every identity per chunk,
# filtered against the list (quadratic: 1.5 s per chunk of 1,000 at 30,000 contacts).
_KNOWN_IDENTITIES = scoped_columns(ContactIdentity, "external_id", "contact_id").where(
    _IDENTITIES.c.provider == PROVIDER,
    _IDENTITIES.c.external_id.in_(bindparam("external_ids", expanding=True)),
)
_NUMBERS = (
    func.unnest(bindparam("external_ids", type_=ARRAY(String)))
    .table_valued("number")
    .render_derived(name="numbers")
)
_OWNER = (
    scoped_columns(ContactIdentity, "contact_id")
    .where(_IDENTITIES.c.provider == PROVIDER, _IDENTITIES.c.external_id == _NUMBERS.c.number)
    .limit(1)
    .lateral("owner")
)
_KNOWN_IDENTITIES_PG = select(_NUMBERS.c.number, _OWNER.c.contact_id).select_from(
    _NUMBERS.join(_OWNER, true())
)
_KNOWN_CONTACTS = scoped_columns(Contact, "id", "name", "tags", "attributes", "opted_out").where(
    _CONTACTS.c.id.in_(bindparam("ids", expanding=True))
)
_INSERT_CONTACTS = insert(_CONTACTS)
_INSERT_IDENTITIES = insert(_IDENTITIES)
_INSERT_CONSENT = insert(table_of(ConsentEvent))
_UPDATE_CONTACTS = (
    update(_CONTACTS)
    .where(_CONTACTS.c.id == bindparam("b_id"), _CONTACTS.c.workspace_id == bindparam("b_ws"))
    .values(
        name=bindparam("b_name"),
        tags=bindparam("b_tags"),
        attributes=bindparam("b_attributes"),
        opted_out=bindparam("b_opted_out"),
        updated_at=bindparam("b_now"),
    )
)


def _chunks(rows: list[Row]) -> Iterator[list[Row]]:
    for start in range(0, len(rows), CHUNK):
        yield rows[start : start + CHUNK]


@dataclass
class _Tally:
    created: int = 0
    updated: int = 0
    opted_out: int = 0
    kept_opted_out: int = 0
    consent: int = 0


def _consent(ws: uuid.UUID, contact_id: uuid.UUID, action: str, row: Row, now: datetime) -> Any:
    return {
        "id": uuid.uuid4(),
        "workspace_id": ws,
        "contact_id": contact_id,
        "action": action,
        "source": row.source or "import",
        "channel_id": None,
        "detail": f"CSV import, line {row.line}",
        "created_at": now,
        "updated_at": now,
    }


@dataclass
class _Known:
    contact_id: uuid.UUID
    name: str
    tags: list[str]
    attributes: dict[str, Any]
    opted_out: bool


async def _known(db: AsyncSession, ws: uuid.UUID, external_ids: list[str]) -> dict[str, _Known]:
    """The contacts these WhatsApp numbers already have in the workspace, by number."""
    parameters = {"workspace_id": ws, "external_ids": external_ids}
    postgres = db.get_bind().dialect.name == "postgresql"
    lookup = _KNOWN_IDENTITIES_PG if postgres else _KNOWN_IDENTITIES
    found = await core.run(db, lookup, parameters)
    owners: dict[str, uuid.UUID] = {row[0]: row[1] for row in found}
    if not owners:
        return {}
    parameters = {"workspace_id": ws, "ids": list(set(owners.values()))}
    contacts = {row.id: row for row in await core.run(db, _KNOWN_CONTACTS, parameters)}
    return {
        number: _Known(
            contact_id,
            contacts[contact_id].name,
            list(contacts[contact_id].tags or []),
            dict(contacts[contact_id].attributes or {}),
            bool(contacts[contact_id].opted_out),
        )
        for number, contact_id in owners.items()
        if contact_id in contacts
    }


async def _write_chunk(db: AsyncSession, ws: uuid.UUID, rows: list[Row], tally: _Tally) -> None:
    now = utcnow()
    known = await _known(db, ws, [row.phone[1:] for row in rows])
    new_contacts, new_identities, updates, consent = [], [], [], []
    for row in rows:
        found = known.get(row.phone[1:])
        if found is None:
            contact_id, opted_out = uuid.uuid4(), bool(row.opted_out)
            new_contacts.append(
                {
                    "id": contact_id,
                    "workspace_id": ws,
                    "name": row.name or row.phone,
                    "attributes": row.attributes,
                    "tags": row.tags,
                    "opted_out": opted_out,
                    "created_at": now,
                    "updated_at": now,
                }
            )
            new_identities.append(
                {
                    "id": uuid.uuid4(),
                    "workspace_id": ws,
                    "contact_id": contact_id,
                    "provider": PROVIDER,
                    "external_id": row.phone[1:],
                    "profile_name": None,
                    "created_at": now,
                    "updated_at": now,
                }
            )
            tally.created += 1
            was_out = False
        else:
            contact_id, was_out = found.contact_id, bool(found.opted_out)
            opted_out = was_out or bool(row.opted_out)
            tally.kept_opted_out += was_out and row.opted_out is False
            updates.append(
                {
                    "b_id": contact_id,
                    "b_ws": ws,
                    "b_name": row.name or found.name,
                    "b_tags": list(dict.fromkeys(found.tags + row.tags)),
                    "b_attributes": {**found.attributes, **row.attributes},
                    "b_opted_out": opted_out,
                    "b_now": now,
                }
            )
            tally.updated += 1
        if opted_out and not was_out:
            consent.append(_consent(ws, contact_id, "opt_out", row, now))
            tally.opted_out += 1
        elif not opted_out:
            consent.append(_consent(ws, contact_id, "opt_in", row, now))
    if new_contacts:
        await core.run(db, _INSERT_CONTACTS, new_contacts)
        await core.run(db, _INSERT_IDENTITIES, new_identities)
    if updates:
        await core.run(db, _UPDATE_CONTACTS, updates)
    if consent:
        await core.run(db, _INSERT_CONSENT, consent)
        tally.consent += len(consent)


async def write(
    db: AsyncSession, workspace_id: uuid.UUID, rows: list[Row], lines: int
) -> ImportResult:
    """Writes the parsed rows in chunks, in the caller's transaction (flushes, never commits)."""
    await db.flush()  # the Core statements below do not flush the session themselves
    tally = _Tally()
    try:
        for chunk in _chunks(rows):
            await _write_chunk(db, workspace_id, chunk, tally)
    except IntegrityError as exc:  # a message from a new number arrived meanwhile
        raise Conflict(
            "A contact of the file was created while importing; nothing was imported. "
            "Import the file again.",
            code="import_conflict",
        ) from exc
    return ImportResult(
        rows=lines,
        contacts=len(rows),
        created=tally.created,
        updated=tally.updated,
        opted_out=tally.opted_out,
        kept_opted_out=tally.kept_opted_out,
        consent_recorded=tally.consent,
    )
