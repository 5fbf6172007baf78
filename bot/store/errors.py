"""The store's exceptions (callers catch these; the drivers' own errors never leave the package)."""

from __future__ import annotations


class StoreError(Exception):
    """Anything the store cannot do: a newer schema, a failed migration, an unknown id, database errors. Its text
    names the database by its redacted URL: never a password."""


class StoreLocked(StoreError):
    """Another live process holds the database (a second bot would double-post every alert)."""


class StoreUnavailable(StoreError):
    """The PostgreSQL server could not be reached (network, server down): transient, unlike a bad URL or schema."""


class Fenced(StoreError):
    """A leader-only write refused: this replica's fencing token is not the lease's any more (bot/ha/leader.py)."""
