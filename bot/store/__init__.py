"""Persistence (SQLite or PostgreSQL) and the outbox drainer. The rules are in bot/store/db.py's docstring.

The public names are re-exported here, so `from bot.store import Store, MIGRATIONS, StoreError` is the one import
callers need; bot.store.outbox, bot.store.dburl and bot.store.backends are imported by their own names.
"""

from bot.store.db import Store, Tx, lock_path_for
from bot.store.errors import Fenced, StoreError, StoreLocked, StoreUnavailable
from bot.store.migrations import MIGRATIONS, Migration
from bot.store.rows import OPEN_REQUEST_STATUSES, OutboxItem, OutboxStatus

__all__ = [
    "MIGRATIONS",
    "OPEN_REQUEST_STATUSES",
    "Fenced",
    "Migration",
    "OutboxItem",
    "OutboxStatus",
    "Store",
    "StoreError",
    "StoreLocked",
    "StoreUnavailable",
    "Tx",
    "lock_path_for",
]
