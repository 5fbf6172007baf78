"""Targets configuration: the `[[targets]]` tables of wscheck.toml, validated with pydantic.

Every string that ends up in a command on the target (app name, paths, binaries, users) is checked
against a strict pattern here, at load time, so a typo or a hostile config fails loudly before anything
runs. Commands are argv lists and the SSH transport quotes every word anyway; the patterns are the
second wall, and they keep fix commands shown to humans copy-pasteable.

Errors are `ConfigError`s whose message names the file, the target and the field, never a traceback.
"""

from __future__ import annotations

import difflib
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    ValidationError,
    field_validator,
    model_validator,
)

from checks.messages import msg
from checks.registry import RESERVED_WORDS

LOCAL_HOSTS = frozenset({"", "local"})
#: Socket.IO's default `path` (wt-sio): ws_path when ws_protocol = "socket.io" and ws_path is not given.
SOCKETIO_PATH = "/socket.io/"

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")
_PM2_APP_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,99}$")
_USER_RE = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_HOST_RE = re.compile(rf"^{_LABEL}(?:\.{_LABEL})*$")
_IPV6_RE = re.compile(r"^[0-9A-Fa-f:.]+$")
_ABS_PATH_RE = re.compile(r"^/[A-Za-z0-9_./+@-]*$")
_BIN_RE = re.compile(r"^(?:/[A-Za-z0-9_./+@-]+|[A-Za-z0-9_.+-]+)$")
#: A word of `nginx_reload` (deploy/target/setup-target.sh RE_WORD is the same text: tests/unit/test_sudoers_match.py).
_RELOAD_WORD_RE = re.compile(r"^[A-Za-z0-9_./=:+@-]+$")
_URL_PATH_RE = re.compile(r"^/[A-Za-z0-9._~!$&'()*+,;=:@%/?-]*$")
_CHANNEL_RE = re.compile(r"^[CG][A-Z0-9]{4,20}$")
_MENTION_RE = re.compile(r"^(?:[UWS][A-Z0-9]{2,20}|here|channel)$")
_APPROVER_RE = re.compile(r"^[UWS][A-Z0-9]{2,20}$")


class ConfigError(Exception):
    """A problem with the configuration; the message is meant for a human, one line per problem."""

    def lines(self) -> str:
        """What `wscheck config` (exit 3) and `wscheck run` (exit 78) print: `wscheck: ` before each problem."""
        return "\n".join(f"wscheck: {line}" for line in str(self).splitlines())


_DURATION_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNIT = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}


def parse_duration(value: Any) -> float:
    """Seconds from `30`, `30s`, `5m`, `1h`, `2d` or `250ms` (plain numbers are seconds)."""
    if isinstance(value, bool):
        raise ValueError("expected a duration like 30, 30s, 5m or 1h")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str) and (m := _DURATION_RE.match(value)):
        seconds = float(m.group(1)) * _UNIT[m.group(2)]
    else:
        raise ValueError(f"{value!r} is not a duration (use seconds, or 30s / 5m / 1h)")
    if seconds < 0:
        raise ValueError("a duration cannot be negative")
    return seconds


def _positive(seconds: float) -> float:
    """0 would make a timeout fire at once or an interval spin: refused where it has no meaning."""
    if seconds <= 0:
        raise ValueError("must be more than 0 (use seconds, or 30s / 5m / 1h)")
    return seconds


#: A duration that must be > 0 (timeouts, intervals, windows): `0` is refused, naming the key.
Duration = Annotated[float, BeforeValidator(parse_duration), AfterValidator(_positive)]
#: A duration where 0 means something (e.g. `jitter = 0`: no random delay).
DurationOrZero = Annotated[float, BeforeValidator(parse_duration)]


def _check(pattern: re.Pattern[str], what: str) -> Any:
    def validate(value: str) -> str:
        if not pattern.fullmatch(value):
            raise ValueError(f"{value!r} is not a valid {what} (allowed: {pattern.pattern})")
        return value

    return validate


def slack_channel(value: str) -> str:
    """A Slack channel ID (alerts go to IDs: names change, IDs do not). Shared with bot settings."""
    if value and not _CHANNEL_RE.fullmatch(value):
        raise ValueError(f"{value!r} is not a Slack channel ID like C0123ABCD (channel details > About)")
    return value


def slack_mention(value: str) -> str:
    if value and not _MENTION_RE.fullmatch(value):
        raise ValueError(f"{value!r} is not a Slack user ID (U…), user-group ID (S…), 'here' or 'channel'")
    return value


def slack_approver(value: str) -> str:
    if not _APPROVER_RE.fullmatch(value):
        raise ValueError(f"{value!r} is not a Slack user ID (U…/W…) or user-group ID (S…)")
    return value


def _optional_abs_path(value: str) -> str:
    if value and not _ABS_PATH_RE.fullmatch(value):
        raise ValueError(f"{value!r} must be an absolute path of plain characters (letters, digits, _ . / + @ -)")
    return value


class Target(BaseModel):
    """One server running Nginx -> PM2 -> Next.js, and how to reach it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Annotated[str, BeforeValidator(str)]
    host: str = "local"
    port: int = Field(default=22, ge=1, le=65535)
    user: str = ""
    identity_file: str = ""
    known_hosts: str = "~/.ssh/known_hosts"
    pm2_app: str
    app_port: int = Field(ge=1, le=65535)
    app_dir: str
    public_url: str = ""
    ws_path: str = "/ws"
    http_path: str = "/"
    pm2_bin: str = "pm2"
    pm2_home: str = ""
    pm2_user: str = ""
    nginx_bin: str = "nginx"
    nginx_conf: str = ""
    nginx_reload: tuple[str, ...] = ()
    sudo: StrictBool = False
    #: wt-modes: read the kernel log (OOM kills) as `sudo -n dmesg` (setup-target.sh --kernel-log allows exactly that),
    #: where dmesg_restrict keeps it from the login user and no journal group helps. Independent of `sudo`.
    kernel_log_sudo: StrictBool = False
    connect_timeout: Duration = 5.0
    command_timeout: Duration = 10.0
    check_timeout: Duration = 20.0
    #: A probe (HTTP, WebSocket, Engine.IO, TLS handshake) must answer within this; a hung app is a failure, not an
    #: endless wait. A setting, not a constant, so a slow-rendering app can be given more and the in-process replay
    #: of a silent app (tests/unit/test_modes_inprocess.py) need not wait the production 5 s.
    probe_timeout: Duration = 5.0
    log_lines: int = Field(default=200, ge=10, le=5000)
    alert_channel: str = ""
    alert_mention: str = ""
    approvers: tuple[str, ...] = ()
    # wt-tls: TLS of an https public_url
    #: PEM file of a private CA the bot trusts for public_url (besides the system store / SSL_CERT_FILE).
    ca_file: str = ""
    #: Warn this many days before the served certificate expires; None = the bot setting (default 14).
    tls_expiry_warning: int | None = Field(default=None, ge=0, le=365)
    # wt-sio: Socket.IO
    #: "socket.io": the WebSocket probes and the canary speak Engine.IO v4 on ws_path (default `/socket.io/`).
    ws_protocol: Literal["websocket", "socket.io"] = "websocket"
    # wt-host2: host resources (checks/items/host.py) and the rebuild gate (bot/remediation/actions.py)
    #: host.disk warns at this use % of the file systems of app_dir, the PM2 logs and nginx's logs, fails at the next.
    disk_warn_percent: int = Field(default=90, ge=1, le=100)
    disk_fail_percent: int = Field(default=98, ge=1, le=100)
    #: The `rebuild` action refuses to start with less than this MemAvailable + SwapFree, or free disk at app_dir.
    rebuild_min_memory_mb: int = Field(default=768, ge=0, le=1_048_576)
    rebuild_min_disk_mb: int = Field(default=1024, ge=0, le=1_048_576)

    _v_name = field_validator("name")(_check(_NAME_RE, "target name"))
    _v_app = field_validator("pm2_app")(_check(_PM2_APP_RE, "PM2 app name"))
    _v_app_dir = field_validator("app_dir")(_check(_ABS_PATH_RE, "absolute path"))
    _v_bins = field_validator("pm2_bin", "nginx_bin")(_check(_BIN_RE, "binary (a bare name or an absolute path)"))
    _v_paths = field_validator("pm2_home", "nginx_conf", "ca_file")(_optional_abs_path)
    _v_paths_url = field_validator("ws_path", "http_path")(_check(_URL_PATH_RE, "URL path starting with /"))

    @field_validator("name")
    @classmethod
    def _not_reserved(cls, value: str) -> str:
        if value.lower() in RESERVED_WORDS:
            raise ValueError(
                f"{value!r} is a /wscheck keyword or check name; pick another target name "
                f"(reserved: {', '.join(sorted(RESERVED_WORDS))})"
            )
        return value

    @field_validator("user", "pm2_user")
    @classmethod
    def _user(cls, value: str) -> str:
        if value and not _USER_RE.fullmatch(value):
            raise ValueError(f"{value!r} is not a valid user name")
        return value

    @field_validator("host")
    @classmethod
    def _host(cls, value: str) -> str:
        value = value.strip()
        if value in LOCAL_HOSTS:
            return "local"
        if _HOST_RE.fullmatch(value) or (":" in value and _IPV6_RE.fullmatch(value)):
            return value
        raise ValueError(f"{value!r} is not a host name or IP address (or \"local\")")

    @field_validator("nginx_reload")
    @classmethod
    def _reload(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for word in value:
            if not _RELOAD_WORD_RE.fullmatch(word):
                raise ValueError(f"nginx_reload word {word!r} has characters outside [A-Za-z0-9_./=:+@-]")
        if value and not _BIN_RE.fullmatch(value[0]):
            raise ValueError("nginx_reload must start with a binary name or absolute path")
        return value

    _v_channel = field_validator("alert_channel")(slack_channel)
    _v_mention = field_validator("alert_mention")(slack_mention)

    @field_validator("approvers")
    @classmethod
    def _approvers(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(slack_approver(who) for who in value)

    @field_validator("public_url")
    @classmethod
    def _url(cls, value: str) -> str:
        if not value:
            return value
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"{value!r} must be an http:// or https:// URL with a host")
        if parts.username or parts.password:
            raise ValueError("public_url must not carry credentials")
        return value

    @model_validator(mode="after")
    def _derived(self) -> Target:
        if self.ws_protocol == "socket.io" and "ws_path" not in self.model_fields_set:
            object.__setattr__(self, "ws_path", SOCKETIO_PATH)
        if not self.public_url:
            host = "127.0.0.1" if self.is_local else (f"[{self.host}]" if ":" in self.host else self.host)
            object.__setattr__(self, "public_url", f"http://{host}/")
        if self.probe_timeout >= self.check_timeout:
            # a probe still waiting when its check is cut off would say `error` (timeout), never "no answer"
            raise ValueError(f"probe_timeout ({self.probe_timeout:g}s) must be less than check_timeout "
                             f"({self.check_timeout:g}s)")
        return self

    @property
    def is_local(self) -> bool:
        return self.host == "local"

    @property
    def where(self) -> str:
        """Human description of where commands run, for reports."""
        if self.is_local:
            return msg("config.this_machine").en
        user = f"{self.user}@" if self.user else ""
        port = f":{self.port}" if self.port != 22 else ""
        return f"{user}{self.host}{port}"

    def public_endpoint(self) -> tuple[str, str, int]:
        """(scheme, host, port) of public_url."""
        parts = urlsplit(self.public_url)
        scheme = parts.scheme
        port = parts.port or (443 if scheme == "https" else 80)
        return scheme, parts.hostname or "", port

    def public_join(self, path: str) -> str:
        """public_url with `path` replacing its path (public_url's own path is a prefix)."""
        parts = urlsplit(self.public_url)
        base = parts.path.rstrip("/")
        netloc = parts.netloc
        return f"{parts.scheme}://{netloc}{base}{path}"

    def masked(self) -> dict[str, Any]:
        """The resolved target for `wscheck config`: nothing secret, key paths shown, not contents."""
        data = self.model_dump()
        data["nginx_reload"] = list(self.nginx_reload)
        return data


#: Days before expiry that `tls.certificate` warns, when neither the target nor the bot setting says.
DEFAULT_TLS_EXPIRY_WARNING = 14


def with_tls_expiry_warning(config: TargetsConfig, days: int) -> TargetsConfig:
    """Targets without their own `tls_expiry_warning` get the bot-wide one (setting / environment)."""
    targets = tuple(t if t.tls_expiry_warning is not None else t.model_copy(update={"tls_expiry_warning": days})
                    for t in config.targets)
    return config.model_copy(update={"targets": targets})


#: What a newcomer gets with no config file: the seed story's stack on this machine.
DEFAULT_TARGET: dict[str, Any] = {
    "name": "local",
    "host": "local",
    "pm2_app": "kathario-saas",
    "app_port": 3003,
    "app_dir": "/root/kathario-saas",
    "public_url": "http://127.0.0.1/",
}


#: `TargetsConfig.source` when no file was given: the CLI and the console say so in their first line.
BUILTIN_SOURCE = "(built-in default)"


class TargetsConfig(BaseModel):
    """The targets part of a config file (other top-level tables belong to bot settings)."""

    model_config = ConfigDict(frozen=True)

    source: str
    targets: tuple[Target, ...]

    @property
    def config_file(self) -> str:
        """The file the targets came from, "" for the built-in default (fix hints pass it as `--config`)."""
        return "" if self.source == BUILTIN_SOURCE else self.source

    def get(self, name: str) -> Target | None:
        for target in self.targets:
            if target.name.lower() == name.lower():
                return target
        return None

    @property
    def names(self) -> list[str]:
        return [t.name for t in self.targets]

    @property
    def builtin(self) -> bool:
        """No config file: the one `DEFAULT_TARGET`."""
        return self.source == BUILTIN_SOURCE


def _format_error(source: str, raw_targets: list[Any], err: Mapping[str, Any]) -> str:
    loc = list(err.get("loc", ()))
    where = source
    if len(loc) >= 1 and isinstance(loc[0], int):
        index = loc.pop(0)
        raw = raw_targets[index] if index < len(raw_targets) else {}
        name = raw.get("name") if isinstance(raw, dict) else None
        where += f": targets[{index}]" + (f" ({name})" if name else "")
    field = ".".join(str(p) for p in loc if not str(p).startswith("function-"))
    msg = str(err.get("msg", "invalid"))
    if err.get("type") == "missing":
        msg = "required key is missing"
    elif err.get("type") == "extra_forbidden":
        close = difflib.get_close_matches(str(loc[-1]), list(Target.model_fields), n=1) if loc else []
        mean = f" (did you mean {close[0]!r}?)" if close else " (check the spelling)"
        msg = f"unknown key{mean} (see README 'Configuration')"
    msg = msg.removeprefix("Value error, ")
    return f"{where}: {field}: {msg}" if field else f"{where}: {msg}"


def parse_targets(data: Mapping[str, Any], source: str) -> TargetsConfig:
    """Validate the `targets` array of an already-parsed TOML document."""
    raw = data.get("targets")
    if raw is None:
        raise ConfigError(f"{source}: no [[targets]] table (see README 'Configuration')")
    if not isinstance(raw, list) or not raw:
        raise ConfigError(f"{source}: targets: must be a non-empty array of [[targets]] tables")
    targets: list[Target] = []
    problems: list[str] = []
    for index, item in enumerate(raw):
        if not isinstance(item, dict):
            problems.append(f"{source}: targets[{index}]: must be a table")
            continue
        try:
            targets.append(Target.model_validate(item))
        except ValidationError as exc:
            for err in exc.errors():
                problems.append(_format_error(source, raw, {**err, "loc": (index, *err["loc"])}))
    seen: dict[str, int] = {}
    for index, target in enumerate(targets):
        key = target.name.lower()
        if key in seen:
            problems.append(f"{source}: targets[{index}] ({target.name}): name: duplicates targets[{seen[key]}]")
        seen.setdefault(key, index)
    if problems:
        raise ConfigError("\n".join(problems))
    return TargetsConfig(source=source, targets=tuple(targets))


def read_toml(path: Path) -> dict[str, Any]:
    """Read a TOML file, turning every I/O and syntax problem into a one-line ConfigError."""
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except PermissionError:
        raise ConfigError(f"{path}: cannot read the config file (permission denied)") from None
    except IsADirectoryError:
        raise ConfigError(f"{path}: is a directory, not a config file") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: TOML syntax error: {exc}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8 text") from None


def load_targets(path: Path | None) -> TargetsConfig:
    """Targets from `path`, or the documented local default when `path` is None.

    Resolving which file to use (`--config`, `$WSCHECK_CONFIG`, `./wscheck.toml`) is the caller's job:
    only bot/settings.py reads the environment.
    """
    if path is None:
        return TargetsConfig(source=BUILTIN_SOURCE, targets=(Target.model_validate(DEFAULT_TARGET),))
    return parse_targets(read_toml(path), str(path))

