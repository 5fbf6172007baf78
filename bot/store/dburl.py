"""`WSCHECK_DB`: which database, on which engine, and how to name it without its secrets.

Accepted values (parsed once, in settings; everything else gets the engine from here):

* a plain path (`wscheck.db`, `/var/lib/wscheck/wscheck.db`, `~/wscheck.db`): SQLite, the default;
* `sqlite:///relative/path.db` or `sqlite:////absolute/path.db`: SQLite, in the URL form every other tool
  (SQLAlchemy, dj-database-url) uses, three slashes then the path, so an absolute path has four;
* `postgresql://user:password@host:port/dbname?sslmode=require` (or `postgres://`): PostgreSQL, any libpq
  URL that asyncpg understands.

Why a type of its own and not a string: the PostgreSQL URL usually carries a password. The only way to make sure it
never reaches a log line, an error, /healthz or Slack is that the object everyone passes around *cannot* print it:
`str()` and `repr()` give the redacted form (`postgresql://wscheck:***@db:5432/wscheck`), and only the store asks
for the real one (`secret_dsn()`), at the moment it connects. `scrub()` removes it from driver error text too.

No driver import and no I/O beyond one stat (is a plain path a directory?): settings import it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit

__all__ = ["DEFAULT_DB", "DatabaseURL", "parse_db_url"]

Engine = Literal["sqlite", "postgresql"]

REDACTED = "***"
#: Query parameters of a libpq URL whose value is a secret.
_SECRET_PARAMS = frozenset({"password", "sslpassword"})
_HINT = "use a SQLite path (/var/lib/wscheck/wscheck.db), sqlite:///relative.db, or postgresql://user@host/dbname"


@dataclass(frozen=True, repr=False, eq=False)
class DatabaseURL:
    """A parsed `WSCHECK_DB`. Printing it never shows a password; compare with `==` on the redacted form + path."""

    engine: Engine
    redacted: str
    path: Path | None = None
    """The SQLite file (None for PostgreSQL)."""
    _dsn: str = field(default="", repr=False)
    _secrets: tuple[str, ...] = field(default=(), repr=False)

    def __str__(self) -> str:
        return self.redacted

    def __repr__(self) -> str:
        return f"DatabaseURL({self.redacted!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, DatabaseURL) and (self.engine, self._dsn, self.path) == (
            other.engine, other._dsn, other.path)

    def __hash__(self) -> int:
        return hash((self.engine, self._dsn, self.path))

    def secret_dsn(self) -> str:
        """The full PostgreSQL URL, password included: for the driver's connect call only, never for text."""
        return self._dsn

    def scrub(self, text: str) -> str:
        """`text` with every form of this URL's secrets replaced: for driver errors that might echo them."""
        for secret in self._secrets:
            text = text.replace(secret, REDACTED)
        return text


def _sqlite(path_text: str, shown: str) -> DatabaseURL:
    path = Path(path_text).expanduser()
    if not path_text.strip() or path_text.strip() in (".", "/") or path.is_dir():
        raise ValueError(f"{shown!r} is not the path of a SQLite file: {_HINT}")
    return DatabaseURL(engine="sqlite", redacted=str(path), path=path)


def _postgresql(text: str) -> DatabaseURL:
    parts = urlsplit(text)
    secrets: list[str] = []
    if parts.password:
        secrets += [parts.password, unquote(parts.password)]
    query = parse_qsl(parts.query, keep_blank_values=True)
    for key, value in query:
        if key in _SECRET_PARAMS and value:
            secrets += [value, quote(value, safe=""), quote(value)]
    netloc = parts.netloc.rpartition("@")[2]
    if parts.username is not None:
        user = parts.netloc.rpartition("@")[0].partition(":")[0]
        netloc = f"{user}:{REDACTED}@{netloc}" if parts.password is not None else f"{user}@{netloc}"
    shown_query = urlencode([(k, REDACTED if k in _SECRET_PARAMS else v) for k, v in query], safe="/:,*")
    redacted = f"postgresql://{netloc}{parts.path}" + (f"?{shown_query}" if shown_query else "")
    scrubbed = tuple(sorted({s for s in secrets if s}, key=len, reverse=True))
    try:
        _ = parts.port  # raises ValueError on a non-numeric or out-of-range port
    except ValueError:
        raise ValueError(f"{redacted!r}: the port must be a number from 1 to 65535") from None
    if parts.fragment:
        raise ValueError(f"{redacted!r}: a PostgreSQL URL has no #fragment")
    if parts.path.count("/") > 1:
        raise ValueError(f"{redacted!r}: the path must be just /dbname")
    return DatabaseURL(engine="postgresql", redacted=redacted, _dsn=text, _secrets=scrubbed)


def parse_db_url(value: object) -> DatabaseURL:
    """`WSCHECK_DB` -> DatabaseURL, or ValueError with a message that names no secret."""
    if isinstance(value, DatabaseURL):
        return value
    if isinstance(value, Path):
        return _sqlite(str(value), str(value))
    if not isinstance(value, str):
        raise ValueError(f"must be text: {_HINT}")
    text = value.strip()
    if "://" not in text:
        return _sqlite(text, text)
    scheme = text.partition("://")[0].lower()
    if scheme in ("postgresql", "postgres"):
        return _postgresql(text)
    if scheme == "sqlite":
        rest = text.partition("://")[2]
        if not rest.startswith("/"):
            raise ValueError(f"{text!r}: a sqlite URL has no host: sqlite:///relative.db or sqlite:////absolute.db")
        path_text = rest[1:]
        if "?" in path_text or "#" in path_text:
            raise ValueError(f"{text!r}: a sqlite URL takes no ?options or #fragment")
        return _sqlite(unquote(path_text), text)
    # Never echo the value: an unknown scheme may still carry user:password@.
    shown = scheme if scheme.isascii() and scheme.replace("+", "").isalnum() else "?"
    raise ValueError(f"unsupported database scheme {shown!r}: {_HINT}")


DEFAULT_DB = parse_db_url("wscheck.db")
