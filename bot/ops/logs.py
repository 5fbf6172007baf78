"""Logging: one event per line on stderr, text or JSON, with secrets redacted on the way out."""

from __future__ import annotations

import json
import logging
import os
import sys
import warnings
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from checks.redact import redact

if TYPE_CHECKING:  # the CLI sets up logging before anything heavy (pydantic) is imported
    from bot.settings import Settings


class RedactingFilter(logging.Filter):
    """Tokens, passwords and URL credentials never reach a log line, whoever logged them."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = redact(message)
        if record.exc_info:
            text = logging.Formatter().formatException(record.exc_info)
            record.exc_text = redact(text)
        if clean != message or record.args:
            record.msg, record.args = clean, None
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        data = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key in ("target", "check", "incident", "request_id", "event"):
            value = getattr(record, key, None)
            if value is not None:
                data[key] = value
        if record.exc_text:
            data["exc"] = record.exc_text
        return json.dumps(data, ensure_ascii=False)


class OneLineWarning(logging.Filter):
    """`logging.captureWarnings` logs `warnings.formatwarning`'s text: "file:line: Category: message" plus the
    source line on a second line. One event is one line, so the source line goes."""

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage().strip()
        first = text.splitlines()[0] if text else text
        record.msg, record.args = first, None
        return True


def quiet_known_warnings() -> None:
    """Ignore the deprecations we know are harmless, narrowly (category and module), and nothing else.

    asyncssh still names `cryptography`'s DSA classes (it supports ssh-dss keys), so importing it under
    cryptography >= 47 raises CryptographyDeprecationWarning, ten times, from asyncssh's own modules. The same
    category from anywhere else, or any other warning from asyncssh, still reaches the log.
    """
    try:
        from cryptography.utils import CryptographyDeprecationWarning
    except ImportError:  # pragma: no cover - cryptography comes with asyncssh
        return
    warnings.filterwarnings("ignore", category=CryptographyDeprecationWarning, module=r"asyncssh(\.|$)")


def _handler(log_format: str) -> logging.Handler:
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(RedactingFilter())
    if log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    return handler


def capture_warnings() -> None:
    """Python warnings become log records (logger `py.warnings`), one line each, instead of raw stderr text."""
    quiet_known_warnings()
    logging.captureWarnings(True)
    captured = logging.getLogger("py.warnings")
    if not any(isinstance(f, OneLineWarning) for f in captured.filters):
        captured.addFilter(OneLineWarning())


def setup_early_logging() -> None:
    """Before any heavy import: a stderr handler in the format WSCHECK_LOG_FORMAT asks for, and warnings routed
    through it, so what a library says while being imported (asyncssh, cryptography) is a log line too.
    `setup_logging` replaces the handler once the settings (which may set the format in the config) are read."""
    fmt = "json" if os.environ.get("WSCHECK_LOG_FORMAT", "").strip().lower() == "json" else "text"
    root = logging.getLogger()
    # Only our own earlier handler is replaced: a host program's (pytest's capture, say) stays.
    root.handlers[:] = [h for h in root.handlers if not getattr(h, "wscheck_early", False)]
    handler = _handler(fmt)
    handler.wscheck_early = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(logging.WARNING)
    capture_warnings()


def setup_logging(settings: Settings) -> None:
    capture_warnings()
    handler = _handler(settings.log_format)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    level = settings.log_level.upper()
    # debug is for wscheck's own story; libraries' debug output (every SQL statement, every frame) drowns it.
    root.setLevel(max(logging.INFO, logging.getLevelName(level)))
    for ours in ("bot", "checks", "wscheck"):
        logging.getLogger(ours).setLevel(level)
    for noisy in ("slack_bolt", "slack_sdk", "asyncssh", "aiohttp.access"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
    # A skipped run ("maximum number of running instances reached") is the max_instances=1 + coalesce
    # policy working as intended for a slow target, not news.
    logging.getLogger("apscheduler").setLevel(max(logging.ERROR, root.level))
