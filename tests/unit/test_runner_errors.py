"""A check that crashes is one log line and an `error` result: never a traceback (issue 9 part 4)."""

from __future__ import annotations

import logging

import pytest

from checks import runner
from checks.config import Target
from checks.facts import Facts
from checks.items import CHECK_FUNCTIONS
from checks.items.base import Outcome
from checks.models import Status
from checks.transport.local import LocalTransport

TARGET = Target.model_validate({"name": "web", "pm2_app": "kathario-saas", "app_port": 3003,
                                "app_dir": "/root/kathario-saas"})


async def test_a_crashing_check_is_one_log_line_and_an_error(monkeypatch: pytest.MonkeyPatch,
                                                             caplog: pytest.LogCaptureFixture) -> None:
    async def crashing(facts: Facts) -> Outcome:
        raise ValueError("Passphrase must be specified to import encrypted private keys")

    monkeypatch.setitem(CHECK_FUNCTIONS, "nginx.syntax", crashing)
    facts = Facts(TARGET, LocalTransport(), ["nginx.syntax"])
    with caplog.at_level(logging.DEBUG, logger="checks.runner"):
        result = await runner._run_one("nginx.syntax", facts, 5.0)
    await facts.cancel()
    assert result.status is Status.ERROR
    assert result.details["error_kind"] == "internal"
    # the library's words stay in details, the summary speaks ours
    assert "Passphrase" not in result.summary and "ValueError" in result.summary
    assert "Passphrase must be specified" in str(result.details["library_error"])
    records = [r for r in caplog.records if r.name == "checks.runner"]
    assert len(records) == 1 and records[0].exc_info is None
    assert "\n" not in records[0].getMessage()
