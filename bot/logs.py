"""Logging: one event per line on stderr, text or JSON, with secrets redacted on the way out."""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime

from bot.settings import Settings
from checks.redact import redact


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


def setup_logging(settings: Settings) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(RedactingFilter())
    if settings.log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
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
