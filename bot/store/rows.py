"""Row types, value conversions and the one-statement SQL helpers shared by the data methods and `Store`."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import Enum
from typing import Literal, cast, get_args

from bot.store.backends import Conn, Row
from bot.store.errors import StoreError

OPEN_REQUEST_STATUSES: frozenset[str] = frozenset({"pending", "approved", "running"})
"""Approval statuses that may still change. Retention never deletes a request in one of these; any other status
(succeeded, failed, denied, expired, ...) is final and the request is purged once it has not changed since the
cutoff."""

OutboxStatus = Literal["pending", "uncertain", "sent", "failed"]
_OUTBOX_STATUSES: frozenset[str] = frozenset(get_args(OutboxStatus))


@dataclass(frozen=True)
class OutboxItem:
    """One message to deliver, as stored. `payload` and `result` are the caller's JSON text."""

    id: int
    lane: str
    kind: str
    payload: str
    status: OutboxStatus
    attempts: int
    next_attempt_at: datetime
    depends_on: int | None
    result: str | None
    created_at: datetime
    dedup_key: str | None
    last_error: str | None


# --- conversions -------------------------------------------------------------------------------------------------


def _ts(value: datetime) -> str:
    """Aware datetime -> fixed-width UTC ISO text (so that text order is time order in SQL)."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"naive datetime {value!r}: the store only accepts timezone-aware datetimes")
    return value.astimezone(UTC).isoformat(timespec="microseconds")


def _dt(text: object) -> datetime:
    parsed = datetime.fromisoformat(str(text))
    if parsed.tzinfo is None:  # never written by this module; be lenient with hand-edited rows
        return parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def _opt_str(value: object) -> str | None:
    return None if value is None else str(value)


def _opt_int(value: object) -> int | None:
    return None if value is None else int(str(value))


def _require_json(text: str, what: str) -> None:
    """Reject non-JSON early: a bad payload found only by the drainer hours later is much harder to trace."""
    try:
        json.loads(text)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{what} must be JSON text: {exc}") from None


def _json_default(value: object) -> object:
    """Audit data must never fail to serialise (a failed audit write would abort the action it records)."""
    if isinstance(value, datetime):
        return _ts(value) if value.tzinfo is not None else value.isoformat()
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, set | frozenset):
        return sorted(str(v) for v in value)
    dump = getattr(value, "model_dump", None)
    if callable(dump):
        return dump(mode="json")
    return str(value)


def _outbox_item(row: Row) -> OutboxItem:
    status = str(row["status"])
    if status not in _OUTBOX_STATUSES:
        raise StoreError(f"outbox item {row['id']} has unknown status {status!r}")
    return OutboxItem(
        id=int(row["id"]),
        lane=str(row["lane"]),
        kind=str(row["kind"]),
        payload=str(row["payload"]),
        status=cast(OutboxStatus, status),  # checked against OutboxStatus just above
        attempts=int(row["attempts"]),
        next_attempt_at=_dt(row["next_attempt_at"]),
        depends_on=_opt_int(row["depends_on"]),
        result=_opt_str(row["result"]),
        created_at=_dt(row["created_at"]),
        dedup_key=_opt_str(row["dedup_key"]),
        last_error=_opt_str(row["last_error"]),
    )


def _audit_row(row: Row) -> dict[str, object]:
    data = json.loads(str(row["data"]))
    return {
        "id": int(row["id"]),
        "ts": _dt(row["ts"]),
        "kind": str(row["kind"]),
        "target": _opt_str(row["target"]),
        "actor": _opt_str(row["actor"]),
        "request_id": _opt_str(row["request_id"]),
        "data": data if isinstance(data, dict) else {"value": data},
    }


_OUTBOX_COLUMNS = (
    "o.id, o.lane, o.kind, o.payload, o.status, o.attempts, o.next_attempt_at, o.depends_on, o.result, "
    "o.created_at, o.dedup_key, o.last_error"
)


def _db_clock(conn: Conn) -> str:
    """The database's clock in seconds since the epoch, as SQL (never a replica's clock: they are not compared)."""
    if conn.engine == "postgresql":
        return "EXTRACT(EPOCH FROM clock_timestamp())::float8"
    return "((julianday('now') - 2440587.5) * 86400.0)"


async def _exec(conn: Conn, sql: str, params: Iterable[object] = ()) -> int:
    """Run one statement and return its rowcount."""
    return await conn.exec(sql, tuple(params))


async def _insert(conn: Conn, sql: str, params: Iterable[object] = ()) -> int:
    """Run one INSERT and return the new row's `id`."""
    new_id = await conn.insert(sql, tuple(params))
    if new_id is None:  # pragma: no cover - only an ON CONFLICT DO NOTHING inserts nothing
        raise StoreError("INSERT stored no row")
    return new_id


async def _rows(conn: Conn, sql: str, params: Iterable[object] = ()) -> list[Row]:
    return await conn.rows(sql, tuple(params))


async def _one(conn: Conn, sql: str, params: Iterable[object] = ()) -> Row | None:
    return await conn.one(sql, tuple(params))
