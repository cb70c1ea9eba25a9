"""Core statements of the hot path, executed on the session's own connection.

    await core.run(db, _INSERT_MESSAGES, rows)
    await core.insert_many(db, Message, rows, conflict=["channel_id", "provider_message_id"])
    message = await core.insert_loaded(db, Message, row, conflict=KEY)

Same transaction as the session, without the ORM session layer in between. On PostgreSQL
the statement is compiled once per process and run on the asyncpg connection itself: what
SQLAlchemy does per execution (cache lookup, parameter construction, an execution context,
a cursor, a greenlet switch each way) cost about 0.2 ms per statement, three times what
asyncpg and PostgreSQL then spend on it (measured: 0.24 against 0.08 ms). On SQLite,
`Connection.execute` as before. Only for statements that read or write no ORM state the
session holds: the session does not flush before them, and does not see what they change.

The PostgreSQL fast path takes statements whose bind parameters are all given by the caller
(no expanding IN lists: write `column == any_(array)` there; no Python-side insert
defaults: `inserting` fills them in). A column's Python-side `onupdate` (`updated_at`) is
computed here, per execution, as SQLAlchemy would. Anything else goes through SQLAlchemy
unchanged.
"""

from __future__ import annotations

import functools
import re
import uuid
from collections import namedtuple
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from sqlalchemy import Column, Executable, any_, bindparam, func, insert, select, update
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine.interfaces import Dialect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from sqlalchemy.orm import make_transient_to_detached
from sqlalchemy.orm.instrumentation import manager_of_class

from botplatform.kit.logging import get_logger
from botplatform.models.base import table_of

Parameters = Mapping[str, Any] | Sequence[Mapping[str, Any]] | None
T = TypeVar("T")
log = get_logger(__name__)


class Rows:
    """What a fast-path statement returned: the part of SQLAlchemy's result the hot path
    uses."""

    __slots__ = ("_rows", "returns_rows", "rowcount")

    def __init__(self, rows: list[Any], rowcount: int, returns_rows: bool = False) -> None:
        self._rows, self.rowcount, self.returns_rows = rows, rowcount, returns_rows

    def __iter__(self) -> Iterator[Any]:
        return iter(self._rows)

    def all(self) -> list[Any]:
        return list(self._rows)

    def first(self) -> Any:
        return self._rows[0] if self._rows else None

    def scalars(self) -> list[Any]:
        return [row[0] for row in self._rows]

    def scalar(self) -> Any:
        return self._rows[0][0] if self._rows else None


async def run(db: AsyncSession, statement: Executable, parameters: Parameters = None) -> Any:
    connection = await db.connection()
    if connection.dialect.name != "postgresql":
        return await connection.execute(statement, parameters)
    rows = [parameters] if parameters is None or isinstance(parameters, Mapping) else parameters
    if not rows:
        return Rows([], 0)
    compiled = _compiled(statement, connection.dialect, rows[0])
    if compiled is None:
        return await connection.execute(statement, parameters)
    raw = await connection.get_raw_connection()
    return await _invalidating(connection, _run_on_driver(raw.dbapi_connection, compiled, rows))


Write = tuple[Executable, Parameters]  # a statement and its parameters, to run later


async def insert_many(
    db: AsyncSession,
    model: type[Any],
    rows: list[dict[str, Any]],
    *,
    conflict: list[str] | None = None,
    returning: str | None = None,
) -> Any:
    """Inserts `rows` (same keys each) in one statement; with `conflict`, rows meeting that
    unique key are left out (`ON CONFLICT DO NOTHING`); with `returning`, the inserted rows'
    values of that column. On PostgreSQL one `INSERT … SELECT FROM unnest(…)` whatever the
    number of rows (one prepared shape), on SQLite a multi-row insert."""
    if not rows:
        return Rows([], 0)
    return await run(db, *inserting(db, model, rows, conflict=conflict, returning=returning))


async def insert_loaded(
    db: AsyncSession, model: type[T], row: dict[str, Any], *, conflict: list[str]
) -> T | None:
    """Inserts one row unless its unique key `conflict` is taken (one statement, nothing
    read first: the constraint decides, also between concurrent transactions). The row
    stored, as a loaded object of the session (every column set, so reading it never goes to
    the database), or None when the key was taken and nothing was written."""
    # What the row may refer to (a conversation made just now) or clash with (a row of its
    # table changed or deleted) is written first; other changes wait for the next flush.
    if db.new or db.deleted or any(isinstance(changed, model) for changed in db.dirty):
        await db.flush()
    row = complete_row(model, row)
    inserted = await insert_many(db, model, [row], conflict=conflict, returning="id")
    # `.first()`, never the result's truth: a SQLAlchemy result is truthy even when empty.
    if inserted.first() is None:
        return None
    return as_loaded(db, model, row)


def complete_row(model: type[Any], row: dict[str, Any]) -> dict[str, Any]:
    """`row` with every column of `model`'s table: the Python-side defaults filled in, the
    rest None. Inserted as such, it is the row stored (see `as_loaded`)."""
    table = table_of(model)
    (row,) = _with_defaults(table, [row])
    return {column.key: row.get(column.key) for column in table.columns}


def instance(model: type[T], row: Mapping[str, Any]) -> T:
    """`model(**row)` for a row of column values (keyed by attribute, as `complete_row` and
    a loaded object's columns are), without the constructor: it sets each attribute through
    the ORM's events (history, change flags), about 20 µs a column, and the hot path makes
    several objects per message that nothing compares with what they were (about a tenth of
    a bot batch's CPU went to it). The values go straight into the object's `__dict__`, as
    a load puts them; a later change to an attribute is tracked as usual."""
    made: T = manager_of_class(model).new_instance()
    made.__dict__.update(row)
    return made


def as_loaded(db: AsyncSession, model: type[T], row: dict[str, Any]) -> T:
    """A `complete_row` this transaction inserted, as a loaded object of the session (every
    column set, so reading it never goes to the database)."""
    loaded = instance(model, row)
    make_transient_to_detached(loaded)  # as if loaded: the row exists, nothing is pending
    db.add(loaded)
    # The identity map holds clean objects weakly: one the caller lets go of would be read
    # again by the next `db.get` of it (a contact made here, then asked for by the bot).
    # Held for the session's life (a unit of work), as the ORM holds the rows it inserts.
    db.info.setdefault(_HELD, []).append(loaded)
    return loaded


def one_of(column: Any, name: str) -> dict[str, Any]:
    """`column IN (…a list given at run time…)`, per database: an array parameter on
    PostgreSQL (one prepared shape whatever the list's length, which `run` needs), an
    expanding list on SQLite."""
    array = bindparam(name, type_=postgresql.ARRAY(column.type))
    return {
        "postgresql": column == any_(array),
        "sqlite": column.in_(bindparam(name, expanding=True)),
    }


def unnested(name: str, *columns: tuple[str, Any]) -> Any:
    """`unnest(:a, :b, …) AS name(a, b, …)`: many rows as one row of arrays (one bind
    parameter per column, a list of values each), so a statement keeps one prepared shape
    whatever the number of rows (PostgreSQL)."""
    arrays = [bindparam(column, type_=postgresql.ARRAY(kind)) for column, kind in columns]
    return (
        func.unnest(*arrays)
        .table_valued(*(column for column, _ in columns))
        .render_derived(name=name)
    )


_HELD = "botplatform.inserted_rows"


def inserting(
    db: AsyncSession,
    model: type[Any],
    rows: list[dict[str, Any]],
    *,
    conflict: list[str] | None = None,
    returning: str | None = None,
) -> Write:
    """`insert_many`'s statement and parameters (`rows` not empty), for `together`."""
    dialect = db.get_bind().dialect.name
    rows = _with_defaults(table_of(model), rows)
    columns = tuple(rows[0])
    key = (model, columns, tuple(conflict or ()), returning, dialect)
    statement = _INSERTS.get(key)
    if statement is None:
        statement = _INSERTS[key] = _build_insert(model, columns, conflict, returning, dialect)
    if dialect != "postgresql":
        return statement, rows
    return statement, {name: [row[name] for row in rows] for name in columns}


def updating(db: AsyncSession, model: type[Any], rows: list[dict[str, Any]]) -> Write:
    """An `UPDATE` of many rows of one workspace by primary key, for `together`: each row
    gives `id`, `workspace_id` and the same other columns, set to its values. On PostgreSQL
    one statement from arrays (one prepared shape whatever the number of rows), on SQLite one
    row per execution."""
    dialect = db.get_bind().dialect.name
    columns = tuple(name for name in rows[0] if name not in ("id", "workspace_id"))
    key = ("update", model, columns, dialect)
    statement = _INSERTS.get(key)
    if statement is None:
        statement = _INSERTS[key] = _build_update(model, columns, dialect)
    workspace_id = rows[0]["workspace_id"]
    if dialect != "postgresql":
        return statement, [
            {"in_ws": workspace_id, **{f"in_{name}": row[name] for name in ("id", *columns)}}
            for row in rows
        ]
    parameters = {f"in_{name}": [row[name] for row in rows] for name in ("id", *columns)}
    return statement, {"in_ws": workspace_id, **parameters}


def _build_update(model: type[Any], columns: tuple[str, ...], dialect: str) -> Executable:
    # Parameters are named `in_<column>`: SQLAlchemy keeps a column's own name for itself.
    table = table_of(model)
    in_workspace = table.c.workspace_id == bindparam("in_ws", type_=table.c.workspace_id.type)
    if dialect != "postgresql":
        values = {name: bindparam(f"in_{name}", type_=table.c[name].type) for name in columns}
        by_id = table.c.id == bindparam("in_id", type_=table.c.id.type)
        return update(table).where(in_workspace, by_id).values(values)
    names = ("id", *columns)
    arrays = [
        bindparam(f"in_{name}", type_=postgresql.ARRAY(_column(table, name).type, dimensions=1))
        for name in names
    ]
    given = func.unnest(*arrays).table_valued(*names).render_derived(name="given")
    return (
        update(table)
        .where(in_workspace, table.c.id == given.c.id)
        .values({name: given.c[name] for name in columns})
    )


def _with_defaults(table: Any, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rows with the Python-side defaults of the columns they leave out filled in here:
    a statement that would need SQLAlchemy to compute them cannot take the fast path (a
    column added later with a default would silently send every insert the slow way)."""
    missing = [
        column
        for column in table.columns
        if column.key not in rows[0]
        and column.default is not None
        and not column.default.is_sequence
    ]
    if not missing:
        return rows
    filled = []
    for row in rows:
        extra = {
            column.key: column.default.arg(None)
            if column.default.is_callable
            else column.default.arg
            for column in missing
        }
        filled.append({**row, **extra})
    return filled


async def together(db: AsyncSession, writes: list[Write]) -> list[Any]:
    """Runs writes that do not depend on one another's results, and gives for each what its
    RETURNING column returned (a list), or, without RETURNING, how many rows it wrote.

    On PostgreSQL in ONE round trip: one statement whose data-modifying WITH parts are the
    writes (they see the same snapshot, not one another's rows; foreign keys are checked at
    the end, so a row may refer to one written beside it). On SQLite one after the other."""
    if not writes:
        return []
    connection = await db.connection()
    if connection.dialect.name == "postgresql" and len(writes) > 1:
        parts = [
            _single(statement, connection.dialect, parameters) for statement, parameters in writes
        ]
        if all(part is not None for part in parts):
            compiled = [part for part in parts if part is not None]
            combined = _combined(tuple(c for c, _ in compiled))
            arguments = [a for c, values in compiled for a in c.arguments(values)]
            raw = await connection.get_raw_connection()
            parameters = dict(zip(combined.names, arguments, strict=True))
            found = await _invalidating(
                connection, _run_on_driver(raw.dbapi_connection, combined, [parameters])
            )
            return [[] if value is None else value for value in found.first()]
        _say_off_fast_path(writes, parts)
    outcomes: list[Any] = []
    for statement, values in writes:
        result = await run(db, statement, values)
        outcomes.append(list(result.scalars()) if result.returns_rows else result.rowcount)
    return outcomes


def _say_off_fast_path(writes: list[Write], parts: list[Any]) -> None:
    """Logs, once per statement, a write of one set of parameters that keeps its group off
    the one round trip (a value SQLAlchemy computes, such as a column's `onupdate`, or an
    expanding `IN`): the group still runs, one statement at a time, so nothing else would
    tell (it cost a batch six round trips before it was seen)."""
    for (statement, parameters), part in zip(writes, parts, strict=True):
        if part is None and isinstance(parameters, Mapping) and id(statement) not in _SAID:
            _SAID.add(id(statement))
            log.warning("together_off_fast_path", statement=str(statement)[:120])


_SAID: set[int] = set()


async def begin_with_setting(
    db: AsyncSession, name: str, value: str, *, generic_plans: bool = False
) -> bool:
    """PostgreSQL: opens the session's transaction and makes `name` = `value` for it
    (`set_config(…, true)`, i.e. SET LOCAL) in ONE round trip instead of two, when nothing
    has run in it yet and the value is an id (a UUID: safe to write into the text, the only
    way to send two statements at once). False when it did nothing: the caller sets the
    value the usual way.

    SQLAlchemy's asyncpg adapter begins its transaction lazily, at the first statement,
    through asyncpg's `Connection.transaction()`; here the BEGIN is sent together with the
    setting, and the adapter is handed an object that ends the transaction the same way
    (the `commit`/`rollback` protocol it declares for asyncpg's).

    With `generic_plans`, the transaction's prepared statements also run on their generic
    plans (`plan_cache_mode`, SET LOCAL too): see `scoping.enter_workspace`."""
    connection = await db.connection()
    if connection.dialect.name != "postgresql" or not _is_uuid(value) or not _NAME.match(name):
        return False
    adapted: Any = (await connection.get_raw_connection()).dbapi_connection
    begin = _BEGIN.get(adapted.isolation_level)
    if adapted._transaction is not None or begin is None or adapted.readonly or adapted.deferrable:
        return False
    setting = f"SELECT set_config('{name}', '{value}', true)"
    if generic_plans:
        setting += ", set_config('plan_cache_mode', 'force_generic_plan', true)"
    await _invalidating(connection, _begin(adapted, f"{begin}; {setting}"))
    return True


async def _begin(adapted: Any, sql: str) -> None:
    async with adapted._execute_mutex:
        try:
            await adapted._connection.execute(sql)
        except Exception as error:
            raise _translated(adapted, "BEGIN", error) from error
        adapted._transaction = _Begun(adapted._connection)


async def _invalidating(connection: AsyncConnection, work: Awaitable[T]) -> T:
    """Runs `work` (statements sent past SQLAlchemy, on its connection); when they fail
    because the connection is gone (the server restarted, PgBouncer closed it), the pool is
    told, as SQLAlchemy does for its own statements: otherwise the dead connection would go
    back to the pool and fail every unit of work that takes it, for ever."""
    try:
        return await work
    except DBAPIError as error:
        raw = await connection.get_raw_connection()
        orig: Any = error.orig
        if connection.dialect.is_disconnect(orig, raw.dbapi_connection, None):
            error.connection_invalidated = True
            await connection.invalidate(error.orig)
        raise


class _Begun:
    """A transaction begun by `begin_with_setting`, as the adapter ends it."""

    __slots__ = ("_connection",)

    def __init__(self, connection: Any) -> None:
        self._connection = connection

    async def commit(self) -> None:
        await self._connection.execute("COMMIT")

    async def rollback(self) -> None:
        if self._connection.is_in_transaction():
            await self._connection.execute("ROLLBACK")


# What asyncpg's `Connection.transaction()` sends for the adapter's isolation setting.
_BEGIN = {None: "BEGIN", "read_committed": "BEGIN ISOLATION LEVEL READ COMMITTED"}
_NAME = re.compile(r"^[a-z_]+\.[a-z_]+$")  # a setting's name, as `app.workspace_id`


def _is_uuid(value: str) -> bool:
    try:
        return str(uuid.UUID(value)) == value
    except ValueError:
        return False


# -- PostgreSQL: compiled once, run on asyncpg -------------------------------------------------


@dataclass(frozen=True)
class _Compiled:
    sql: str
    names: tuple[str, ...]
    processors: tuple[Callable[[Any], Any] | None, ...]
    fixed: Mapping[str, Any]  # the statement's own literal values (`x == "resolved"`)
    returns_rows: bool
    row: Callable[..., Any]  # a tuple whose fields are also the columns' names, as Row's
    #: Values SQLAlchemy would compute per execution: the `onupdate` of columns not set.
    computed: Mapping[str, Callable[[], Any]] = field(default_factory=dict)

    def arguments(self, parameters: Mapping[str, Any]) -> list[Any]:
        fixed = self.fixed
        if self.computed:
            fixed = {**fixed, **{name: value() for name, value in self.computed.items()}}
        return [
            value if processor is None else processor(value)
            for value, processor in zip(
                (parameters[n] if n in parameters else fixed[n] for n in self.names),
                self.processors,
                strict=True,
            )
        ]


_COMPILED: dict[tuple[int, tuple[str, ...]], tuple[Executable, _Compiled | None]] = {}
_INSERTS: dict[tuple[Any, ...], Executable] = {}
_ROWCOUNT = re.compile(r"(?:SELECT|UPDATE|DELETE|INSERT \d+) (\d+)")


def _compiled(
    statement: Executable, dialect: Dialect, parameters: Mapping[str, Any] | None
) -> _Compiled | None:
    keys = tuple(parameters or ())
    cache_key = (id(statement), keys)
    cached = _COMPILED.get(cache_key)
    if cached is not None and cached[0] is statement:
        return cached[1]
    compiled = statement.compile(dialect=dialect, column_keys=list(keys))  # type: ignore[attr-defined]
    names = tuple(compiled.positiontup or ())
    binds = compiled.binds
    fixed = {
        name: binds[name].effective_value
        for name in names
        if name not in keys and not binds[name].required and binds[name].callable is None
    }
    result: _Compiled | None = None
    expanding = any(bind.expanding for bind in binds.values())
    computed = _onupdates(compiled.update_prefetch)
    given = set(keys) | set(fixed) | set(computed or ())
    if (
        not expanding
        and not compiled.insert_prefetch
        and computed is not None
        and set(names) <= given
    ):
        processors = compiled._bind_processors  # what SQLAlchemy applies to each value
        result = _Compiled(
            sql=compiled.string,
            names=names,
            processors=tuple(processors.get(name) for name in names),
            fixed=fixed,
            returns_rows=bool(compiled._result_columns),
            row=namedtuple("Row", [column[0] for column in compiled._result_columns], rename=True),
            computed=computed or {},
        )
    _COMPILED[cache_key] = (statement, result)
    return result


def _onupdates(columns: Sequence[Any]) -> dict[str, Callable[[], Any]] | None:
    """How to compute the `onupdate` values SQLAlchemy would prefetch for `columns` (bound
    under each column's key), or None when one is not a plain value or function. Computed
    here, so that a statement leaving `updated_at` to its column keeps the fast path (and
    its place in `together`'s one round trip)."""
    computed: dict[str, Callable[[], Any]] = {}
    for column in columns:
        onupdate = column.onupdate
        if onupdate is None or not (onupdate.is_callable or onupdate.is_scalar):
            return None
        if onupdate.is_callable:  # wrapped by SQLAlchemy to take an execution context
            computed[column.key] = functools.partial(onupdate.arg, None)
        else:
            computed[column.key] = functools.partial(_same, onupdate.arg)
    return computed


def _same(value: Any) -> Any:
    return value


async def _run_on_driver(adapted: Any, compiled: _Compiled, rows: Sequence[Any]) -> Rows:
    """On the connection SQLAlchemy's adapter holds, in its transaction (begun here when
    this is the transaction's first statement, as the adapter does)."""
    async with adapted._execute_mutex:
        if adapted._transaction is None:
            await adapted._start_transaction()
        driver = adapted._connection
        try:
            if len(rows) > 1:
                if compiled.returns_rows:
                    raise ValueError("several rows with RETURNING: use core.insert_many")
                await driver.executemany(compiled.sql, [compiled.arguments(r) for r in rows])
                return Rows([], len(rows))
            arguments = compiled.arguments(rows[0] or {})
            if compiled.returns_rows:
                found = await driver.fetch(compiled.sql, *arguments)
                return Rows([compiled.row(*record) for record in found], len(found), True)
            status = await driver.execute(compiled.sql, *arguments)
        except Exception as error:
            raise _translated(adapted, compiled.sql, error) from error
    match = _ROWCOUNT.match(status or "")
    return Rows([], int(match.group(1)) if match else -1)


def _single(
    statement: Executable, dialect: Dialect, parameters: Parameters
) -> tuple[_Compiled, Mapping[str, Any]] | None:
    """The statement compiled for the fast path, when it takes one set of parameters."""
    if not isinstance(parameters, Mapping):
        return None
    compiled = _compiled(statement, dialect, parameters)
    return None if compiled is None else (compiled, parameters)


_COMBINED: dict[tuple[int, ...], tuple[tuple[_Compiled, ...], _Compiled]] = {}
_PLACEHOLDER = re.compile(r"\$(\d+)")


def _combined(parts: tuple[_Compiled, ...]) -> _Compiled:
    """`WITH w0 AS (…), w1 AS (…) SELECT (SELECT count(*) FROM w0), …`: each part's
    placeholders moved past the previous parts' own; a part with RETURNING (one column)
    gives its values as an array; built once per combination."""
    key = tuple(id(part) for part in parts)
    cached = _COMBINED.get(key)
    if cached is not None and cached[0] == parts:
        return cached[1]
    # Only compiled statements and numbers are written into the text, never a value.
    offset, ctes, results = 0, [], []
    for index, part in enumerate(parts):
        sql = _PLACEHOLDER.sub(_moved(offset), part.sql)
        returning = "" if part.returns_rows else " RETURNING 1"
        ctes.append(f"w{index} AS ({sql}{returning})")
        results.append(
            f"(SELECT array_agg(t.v) FROM w{index} AS t(v))"  # noqa: S608
            if part.returns_rows
            else f"(SELECT count(*) FROM w{index})"  # noqa: S608
        )
        offset += len(part.names)
    counts = ", ".join(results)
    names = tuple(f"p{index}" for index in range(offset))
    combined = _Compiled(
        sql=f"WITH {', '.join(ctes)} SELECT {counts}",
        names=names,
        processors=(None,) * offset,
        fixed={},
        returns_rows=True,
        row=_values,
    )
    _COMBINED[key] = (parts, combined)
    return combined


def _moved(offset: int) -> Callable[[re.Match[str]], str]:
    def move(placeholder: re.Match[str]) -> str:
        return f"${int(placeholder.group(1)) + offset}"

    return move


def _values(*values: Any) -> tuple[Any, ...]:
    return values


def _translated(adapted: Any, sql: str, error: Exception) -> Exception:
    """The error SQLAlchemy would have raised (IntegrityError, OperationalError, …)."""
    try:
        adapted._handle_exception(error)
    except Exception as dbapi_error:
        if isinstance(dbapi_error, adapted.dbapi.Error):
            translated: Exception = DBAPIError.instance(sql, None, dbapi_error, adapted.dbapi.Error)
            return translated
        return dbapi_error
    return error


# -- inserts of many rows ----------------------------------------------------------------------


def _build_insert(
    model: type[Any],
    columns: tuple[str, ...],
    conflict: list[str] | None,
    returning: str | None,
    dialect: str,
) -> Executable:
    table = table_of(model)
    statement: Any
    if dialect == "postgresql":
        arrays = [
            # One dimension: a JSON list is one element, not a second dimension.
            bindparam(name, type_=postgresql.ARRAY(_column(table, name).type, dimensions=1))
            for name in columns
        ]
        source = func.unnest(*arrays).table_valued(*columns).render_derived(name="new")
        statement = postgresql.insert(table).from_select(
            list(columns), select(*(source.c[name] for name in columns))
        )
    elif dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        statement = sqlite_insert(table)
    else:  # pragma: no cover - the two supported backends
        statement = insert(table)
    if conflict:
        statement = statement.on_conflict_do_nothing(index_elements=conflict)
    if returning:
        statement = statement.returning(table.c[returning])
    return statement  # type: ignore[no-any-return]


def _column(table: Any, name: str) -> Column[Any]:
    column: Column[Any] = table.c[name]
    return column
