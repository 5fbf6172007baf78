"""Scan recent PM2 log lines for errors and for the known problems wscheck can name.

Input is either a raw tail of PM2's log files (`~/.pm2/logs/<app>-error.log`) or the output of
`pm2 logs <app> --nostream`, so the decorations of both are removed: ANSI colours, PM2's `--time` timestamp
(`2026-11-26T14:25:04: `), the `0|app | ` prefix and the `[TAILING]` / `... last N lines:` headers.

Known problems map the field note's root causes to stable ids the diagnosis layer keys on: a missing
production build (`next start` without `.next/BUILD_ID`), a port already in use, and the crash causes that
keep PM2 restarting. Every kept line is redacted: logs are the likeliest place for a secret to surface.
"""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict

from checks.redact import redact

MAX_LINE = 300

_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[@-Z\\-_]")
_PM2_HEADER = re.compile(r"^\s*(?:\[TAILING\]|\S+\.log last \d+ lines:\s*$)")
# `0|kathario | ` (pm2 logs; the name is padded or cut to 8) and `PM2        | ` (the daemon's own log).
_PM2_PREFIX = re.compile(r"^(?:\d+\|[^|]{0,64}?|PM2\s*)\s\|\s?")
# PM2's `--time` prefix and common `log_date_format`s:
# `2026-11-26T14:25:04: `, `2026-11-26 14:25:04 +00:00: `.
_TIMESTAMP = re.compile(
    r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(?::\d{2}(?:[.,]\d+)?)?(?:\s?(?:Z|[+-]\d{2}:?\d{2}))?:\s?", re.ASCII
)

# What makes a line of the *out* log an error line (everything in the error log counts).
_ERROR_HINT = re.compile(
    r"Error\b|\bERROR\b|ERR!|^npm error\b|\bFATAL\b|Unhandled|\bUncaught\b|\bexception\b|Exception\b|"
    r"\bE(?:ADDRINUSE|ADDRNOTAVAIL|CONNREFUSED|CONNRESET|ACCES|NOENT|NOMEM|PIPE|TIMEDOUT|MFILE)\b|"
    r"Could not find a (?:production|valid) build|Cannot find module|Module not found|out of memory|"
    r"Failed to (?:start|compile|load)|⨯",
)

_KNOWN: tuple[tuple[str, re.Pattern[str]], ...] = (
    (
        "no_production_build",
        re.compile(
            r"Could not find a (?:production|valid) build in the|"
            r"ENOENT: no such file or directory, open '[^']*\.next[/\\]BUILD_ID'|"
            r"production-start-no-build-id",
            re.IGNORECASE,
        ),
    ),
    ("eaddrinuse", re.compile(r"EADDRINUSE|address already in use", re.IGNORECASE)),
    (
        "module_not_found",
        re.compile(
            r"Cannot find module|MODULE_NOT_FOUND|Module not found|Cannot find package", re.IGNORECASE
        ),
    ),
    (
        "out_of_memory",
        re.compile(
            r"JavaScript heap out of memory|Reached heap limit|FATAL ERROR: .*Allocation failed|"
            r"\bout of memory\b|\bOOM(?:-| )?kill",
            re.IGNORECASE,
        ),
    ),
    ("econnrefused", re.compile(r"ECONNREFUSED")),
    (
        "unhandled_rejection",
        re.compile(r"unhandled ?(?:promise ?)?rejection|ERR_UNHANDLED_REJECTION", re.IGNORECASE),
    ),
)
# `address already in use :::3003`, `127.0.0.1:3003`, `0.0.0.0:3003`.
_EADDRINUSE_PORT = re.compile(r"address already in use\s+\S{0,64}?:(\d{1,5})\b", re.IGNORECASE | re.ASCII)
# Classification looks at the start of a line only: a minified bundle can log megabytes on one line.
_SCAN_CHARS = 4096


class LogScan(BaseModel):
    """What a log tail says: error lines for a human, known-problem ids and busy ports for the diagnosis."""

    model_config = ConfigDict(frozen=True)

    error_lines: tuple[str, ...] = ()
    known: tuple[str, ...] = ()
    eaddrinuse_ports: tuple[int, ...] = ()


def _clean_line(line: str) -> str | None:
    """A log line without colours, PM2 prefix and timestamp; None for PM2's own `pm2 logs` headers."""
    line = _ANSI.sub("", line).replace("\r", "")
    if _PM2_HEADER.match(line):
        return None
    line = _PM2_PREFIX.sub("", line, count=1)
    return _TIMESTAMP.sub("", line, count=1)


def _shorten(line: str) -> str:
    line = redact(line.rstrip())
    return line if len(line) <= MAX_LINE else line[: MAX_LINE - 1] + "…"


def scan_log(text: str, *, limit: int = 20, from_error_log: bool = True) -> LogScan:
    """Scan a log tail (oldest first, as files and `pm2 logs` print it).

    From an error log every non-blank line is an error line; from an out log only lines that look like
    errors. Known ids and ports are collected from every line of either log, in order of first appearance.
    Lines are redacted and cut to 300 characters; at most `limit` lines are kept, the newest.
    """
    errors: list[str] = []
    known: list[str] = []
    ports: list[int] = []
    for raw in text.splitlines():
        line = _clean_line(raw[: _SCAN_CHARS * 2])
        if line is None or not line.strip():
            continue
        head = line[:_SCAN_CHARS]
        for ident, pattern in _KNOWN:
            if ident not in known and pattern.search(head):
                known.append(ident)
        for match in _EADDRINUSE_PORT.finditer(head):
            port = int(match.group(1))
            if 0 < port <= 65535 and port not in ports:
                ports.append(port)
        if from_error_log or _ERROR_HINT.search(head):
            errors.append(line)
    kept = errors[-limit:] if limit > 0 else []
    return LogScan(
        error_lines=tuple(_shorten(line) for line in kept), known=tuple(known), eaddrinuse_ports=tuple(ports)
    )
