"""The data methods, written once in SQL both engines accept, shared by `Store` and `Tx` (`_Ops`)."""

from __future__ import annotations

import abc
import json
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from datetime import datetime

from bot.store.backends import Conn
from bot.store.errors import Fenced, StoreError
from bot.store.rows import (
    _OUTBOX_COLUMNS,
    OPEN_REQUEST_STATUSES,
    OutboxItem,
    _audit_row,
    _db_clock,
    _dt,
    _exec,
    _insert,
    _json_default,
    _one,
    _outbox_item,
    _require_json,
    _rows,
    _ts,
)

_EXPORT_PAGE = 500
"""Rows per query in `export_audit`: bounded memory, and no lock or read transaction held while the caller works."""

# --- the operations (shared by Store and Tx) ------------------------------------------------------------------


class _Ops(abc.ABC):
    """Every data method, written once against a connection, in SQL both engines accept (`?` placeholders).

    `Store` runs each call in its own short transaction (writes) or under its connection lock (reads); `Tx`
    runs them inside the caller's transaction (`BEGIN IMMEDIATE` on SQLite, `BEGIN` on PostgreSQL), which is how
    a state change and the outbox items it produced become one atomic commit.
    """

    @abc.abstractmethod
    def _writing(self) -> AbstractAsyncContextManager[Conn]: ...

    @abc.abstractmethod
    def _reading(self) -> AbstractAsyncContextManager[Conn]: ...

    @abc.abstractmethod
    def _now(self) -> datetime: ...

    @abc.abstractmethod
    def _fence_source(self) -> Callable[[], int | None] | None: ...

    def _shard_source(self) -> Callable[[str], int | None] | None:
        return None

    async def _shard_fenced(self, conn: Conn, target: str) -> bool:
        """A sharded replica's state commit for `target` (bot/ha/shards.py) goes ahead only under the membership epoch
        its share was computed for. The epoch row is read with a share lock held to the commit: a membership change
        (which updates that row) waits for this transaction, or this transaction sees the new epoch and refuses.
        False when the store is not sharded (the leader's fence applies instead)."""
        source = self._shard_source()
        if source is None:
            return False
        epoch = source(target)
        if epoch is None:
            raise Fenced(f"not this replica's target: {target} is probed by another replica")
        row = await _one(conn, "SELECT epoch FROM shard_epoch WHERE id = 1 FOR SHARE" if conn.engine == "postgresql"
                         else "SELECT epoch FROM shard_epoch WHERE id = 1")
        if row is None or int(row["epoch"]) != epoch:
            found = None if row is None else int(row["epoch"])
            raise Fenced(f"fenced: {target}'s share was computed for membership epoch {epoch}, the database is at "
                         f"{found}; it is re-computed at the next heartbeat")
        return True

    async def _fenced(self, conn: Conn) -> None:
        """A leader-only write (a state commit, an outbox delivery record) goes ahead only under this replica's
        fencing token (`Store.fence`, set by the leader; None on SQLite and for a single bot). The lease row is read
        with a share lock held to the commit: a takeover, which updates that row, waits for this transaction, or
        this transaction sees the new token and refuses. No write of an old term lands after a new term began."""
        source = self._fence_source()
        if source is None:
            return
        token = source()
        if token is None:
            raise Fenced("not the leader: leader-only writes are refused")
        row = await _one(conn, "SELECT token FROM leader_lease WHERE id = 1 FOR SHARE" if conn.engine == "postgresql"
                         else "SELECT token FROM leader_lease WHERE id = 1")
        if row is None or int(row["token"]) != token:
            found = None if row is None else int(row["token"])
            raise Fenced(f"fenced: this replica's token is {token}, the lease's is {found}; it leads no more")

    async def release_lease(self, *, holder: str, token: int) -> bool:
        """A leader stopping cleanly gives its lease up (expired at once), after its last send: a follower takes
        over within a second instead of a TTL. Only our own term's row; False if it was not (any more)."""
        async with self._writing() as conn:
            return bool(await _exec(conn, "UPDATE leader_lease SET expires_at = 0 WHERE id = 1 AND holder = ? "
                                          "AND token = ?", (holder, token)))

    # shard membership (wt-shard, bot/ha/shards.py) ------------------------------------------------------------------

    async def shard_beat(self, *, replica: str, ttl: float) -> tuple[int, frozenset[str]]:
        """One heartbeat of `replica`: renew its row (or join: insert it), reap the rows not renewed within `ttl`
        (seconds of the database's clock), bump the epoch if the member set changed, and return (epoch, live
        members) as of this transaction.

        Lock order, the same in every transaction that changes the membership: the epoch row first (FOR UPDATE),
        then member rows. A plain renewal locks its own row only. So a reaper never holds a member row while it
        waits for the epoch row (a deadlock with a replica leaving or joining at that moment), and two replicas
        reaping at once take turns: the second finds nothing left to delete and does not bump again."""
        async with self._writing() as conn:
            now = _db_clock(conn)  # a constant SQL expression per engine; the values go as parameters
            row = await _one(conn, f"SELECT COUNT(*) AS expired, SUM(CASE WHEN replica = ? THEN 1 ELSE 0 END) AS mine "  # noqa: S608
                                   f"FROM shard_members WHERE replica = ? OR last_seen < {now} - ?",
                             (replica, replica, float(ttl)))
            mine = 0 if row is None or row["mine"] is None else int(row["mine"])
            expired = (0 if row is None else int(row["expired"])) - mine
            seen = 0
            if mine and not expired:
                seen = await _exec(conn, f"UPDATE shard_members SET last_seen = {now} WHERE replica = ?",  # noqa: S608
                                   (replica,))
            if not seen:
                await _exec(conn, "SELECT epoch FROM shard_epoch WHERE id = 1 FOR UPDATE" if conn.engine == "postgresql"
                            else "SELECT epoch FROM shard_epoch WHERE id = 1")
                seen = await _exec(conn, f"UPDATE shard_members SET last_seen = {now} WHERE replica = ?",  # noqa: S608
                                   (replica,))
                reaped = await _exec(conn, f"DELETE FROM shard_members WHERE last_seen < {now} - ?",  # noqa: S608
                                     (float(ttl),))
                if not seen:
                    join = f"INSERT INTO shard_members (replica, joined_at, last_seen) VALUES (?, {now}, {now})"  # noqa: S608
                    await _exec(conn, join, (replica,))
                if reaped or not seen:
                    await _exec(conn, "UPDATE shard_epoch SET epoch = epoch + 1 WHERE id = 1")
            return await self._shard_view(conn)

    async def shard_leave(self, *, replica: str) -> bool:
        """A replica stopping cleanly removes its row (a new epoch): the others take its targets over at their next
        heartbeat instead of after the TTL. False if it was not a member (any more). Epoch row first (see
        `shard_beat`)."""
        async with self._writing() as conn:
            await _exec(conn, "SELECT epoch FROM shard_epoch WHERE id = 1 FOR UPDATE" if conn.engine == "postgresql"
                        else "SELECT epoch FROM shard_epoch WHERE id = 1")
            if not await _exec(conn, "DELETE FROM shard_members WHERE replica = ?", (replica,)):
                return False
            await _exec(conn, "UPDATE shard_epoch SET epoch = epoch + 1 WHERE id = 1")
            return True

    async def shard_view(self) -> tuple[int, frozenset[str]]:
        """(epoch, members) as the database has them now (members not yet reaped included)."""
        async with self._reading() as conn:
            return await self._shard_view(conn)

    @staticmethod
    async def _shard_view(conn: Conn) -> tuple[int, frozenset[str]]:
        # One statement, one snapshot: the epoch and the members it counts.
        rows = await _rows(conn, "SELECT e.epoch, m.replica FROM shard_epoch e LEFT JOIN shard_members m ON 1 = 1 "
                                 "WHERE e.id = 1")
        if not rows:
            raise StoreError("shard_epoch has no row: the database was not migrated by wscheck")
        return int(rows[0]["epoch"]), frozenset(str(r["replica"]) for r in rows if r["replica"] is not None)

    async def root_message(self, *, target: str, incident_id: str) -> str | None:
        """The ts of an incident's root message, from the outbox item that posted it (sharded replicas: the leader
        posts, the target's owner attaches the ts to its state). Found through the dedup key, which starts with the
        incident's id and a slash (bot/monitoring/alerts.py)."""
        async with self._reading() as conn:
            row = await _one(conn, "SELECT result FROM outbox WHERE dedup_key >= ? AND dedup_key < ? AND lane = ? "
                                   "AND kind = 'post_root' AND status = 'sent' ORDER BY id DESC LIMIT 1",
                             (incident_id + "/", incident_id + "0", target))
        if row is None or row["result"] is None:
            return None
        ts = json.loads(str(row["result"])).get("ts")
        return str(ts) if ts else None

    # outbox ------------------------------------------------------------------------------------------------------

    async def enqueue(
        self,
        *,
        lane: str,
        kind: str,
        payload: str,
        dedup_key: str | None = None,
        depends_on: int | None = None,
        not_before: datetime | None = None,
    ) -> int:
        """Store a message to deliver and return its id; with a `dedup_key` seen before, return that item's id
        and store nothing (so replaying the same decision after a crash does not post twice).

        A dependency that already failed permanently makes the new item fail at once (it could never be sent,
        and would block its lane forever).
        """
        _require_json(payload, "payload")
        now = self._now()
        next_at = _ts(not_before if not_before is not None else now)
        async with self._writing() as conn:
            if dedup_key is not None:
                existing = await _one(conn, "SELECT id FROM outbox WHERE dedup_key = ?", (dedup_key,))
                if existing is not None:
                    return int(existing["id"])
            status, error, finished = "pending", None, None
            if depends_on is not None:
                dep = await _one(conn, "SELECT status FROM outbox WHERE id = ?", (depends_on,))
                if dep is None:
                    raise StoreError(f"depends_on={depends_on}: no such outbox item")
                if dep["status"] == "failed":
                    status, error, finished = "failed", f"dependency {depends_on} failed", _ts(now)
            # ON CONFLICT: another connection (another process, later a replica) may store the same key between
            # the look-up above and here; it waits for that one's commit and then inserts nothing.
            new_id = await conn.insert(
                "INSERT INTO outbox (lane, kind, payload, status, next_attempt_at, depends_on, created_at, "
                "finished_at, dedup_key, last_error) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (dedup_key) DO NOTHING",
                (lane, kind, payload, status, next_at, depends_on, _ts(now), finished, dedup_key, error),
            )
            if new_id is not None:
                return new_id
            existing = await _one(conn, "SELECT id FROM outbox WHERE dedup_key = ?", (dedup_key,))
            if existing is None:  # pragma: no cover - a conflict means the row exists
                raise StoreError(f"outbox dedup_key {dedup_key!r}: conflict without a row")
            return int(existing["id"])

    async def due_items(self, *, now: datetime, limit: int = 50) -> list[OutboxItem]:
        """What to deliver now: per lane only its head (oldest pending/uncertain item), and only if it is due
        and its dependency (if any) is sent. Oldest first. A lane whose head waits for a retry or a dependency
        yields nothing, so its later items can never overtake it; other lanes are unaffected."""
        async with self._reading() as conn:
            rows = await _rows(
                conn,
                f"""WITH heads AS (
                        SELECT MIN(id) AS id FROM outbox WHERE status IN ('pending', 'uncertain') GROUP BY lane
                    )
                    SELECT {_OUTBOX_COLUMNS} FROM heads h
                    JOIN outbox o ON o.id = h.id
                    LEFT JOIN outbox d ON d.id = o.depends_on
                    WHERE o.next_attempt_at <= ? AND (o.depends_on IS NULL OR d.status = 'sent')
                    ORDER BY o.id LIMIT ?""",  # noqa: S608 - constant column list, values are bound
                (_ts(now), limit),
            )
        return [_outbox_item(row) for row in rows]

    async def mark_sent(self, item_id: int, *, result: str) -> None:
        """Delivered; `result` (JSON, e.g. channel + ts) is what dependent items read via `item(dep).result`."""
        _require_json(result, "result")
        async with self._writing() as conn:
            await self._fenced(conn)
            changed = await _exec(
                conn,
                "UPDATE outbox SET status = 'sent', result = ?, attempts = attempts + 1, finished_at = ?, "
                "last_error = NULL WHERE id = ? AND status IN ('pending', 'uncertain')",
                (result, _ts(self._now()), item_id),
            )
            if not changed:
                await self._explain_not_open(conn, item_id)

    async def mark_retry(self, item_id: int, *, next_attempt_at: datetime, error: str, uncertain: bool = False) -> None:
        """Not delivered (yet): try again at `next_attempt_at`. `uncertain=True` means it may have been posted
        (timeout after sending): the drainer must look it up before posting it again. A retry of an uncertain
        item with `uncertain=False` (looked up: not posted) makes it plain pending again."""
        status = "uncertain" if uncertain else "pending"
        async with self._writing() as conn:
            await self._fenced(conn)
            changed = await _exec(
                conn,
                "UPDATE outbox SET status = ?, attempts = attempts + 1, next_attempt_at = ?, last_error = ? "
                "WHERE id = ? AND status IN ('pending', 'uncertain')",
                (status, _ts(next_attempt_at), error, item_id),
            )
            if not changed:
                await self._explain_not_open(conn, item_id)

    async def mark_failed(self, item_id: int, *, error: str) -> None:
        """Permanently undeliverable (e.g. `invalid_blocks`): the lane moves on. Items that depend on it, directly
        or transitively, can never be sent and fail with it rather than blocking their lanes forever."""
        now = _ts(self._now())
        async with self._writing() as conn:
            await self._fenced(conn)
            changed = await _exec(
                conn,
                "UPDATE outbox SET status = 'failed', attempts = attempts + 1, finished_at = ?, last_error = ? "
                "WHERE id = ? AND status IN ('pending', 'uncertain')",
                (now, error, item_id),
            )
            if not changed:
                await self._explain_not_open(conn, item_id)
            await _exec(
                conn,
                """WITH RECURSIVE dependents(id) AS (
                       SELECT id FROM outbox WHERE depends_on = ?
                       UNION SELECT o.id FROM outbox o JOIN dependents ON o.depends_on = dependents.id
                   )
                   UPDATE outbox SET status = 'failed', finished_at = ?, last_error = ?
                   WHERE id IN (SELECT id FROM dependents) AND status IN ('pending', 'uncertain')""",
                (item_id, now, f"dependency {item_id} failed: {error}"),
            )

    @staticmethod
    async def _explain_not_open(conn: Conn, item_id: int) -> None:
        row = await _one(conn, "SELECT status FROM outbox WHERE id = ?", (item_id,))
        if row is None:
            raise StoreError(f"outbox item {item_id} does not exist")
        raise StoreError(f"outbox item {item_id} is already {row['status']}")

    async def item(self, item_id: int) -> OutboxItem | None:
        async with self._reading() as conn:
            row = await _one(conn, f"SELECT {_OUTBOX_COLUMNS} FROM outbox o WHERE o.id = ?", (item_id,))  # noqa: S608
        return None if row is None else _outbox_item(row)

    async def outbox_depth(self) -> int:
        """Items not yet delivered nor given up (pending + uncertain): the backlog gauge."""
        async with self._reading() as conn:
            row = await _one(conn, "SELECT COUNT(*) AS n FROM outbox WHERE status IN ('pending', 'uncertain')")
        return 0 if row is None else int(row["n"])

    # incidents ---------------------------------------------------------------------------------------------------

    async def load_states(self) -> dict[str, str]:
        """Every target's last saved state machine JSON (what a restarted bot resumes from)."""
        async with self._reading() as conn:
            rows = await _rows(conn, "SELECT target, state FROM incident_states ORDER BY target")
        return {str(row["target"]): str(row["state"]) for row in rows}

    async def save_state(self, target: str, state_json: str) -> None:
        """Replace a target's state; a changed state is also appended to incident_history (kept until retention).
        Saving an unchanged state writes nothing, so calling this every monitoring cycle is cheap."""
        _require_json(state_json, "state_json")
        now = _ts(self._now())
        async with self._writing() as conn:
            row = await _one(conn, "SELECT state FROM incident_states WHERE target = ?", (target,))
            if row is not None and row["state"] == state_json:
                return
            if not await self._shard_fenced(conn, target):
                await self._fenced(conn)
            await _exec(
                conn,
                "INSERT INTO incident_states (target, state, updated_at) VALUES (?, ?, ?) "
                "ON CONFLICT (target) DO UPDATE SET state = excluded.state, updated_at = excluded.updated_at",
                (target, state_json, now),
            )
            await _exec(
                conn,
                "INSERT INTO incident_history (target, saved_at, state) VALUES (?, ?, ?)",
                (target, now, state_json),
            )

    async def state_history(self, target: str, *, limit: int = 20) -> list[tuple[datetime, str]]:
        """The target's past states, newest first (the current one included)."""
        async with self._reading() as conn:
            rows = await _rows(
                conn,
                "SELECT saved_at, state FROM incident_history WHERE target = ? ORDER BY id DESC LIMIT ?",
                (target, limit),
            )
        return [(_dt(row["saved_at"]), str(row["state"])) for row in rows]

    # silences ----------------------------------------------------------------------------------------------------

    async def set_silence(self, *, target: str, until: datetime, by: str, at: datetime, reason: str = "") -> None:
        """Silence (or re-silence: the new one replaces the old) a target's alerts until `until`."""
        async with self._writing() as conn:
            await _exec(
                conn,
                "INSERT INTO silences (target, until, set_by, set_at, reason) VALUES (?, ?, ?, ?, ?) "
                "ON CONFLICT (target) DO UPDATE SET until = excluded.until, set_by = excluded.set_by, "
                "set_at = excluded.set_at, reason = excluded.reason",
                (target, _ts(until), by, _ts(at), reason),
            )

    async def clear_silence(self, target: str) -> bool:
        """Remove the target's silence; True only if it was still in force (an expired one is removed too)."""
        now = _ts(self._now())
        async with self._writing() as conn:
            row = await _one(conn, "SELECT until FROM silences WHERE target = ?", (target,))
            if row is None:
                return False
            await _exec(conn, "DELETE FROM silences WHERE target = ?", (target,))
            return str(row["until"]) > now

    async def silences(self, *, now: datetime) -> list[dict[str, object]]:
        """Active silences (until > now): dicts with target, until, by, at, reason."""
        async with self._reading() as conn:
            rows = await _rows(
                conn,
                "SELECT target, until, set_by, set_at, reason FROM silences WHERE until > ? ORDER BY target",
                (_ts(now),),
            )
        return [
            {
                "target": str(row["target"]),
                "until": _dt(row["until"]),
                "by": str(row["set_by"]),
                "at": _dt(row["set_at"]),
                "reason": str(row["reason"]),
            }
            for row in rows
        ]

    # fix holds (wt-ops) ------------------------------------------------------------------------------------------

    async def set_fix_hold(self, *, target: str, request_id: str, action: str, until: datetime,
                           verified: bool = False) -> None:
        """Hold `target`'s alerts for the bot's own fix `request_id` until `until` (replaces any hold of the target).
        In the store rather than only in the leader's memory: a new leader keeps holding (bot/monitoring/monitor.py)."""
        async with self._writing() as conn:
            await _exec(
                conn,
                "INSERT INTO fix_holds (target, request_id, action, until, verified, set_at) VALUES (?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (target) DO UPDATE SET request_id = excluded.request_id, action = excluded.action, "
                "until = excluded.until, verified = excluded.verified, set_at = excluded.set_at",
                (target, request_id, action, _ts(until), int(verified), _ts(self._now())),
            )

    async def clear_fix_hold(self, target: str, *, request_id: str) -> bool:
        """Drop the target's hold if it is still the one of `request_id` (a newer fix's hold is left alone)."""
        async with self._writing() as conn:
            return bool(await _exec(conn, "DELETE FROM fix_holds WHERE target = ? AND request_id = ?",
                                    (target, request_id)))

    async def fix_holds(self, *, now: datetime) -> list[dict[str, object]]:
        """Holds still in force (until > now): dicts with target, request_id, action, until, verified. An expired
        row is simply not returned: a hold ends by itself, whoever leads."""
        async with self._reading() as conn:
            rows = await _rows(conn, "SELECT target, request_id, action, until, verified FROM fix_holds "
                                     "WHERE until > ? ORDER BY target", (_ts(now),))
        return [{"target": str(r["target"]), "request_id": str(r["request_id"]), "action": str(r["action"]),
                 "until": _dt(r["until"]), "verified": bool(r["verified"])} for r in rows]

    # approval requests -------------------------------------------------------------------------------------------

    async def insert_request(
        self, *, id: str, target: str, action: str, status: str, version: int, expires_at: datetime, data: str
    ) -> None:
        _require_json(data, "data")
        now = _ts(self._now())
        async with self._writing() as conn:
            inserted = await _exec(
                conn,
                "INSERT INTO approval_requests (id, target, action, status, version, expires_at, data, created_at, "
                "updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING",
                (id, target, action, status, version, _ts(expires_at), data, now, now),
            )
            if not inserted:
                raise StoreError(f"approval request {id!r} already exists")

    async def get_request(self, id: str) -> tuple[int, str] | None:
        """(version, JSON) — the version is what a later `update_request` must name as `expected_version`."""
        async with self._reading() as conn:
            row = await _one(conn, "SELECT version, data FROM approval_requests WHERE id = ?", (id,))
        return None if row is None else (int(row["version"]), str(row["data"]))

    async def update_request(self, id: str, *, expected_version: int, new_version: int, status: str, data: str,
                             fenced: bool = False) -> bool:
        """Compare-and-set: applies only if the stored version is still `expected_version`. Two people clicking
        at once both read version N; exactly one update matches, the other gets False (first decision wins).
        `fenced` (the leader starting a fix, wt-ops): also only under this replica's fencing token (`Fenced`
        otherwise), so a deposed leader that wakes up late never starts a fix the new leader may run."""
        if new_version <= expected_version:
            raise ValueError(f"new_version {new_version} must be greater than expected_version {expected_version}")
        _require_json(data, "data")
        async with self._writing() as conn:
            if fenced:
                await self._fenced(conn)
            changed = await _exec(
                conn,
                "UPDATE approval_requests SET version = ?, status = ?, data = ?, updated_at = ? "
                "WHERE id = ? AND version = ?",
                (new_version, status, data, _ts(self._now()), id, expected_version),
            )
        return changed == 1

    async def requests_by_status(self, status: str) -> list[str]:
        """JSON of every request in `status`, oldest first (pending ones for expiry, running ones on startup)."""
        async with self._reading() as conn:
            rows = await _rows(conn, "SELECT data FROM approval_requests WHERE status = ? ORDER BY seq", (status,))
        return [str(row["data"]) for row in rows]

    async def latest_request(self, *, target: str, action: str) -> str | None:
        """JSON of the most recently inserted request for target+action, whatever its status."""
        async with self._reading() as conn:
            row = await _one(
                conn,
                "SELECT data FROM approval_requests WHERE target = ? AND action = ? ORDER BY seq DESC LIMIT 1",
                (target, action),
            )
        return None if row is None else str(row["data"])

    # audit -------------------------------------------------------------------------------------------------------

    async def audit(
        self,
        *,
        kind: str,
        target: str | None,
        actor: str | None,
        request_id: str | None = None,
        data: dict[str, object] | None = None,
        at: datetime,
    ) -> int:
        """Append one audit row and return its id. There is no way to change it afterwards (triggers refuse
        UPDATE, and DELETE outside retention)."""
        text = json.dumps(data or {}, sort_keys=True, ensure_ascii=False, default=_json_default)
        async with self._writing() as conn:
            return await _insert(
                conn,
                "INSERT INTO audit (ts, kind, target, actor, request_id, data) VALUES (?, ?, ?, ?, ?, ?)",
                (_ts(at), kind, target, actor, request_id, text),
            )

    async def audit_entries(self, *, target: str | None = None, limit: int = 20) -> list[dict[str, object]]:
        """Newest first (by append order): dicts with id, ts, kind, target, actor, request_id, data (a dict)."""
        async with self._reading() as conn:
            if target is None:
                rows = await _rows(conn, "SELECT * FROM audit ORDER BY id DESC LIMIT ?", (limit,))
            else:
                rows = await _rows(
                    conn, "SELECT * FROM audit WHERE target = ? ORDER BY id DESC LIMIT ?", (target, limit)
                )
        return [_audit_row(row) for row in rows]

    async def count_executions(self, *, target: str, since: datetime) -> int:
        """Fix runs (distinct requests with an `execution` row) on `target` at or after `since`. Counted in SQL
        over the whole window: a scan of the newest N rows under-counted when refused clicks filled them."""
        async with self._reading() as conn:
            row = await _one(
                conn,
                "SELECT COUNT(DISTINCT request_id) FROM audit WHERE target = ? AND kind = 'execution' AND ts >= ?",
                (target, _ts(since)),
            )
        return int(row[0]) if row is not None else 0

    async def export_audit(self) -> AsyncIterator[dict[str, object]]:
        """Every audit row, oldest first, fetched page by page (keyset on id): memory stays bounded, and no lock
        is held between pages, so the consumer may use the store while iterating."""
        last_id = 0
        while True:
            async with self._reading() as conn:
                rows = await _rows(
                    conn, "SELECT * FROM audit WHERE id > ? ORDER BY id LIMIT ?", (last_id, _EXPORT_PAGE)
                )
            for row in rows:
                yield _audit_row(row)
            if len(rows) < _EXPORT_PAGE:
                return
            last_id = int(rows[-1]["id"])

    # meta + housekeeping -----------------------------------------------------------------------------------------

    async def get_meta(self, key: str) -> str | None:
        async with self._reading() as conn:
            row = await _one(conn, "SELECT value FROM meta WHERE key = ?", (key,))
        return None if row is None else str(row["value"])

    async def set_meta(self, key: str, value: str) -> None:
        async with self._writing() as conn:
            await _exec(
                conn,
                "INSERT INTO meta (key, value, updated_at) VALUES (?, ?, ?) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
                (key, value, _ts(self._now())),
            )

    async def purge(self, *, older_than: datetime, batch: int = 1000) -> dict[str, int]:
        """Retention: delete at most `batch` rows per table that are older than `older_than`, in one transaction,
        and return how many went per table (a count equal to `batch` means: call again).

        Deleted: audit rows (ts), incident_history rows (saved_at; the current state is never deleted), sent or
        failed outbox items (finished_at; except one a still-undelivered item depends on), approval requests not in
        OPEN_REQUEST_STATUSES (updated_at), silences that expired before the cutoff. Pending and uncertain outbox
        items are never deleted. No VACUUM: freed pages are reused by later inserts, so the file stops growing
        at its working-set size without ever rewriting the whole database.
        """
        if batch < 1:
            raise ValueError("batch must be >= 1")
        cutoff = _ts(older_than)
        counts: dict[str, int] = {}
        async with self._writing() as conn:
            await _exec(conn, "DELETE FROM audit_retention")
            await _exec(conn, "INSERT INTO audit_retention (cutoff) VALUES (?)", (cutoff,))
            counts["audit"] = await _exec(
                conn,
                "DELETE FROM audit WHERE id IN (SELECT id FROM audit WHERE ts < ? ORDER BY id LIMIT ?)",
                (cutoff, batch),
            )
            await _exec(conn, "DELETE FROM audit_retention")
            counts["incident_history"] = await _exec(
                conn,
                "DELETE FROM incident_history WHERE id IN "
                "(SELECT id FROM incident_history WHERE saved_at < ? ORDER BY id LIMIT ?)",
                (cutoff, batch),
            )
            counts["outbox"] = await _exec(
                conn,
                """DELETE FROM outbox WHERE id IN (
                       SELECT o.id FROM outbox o
                       WHERE o.status IN ('sent', 'failed') AND o.finished_at < ?
                         AND NOT EXISTS (SELECT 1 FROM outbox c
                                         WHERE c.depends_on = o.id AND c.status IN ('pending', 'uncertain'))
                       ORDER BY o.id LIMIT ?)""",
                (cutoff, batch),
            )
            open_statuses = sorted(OPEN_REQUEST_STATUSES)
            marks = ", ".join("?" for _ in open_statuses)
            counts["requests"] = await _exec(
                conn,
                f"""DELETE FROM approval_requests WHERE seq IN (
                        SELECT seq FROM approval_requests
                        WHERE status NOT IN ({marks}) AND updated_at < ? ORDER BY seq LIMIT ?)""",  # noqa: S608
                (*open_statuses, cutoff, batch),
            )
            counts["silences"] = await _exec(
                conn,
                "DELETE FROM silences WHERE target IN (SELECT target FROM silences WHERE until < ? LIMIT ?)",
                (cutoff, batch),
            )
        return counts
