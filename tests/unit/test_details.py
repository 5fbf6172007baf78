"""The typed details (checks/details.py) read back exactly what `--json` prints, for every captured sandbox mode.

The bot reads these models instead of `details.get(...)`; a field whose name, type or nesting drifted from what a
check writes would silently read as its default ("nothing known"). Replaying every capture catches that, and the
PM2 instance model, which pm2.status builds its entries with, must dump byte-identical JSON."""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
from pydantic import BaseModel

from checks import commands
from checks.details import (
    CertDetails,
    Filesystem,
    HostDiskDetails,
    HostMemoryDetails,
    HttpDetails,
    LogDetails,
    Pm2Details,
    Pm2Instance,
    PortMatchDetails,
    TlsDetails,
)
from checks.models import CheckResult, Status, TargetReport
from checks.parsers.certs import CertFacts
from checks.runner import run_checks
from checks.transport import CommandResult, FunctionTransport
from tests.support.captured import TARGET, Replay, load, replay_transport, route_public_probes
from tests.unit.test_modes_inprocess import EXPECTED

TYPED: dict[str, type[BaseModel]] = {
    "pm2.status": Pm2Details, "port.match": PortMatchDetails, "http.local": HttpDetails, "http.proxy": HttpDetails,
    "ws.local": HttpDetails, "ws.proxy": HttpDetails, "tls.certificate": TlsDetails,
    "host.memory": HostMemoryDetails, "host.disk": HostDiskDetails, "pm2.logs": LogDetails,
}


@pytest.fixture(scope="module")
def reports() -> Iterator[dict[str, TargetReport]]:
    import asyncio

    async def replay_all() -> dict[str, TargetReport]:
        out: dict[str, TargetReport] = {}
        for mode in EXPECTED:
            transport, _ = replay_transport(mode)
            with pytest.MonkeyPatch.context() as patch:
                route_public_probes(patch, lambda t=transport: t)  # type: ignore[misc]
                out[mode] = await run_checks(TARGET.model_copy(update={"probe_timeout": 0.3}), transport)
        # pm2.status's two shapes no capture has: the app not in PM2's list, and a crash loop
        jlist = tuple(commands.pm2(TARGET, "jlist"))
        healthy = json.loads(Replay(load("healthy")).commands[jlist]["stdout"])
        other = [{**healthy[0], "name": "another-app"}]
        young = {**healthy[0]["pm2_env"], "unstable_restarts": 5, "pm_uptime": int(time.time() * 1000) - 10_000}
        looping = [{**healthy[0], "pm2_env": young}]
        for name, jl in (("pm2-other-app", other), ("pm2-crash-loop", looping)):
            fake = Replay(load("healthy"))

            def answer(argv: tuple[str, ...], fake: Replay = fake, out: str = json.dumps(jl)) -> CommandResult:
                return CommandResult(argv, 0, out, "", 1.0) if argv == jlist else fake.run(argv)

            out[name] = await run_checks(TARGET, FunctionTransport(answer), ["pm2.status"])
        return out

    loop = asyncio.new_event_loop()  # a loop of its own: the module-scoped replay runs once, outside any test's
    try:
        yield loop.run_until_complete(replay_all())
    finally:
        loop.close()


def project(value: Any, model: type[BaseModel]) -> dict[str, Any]:
    """The declared fields of `model` in `value` (a details dict), nested models projected the same way."""
    out: dict[str, Any] = {}
    for name, field in model.model_fields.items():
        if name not in value:
            continue
        inner = _model_of(field.annotation)
        item = value[name]
        if inner is not None and isinstance(item, list):
            out[name] = [project(x, inner) for x in item]
        elif inner is not None and isinstance(item, dict):
            out[name] = project(item, inner)
        else:
            out[name] = item
    return out


def _model_of(annotation: Any) -> type[BaseModel] | None:
    for candidate in (Pm2Instance, Filesystem, CertDetails):
        if candidate.__name__ in str(annotation):
            return candidate
    return None


def test_every_typed_field_reads_back_what_json_prints(reports: dict[str, TargetReport]) -> None:
    seen: set[str] = set()
    for mode, report in reports.items():
        for check in report.checks:
            model = TYPED.get(check.id)
            if model is None:
                continue
            typed = model.of(check)  # type: ignore[attr-defined]
            expected = project(json.loads(json.dumps(check.details)), model)
            got = project(typed.model_dump(mode="json", exclude_unset=True), model)
            assert got == expected, (mode, check.id, got, expected)
            if expected:
                seen.add(check.id)
    # every typed check had at least one capture with its fields (else this proves nothing for it)
    assert seen >= set(TYPED) - {"tls.certificate"}, set(TYPED) - seen


def test_every_declared_field_is_a_key_a_check_writes(reports: dict[str, TargetReport]) -> None:
    """Reading ignores unknown keys, so a misspelt field would read as its default forever: every declared field
    must be a key some replayed check wrote (the certificate's against CertFacts, which writes them)."""
    written: dict[type[BaseModel], set[str]] = {}
    for report in reports.values():
        for check in report.checks:
            model = TYPED.get(check.id)
            if model is None:
                continue
            written.setdefault(model, set()).update(check.details)
            for key, inner in (("instances", Pm2Instance), ("filesystems", Filesystem)):
                for entry in check.details.get(key) or []:
                    written.setdefault(inner, set()).update(entry)
    for model in {*TYPED.values(), Pm2Instance, Filesystem} - {TlsDetails}:
        assert set(model.model_fields) <= written.get(model, set()), (model.__name__, written.get(model))
    assert set(CertDetails.model_fields) <= {f.name for f in dataclasses.fields(CertFacts)}
    assert set(TlsDetails.model_fields) == {"cert"}  # tls.py: `details |= {"cert": cert.as_details(), ...}`
    assert Pm2Details.of(reports["pm2-other-app"].result("pm2.status")).known_apps == ("another-app",)
    assert Pm2Details.of(reports["pm2-crash-loop"].result("pm2.status")).crash_loop


def test_pm2_instances_dump_byte_identical(reports: dict[str, TargetReport]) -> None:
    count = 0
    for report in reports.values():
        pm2 = report.result("pm2.status")
        assert pm2 is not None
        for entry in pm2.details.get("instances") or []:
            assert json.dumps(Pm2Instance.model_validate(entry).dump()) == json.dumps(entry)
            count += 1
    assert count >= len(reports) - 3  # most modes have the app in PM2


def test_field_types_survive_the_read(reports: dict[str, TargetReport]) -> None:
    """A pid stays an int, an uptime a float, a port list ints: what the bot compares and does arithmetic on."""
    first = Pm2Details.of(reports["healthy"].result("pm2.status")).first
    assert isinstance(first.pid, int) and first.pid > 0 and first.status == "online"
    assert isinstance(first.uptime_s, float) and first.pm_id is not None
    ports = PortMatchDetails.of(reports["port-mismatch"].result("port.match"))
    assert ports.side == "app" and ports.app_ports and all(isinstance(p, int) for p in ports.app_ports)
    memory = HostMemoryDetails.of(reports["healthy"].result("host.memory"))
    assert isinstance(memory.mem_available_mb, int)
    assert HttpDetails.of(reports["app-hung"].result("http.local")).no_answer


def test_what_does_not_fit_reads_as_nothing_known() -> None:
    """An `error` result, a missing check or a foreign shape: the defaults, never an exception in the monitor."""
    error = CheckResult(id="pm2.status", status=Status.ERROR, summary="x", details={"see": "pm2.status"})
    assert Pm2Details.of(error) == Pm2Details() and Pm2Details.of(None).first == Pm2Instance()
    odd = CheckResult(id="pm2.status", status=Status.OK, summary="x", details={"instances": "not a list"})
    assert Pm2Details.of(odd).instances == ()
    assert PortMatchDetails.of(CheckResult(id="port.match", status=Status.OK, summary="x",
                                           details={"app_ports": [3000, 3001]})).app_ports == (3000, 3001)
