"""Typed models of the check details that the bot reads (issue 10, item 2).

A check result's `details` stays a plain dict: it is what `--json` prints, key order included, and each check
builds it its own way (some keys only in some branches, in the order the branch adds them). These models are the
declared shape of the keys the bot acts on, so `bot/` reads typed fields (`Pm2Details.of(report).instances[0].pid`)
instead of `details.get("instances")` with `isinstance` guards at every use.

- `pm2.status` builds its `instances` entries through `Pm2Instance.dump()`: one declared order for every branch
  (the other checks' details vary in key order by branch, so their models are read-side only; `--json` was checked
  byte-identical over every captured mode, time frozen, before and after).
- `Model.of(result)` validates a result's details leniently: unknown keys are ignored (the checks keep more than the
  bot reads), and details that do not fit (an `error` result's `{"see": …}`, a shape from another version) give the
  empty model, whose defaults say "nothing known" — what the `isinstance` guards said before.
- tests/unit/test_details.py replays every captured sandbox mode and checks that each declared field reads back
  exactly the value (and type) that `--json` prints, and that `Pm2Instance.dump()` is byte-identical to it.

Pure: pydantic only (no I/O), so the pure `bot/` modules may import it.
"""

from __future__ import annotations

from typing import Any, Self

from pydantic import BaseModel, ConfigDict, ValidationError


class _Details(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    @classmethod
    def of(cls, result: Any) -> Self:
        """The typed details of a `CheckResult` (or of None: a check that did not run says nothing)."""
        details = getattr(result, "details", None)
        if not isinstance(details, dict):
            return cls()
        try:
            return cls.model_validate(details)
        except ValidationError:
            return cls()


class Pm2Instance(_Details):
    """One PM2 process of the target's app, as pm2.status describes it (checks/items/pm2.py builds it with this
    model, so unknown keys are refused: a misspelt keyword there fails instead of dropping a `--json` key)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    pm_id: int | None = None
    status: str = ""
    pid: int = 0
    restarts: int = 0
    unstable_restarts: int = 0
    #: Seconds since PM2 (re)started it; None unless it is online.
    uptime_s: float | None = None
    mode: str = ""
    #: The start command (script and arguments), for the `fix-port` gate.
    exec: str = ""
    #: PORT in the process's environment, as PM2 reports it.
    port_env: str | None = None

    def dump(self) -> dict[str, Any]:
        """The `--json` form: every field, in the declared order."""
        return self.model_dump()


class Pm2Details(_Details):
    """pm2.status: the app's instances, or (app not in PM2's list) the names PM2 does know."""

    instances: tuple[Pm2Instance, ...] = ()
    #: Set only when the app is not in `pm2 jlist` (the names it does list, maybe none).
    known_apps: tuple[str, ...] | None = None
    crash_loop: bool = False
    #: Some instances are online and others are not, or crash-loop (a warning: the app still serves).
    partial: bool = False
    #: With `partial`: the pm_id of the instance that does not serve.
    culprit: int | None = None
    #: With `partial`: every instance is in fork mode, so the app was started more than once (one port, one holder).
    duplicates: bool = False

    @property
    def first(self) -> Pm2Instance:
        """The first instance, or an empty one (no pid, no restarts, status "")."""
        return self.instances[0] if self.instances else Pm2Instance()


class PortMatchDetails(_Details):
    """port.match: where nginx's port and the app's disagree (checks/items/ports.py)."""

    #: "app" (the app listens elsewhere), "nginx", "config", "both", "address"; None when they agree.
    side: str | None = None
    app_ports: tuple[int, ...] = ()
    port_env: str | None = None


class HttpDetails(_Details):
    """http.local / http.proxy / ws.local / ws.proxy (checks/items/web.py)."""

    url: str = ""
    #: The connection was refused (for http.proxy: nginx itself is not listening).
    refused: bool = False
    #: The peer accepted and stayed silent past the probe timeout.
    no_answer: bool = False
    status: int | None = None


class CertDetails(_Details):
    """The served certificate's facts that the bot uses (checks/parsers/certs.py CertFacts.as_details)."""

    serial: str = ""


class TlsDetails(_Details):
    """tls.certificate (checks/items/tls.py)."""

    cert: CertDetails | None = None


class HostMemoryDetails(_Details):
    """host.memory (checks/items/host.py); None = not read."""

    mem_available_mb: int | None = None
    swap_free_mb: int = 0


class Filesystem(_Details):
    mount: str = ""
    available_mb: int = 0
    #: What lives there: "app_dir", "pm2_logs", "nginx_logs".
    holds: tuple[str, ...] = ()


class HostDiskDetails(_Details):
    """host.disk (checks/items/host.py)."""

    filesystems: tuple[Filesystem, ...] = ()


class LogDetails(_Details):
    """The log lines a failing check quotes (pm2.logs), shown under the report by the fronts."""

    error_lines: tuple[str, ...] = ()
