"""Settings: the only module that reads the environment.

One naming rule for every setting: a TOML key in wscheck.toml (top level, or the `[remediation]`
table for the remediation ones) and an environment variable `WSCHECK_<KEY>`; Slack's own keep Bolt's
names (`SLACK_BOT_TOKEN`, `SLACK_APP_TOKEN`, `SLACK_SIGNING_SECRET`) plus `SLACK_API_URL`. The
environment (and a `.env` file) wins over TOML. Durations accept plain seconds or `30s` / `5m` / `1h`.

Errors are `ConfigError`s that name the variable or the file and key, never a traceback.
"""

from __future__ import annotations

import difflib
import os
from pathlib import Path
from typing import Annotated, Any, Literal

from dotenv import dotenv_values
from pydantic import (
    AliasChoices,
    BeforeValidator,
    Field,
    PlainSerializer,
    PlainValidator,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
)
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, NoDecode, PydanticBaseSettingsSource, SettingsConfigDict, SettingsError

from bot.store.dburl import DEFAULT_DB, DatabaseURL, parse_db_url
from checks.config import (
    DEFAULT_TLS_EXPIRY_WARNING,
    ConfigError,
    Duration,
    DurationOrZero,
    TargetsConfig,
    load_targets,
    read_toml,
    slack_approver,
    slack_channel,
    slack_mention,
    with_tls_expiry_warning,
)

DEFAULT_CONFIG = Path("wscheck.toml")
ENV_FILE = Path(".env")
ENV_PREFIX = "WSCHECK_"
SLACK_ENV = {
    "slack_bot_token": "SLACK_BOT_TOKEN",
    "slack_app_token": "SLACK_APP_TOKEN",
    "slack_signing_secret": "SLACK_SIGNING_SECRET",
    "slack_api_url": "SLACK_API_URL",
}
#: Keys that live in the `[remediation]` table of wscheck.toml.
REMEDIATION_KEYS = frozenset(
    {"approvers", "quorum", "allow_self_approval", "approval_ttl", "cooldown", "verify_timeout", "remediation"}
)


def _env_lookup() -> dict[str, str]:
    """Process environment over `.env` (python-dotenv semantics, file values never override real ones)."""
    values: dict[str, str] = {}
    if ENV_FILE.is_file():
        values.update({k: v for k, v in dotenv_values(ENV_FILE).items() if v is not None})
    values.update(os.environ)
    return values


def ssh_agent_path() -> str:
    """The ssh-agent socket (`SSH_AUTH_SOCK`), read here because this is the only module that reads
    the environment; the SSH transport gets it as data. "" = no agent."""
    return _env_lookup().get("SSH_AUTH_SOCK", "").strip()


def resolve_config_path(cli_value: str | None) -> Path | None:
    """`--config FILE`, else `$WSCHECK_CONFIG`, else `./wscheck.toml` if present, else None (built-in default)."""
    if cli_value:
        return Path(cli_value).expanduser()
    env = _env_lookup().get("WSCHECK_CONFIG", "").strip()
    if env:
        return Path(env).expanduser()
    return DEFAULT_CONFIG if DEFAULT_CONFIG.is_file() else None


def _csv(value: Any) -> Any:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


CsvList = Annotated[list[str], NoDecode, BeforeValidator(_csv)]


def _blank_none(value: Any) -> Any:
    """An empty variable means "not set" (WSCHECK_METRICS_PORT= disables the endpoint)."""
    return None if isinstance(value, str) and not value.strip() else value


def _db_url(value: Any) -> DatabaseURL:
    """WSCHECK_DB: a SQLite path or URL, or a postgresql:// URL (bot.store.dburl); the error never shows a password."""
    return parse_db_url(value)


def _cooldown(value: Any) -> tuple[int, float]:
    """`3/1h` = at most 3 remediations per target per hour; a bare number means per hour."""
    from checks.config import parse_duration

    if isinstance(value, tuple | list) and len(value) == 2:
        return int(value[0]), float(value[1])
    if isinstance(value, int) and not isinstance(value, bool):
        return value, 3600.0
    if isinstance(value, str):
        count, _, window = value.partition("/")
        try:
            seconds = parse_duration(window or "1h")
        except ValueError:
            seconds = 0.0
        if count.strip().isdigit() and seconds > 0:
            return int(count), seconds
    raise ValueError(f"{value!r} is not a cooldown like 3/1h (at most 3 per hour)")


def _unknown(path: Path, key: str, known: set[str], *, table: str = "", hint: str = "") -> str:
    close = difflib.get_close_matches(key, sorted(known), n=1)
    mean = f" (did you mean {close[0]!r}?)" if close else ""
    return f"{path}: {table}{key}: unknown key{mean}{hint} (see README 'Configuration')"


class TomlSettingsSource(PydanticBaseSettingsSource):
    """Top-level keys of wscheck.toml (minus `[[targets]]`), with `[remediation]` flattened in.

    Unknown keys are collected in `problems` rather than raised, so one run reports all of them.
    """

    def __init__(self, settings_cls: type[BaseSettings], path: Path | None) -> None:
        super().__init__(settings_cls)
        self.path = path
        self.data: dict[str, Any] = {}
        self.problems: list[str] = []
        if path is None:
            return
        raw = read_toml(path)
        known = set(settings_cls.model_fields)
        remediation_keys = {k for k in REMEDIATION_KEYS if k in known}
        top_keys = (known - REMEDIATION_KEYS) | {"targets", "remediation"}
        for key, value in raw.items():
            if key == "targets":
                continue
            if key == "remediation" and isinstance(value, dict):
                for sub, subvalue in value.items():
                    if sub not in remediation_keys:
                        self.problems.append(_unknown(path, sub, remediation_keys, table="remediation."))
                        continue
                    self.data[sub] = subvalue
                continue
            if key not in top_keys or key in REMEDIATION_KEYS:
                hint = " (it belongs in the [remediation] table)" if key in REMEDIATION_KEYS else ""
                self.problems.append(_unknown(path, key, set() if hint else top_keys, hint=hint))
                continue
            self.data[key] = value

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return self.data.get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        return dict(self.data)


def _slack(name: str) -> Any:
    return Field(default=None, validation_alias=AliasChoices(SLACK_ENV[name], name))


class Settings(BaseSettings):
    """Every bot setting. See README 'Configuration' for the table; .env.example lists them all."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_file=ENV_FILE, env_file_encoding="utf-8", extra="ignore", populate_by_name=True,
    )

    # Slack
    slack_bot_token: SecretStr | None = _slack("slack_bot_token")
    slack_app_token: SecretStr | None = _slack("slack_app_token")
    slack_signing_secret: SecretStr | None = _slack("slack_signing_secret")
    slack_api_url: str = Field(default="https://slack.com/api/",
                               validation_alias=AliasChoices("SLACK_API_URL", "slack_api_url"))
    http: bool = False
    http_host: str = "0.0.0.0"
    http_port: int = Field(default=3000, ge=0, le=65535)
    slack_timeout: Duration = 10.0
    allowed_channels: CsvList = []
    allowed_users: CsvList = []
    rate_limit: int = Field(default=10, ge=1)
    rate_window: Duration = 60.0
    lang: Literal["en", "ko"] = "en"
    log_format: Literal["text", "json"] = "text"
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    # storage
    db: Annotated[DatabaseURL, NoDecode, PlainValidator(_db_url), PlainSerializer(str, return_type=str)] = DEFAULT_DB
    # monitoring and alerts
    monitor: bool = True
    alert_channel: str = ""
    alert_mention: str = ""
    check_interval: Duration = 60.0
    fast_interval: Duration = 10.0
    jitter: DurationOrZero = 2.0
    failure_threshold: int = Field(default=2, ge=1)
    success_threshold: int = Field(default=2, ge=1)
    reminder_interval: Duration = 3600.0
    flap_window: Duration = 1800.0
    flap_count: int = Field(default=3, ge=2)
    canary: bool = True
    canary_ping_interval: Duration = 5.0
    canary_pong_timeout: Duration = 3.0
    # remediation ([remediation] table)
    approvers: CsvList = []
    quorum: int = Field(default=1, ge=1, le=2)
    allow_self_approval: bool = False
    approval_ttl: Duration = 600.0
    cooldown: Annotated[tuple[int, float], NoDecode, BeforeValidator(_cooldown)] = (3, 3600.0)
    verify_timeout: Duration = 60.0
    # operations
    metrics_port: Annotated[int | None, BeforeValidator(_blank_none)] = Field(default=None, ge=0, le=65535)
    metrics_host: str = "127.0.0.1"
    heartbeat_url: str = ""
    retention: Duration = 90 * 86400.0
    # replicas on PostgreSQL (wt-ha, docs/ha.md): the leader's lease; a follower takes over within it
    leader_ttl: Duration = 15.0
    # wt-shard (docs/ha.md, "Sharding"): off = the leader probes every target; auto = the live replicas split them
    shards: str = "off"
    # wt-tls: days before a served certificate expires that tls.certificate warns (a target key overrides it)
    tls_expiry_warning: int = Field(default=DEFAULT_TLS_EXPIRY_WARNING, ge=0, le=365)

    _v_channel = field_validator("alert_channel")(slack_channel)

    @field_validator("leader_ttl")
    @classmethod
    def _leader_ttl(cls, value: float) -> float:
        # Renewals go every ttl / 3 over a network: below 3 s a GC pause or one slow round trip would depose a
        # healthy leader; above 10 min the team is blind for that long after the leader dies.
        if not 3.0 <= value <= 600.0:
            raise ValueError(f"must be between 3 s and 10 min (got {value:g} s)")
        return value

    @field_validator("shards")
    @classmethod
    def _shards(cls, value: str, info: ValidationInfo) -> str:
        value = value.strip().lower()
        if value not in ("off", "auto"):
            raise ValueError(f"must be off (the leader probes every target) or auto (the replicas split the "
                             f"targets), not {value!r}")
        db = info.data.get("db")
        if value == "auto" and isinstance(db, DatabaseURL) and db.engine != "postgresql":
            raise ValueError("auto needs replicas, and replicas need PostgreSQL (WSCHECK_DB=postgresql://...): one "
                             "bot owns a SQLite file and probes every target itself (docs/ha.md)")
        return value

    _v_mention = field_validator("alert_mention")(slack_mention)

    @field_validator("allowed_channels")
    @classmethod
    def _channels(cls, value: list[str]) -> list[str]:
        return [slack_channel(item) for item in value]

    @field_validator("allowed_users", "approvers")
    @classmethod
    def _users(cls, value: list[str]) -> list[str]:
        return [slack_approver(item) for item in value]

    @field_validator("slack_api_url")
    @classmethod
    def _api_url(cls, value: str) -> str:
        if not value.startswith(("https://", "http://")):
            raise ValueError("must be an http(s) URL like https://slack.com/api/")
        return value if value.endswith("/") else value + "/"

    @field_validator("slack_bot_token")
    @classmethod
    def _bot_token(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and value.get_secret_value() and not value.get_secret_value().startswith("xoxb-"):
            raise ValueError("must be a bot token starting with xoxb- (OAuth & Permissions page)")
        return value if value is not None and value.get_secret_value() else None

    @field_validator("slack_app_token")
    @classmethod
    def _app_token(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and value.get_secret_value() and not value.get_secret_value().startswith("xapp-"):
            raise ValueError("must be an app-level token starting with xapp- (Basic Information > App-Level Tokens)")
        return value if value is not None and value.get_secret_value() else None

    @field_validator("slack_signing_secret")
    @classmethod
    def _signing_secret(cls, value: SecretStr | None) -> SecretStr | None:
        """The shape we can check without Slack: one word, and not a token pasted into the wrong variable."""
        secret = value.get_secret_value() if value is not None else ""
        if secret.startswith(("xoxb-", "xoxp-", "xapp-")) or any(c.isspace() for c in secret):
            raise ValueError("must be the Signing Secret (Basic Information > App Credentials), not a token")
        return value if secret else None

    @property
    def slack_enabled(self) -> bool:
        return self.slack_bot_token is not None


def env_name(field: str) -> str:
    return SLACK_ENV.get(field, ENV_PREFIX + field.upper())


def _where(field: str, toml: TomlSettingsSource, environ: dict[str, str]) -> str:
    """Name where a bad value came from: the variable (environment or .env, which win) or the file and key."""
    env = env_name(field)
    if env in environ or env.lower() in {k.lower() for k in environ}:
        return f"environment: {env}"
    if field in toml.data and toml.path is not None:
        key = f"remediation.{field}" if field in REMEDIATION_KEYS else field
        return f"{toml.path}: {key}"
    return f"setting {field} ({env})"


def load_settings(config_path: Path | None, **overrides: Any) -> Settings:
    """Settings from env, .env and the TOML file; every problem is one line of a ConfigError, all at once."""
    toml = TomlSettingsSource(Settings, config_path)

    class _FromFile(Settings):
        """Settings with the TOML file as the last source: the environment and .env win over it."""

        @classmethod
        def settings_customise_sources(
            cls,
            settings_cls: type[BaseSettings],
            init_settings: PydanticBaseSettingsSource,
            env_settings: PydanticBaseSettingsSource,
            dotenv_settings: PydanticBaseSettingsSource,
            file_secret_settings: PydanticBaseSettingsSource,
        ) -> tuple[PydanticBaseSettingsSource, ...]:
            return (init_settings, env_settings, dotenv_settings, toml)

    problems = list(toml.problems)
    try:
        settings = _FromFile(**overrides)
    except SettingsError as exc:
        # pydantic-settings could not even decode a value (e.g. malformed JSON for a list): name the field.
        problems.append(f"setting: {exc}")
    except ValidationError as exc:
        environ = _env_lookup()
        for err in exc.errors():
            field = str(err["loc"][0]) if err["loc"] else "?"
            name = next((f for f, env in SLACK_ENV.items() if env == field), field)
            msg = str(err["msg"]).removeprefix("Value error, ")
            problems.append(f"{_where(name, toml, environ)}: {msg}")
    if problems:
        raise ConfigError("\n".join(problems))
    return settings


def load_config(config_path: Path | None, **overrides: Any) -> tuple[Settings, TargetsConfig]:
    """The one validation behind `wscheck config` (exit 3) and `wscheck run` (exit 78).

    Settings and targets are both checked and every problem of both is reported, one line each, so a
    config that `wscheck config` accepts is one the service starts with.
    """
    problems: list[str] = []
    settings: Settings | None = None
    targets: TargetsConfig | None = None
    try:
        settings = load_settings(config_path, **overrides)
    except ConfigError as exc:
        problems.extend(str(exc).splitlines())
    try:
        targets = load_targets(config_path)
    except ConfigError as exc:
        problems.extend(line for line in str(exc).splitlines() if line not in problems)
    if problems or settings is None or targets is None:
        raise ConfigError("\n".join(problems))
    return settings, with_tls_expiry_warning(targets, settings.tls_expiry_warning)


def tls_expiry_warning_default() -> int:
    """WSCHECK_TLS_EXPIRY_WARNING (environment or .env) for commands that load targets without the bot
    settings (`wscheck check`); validated like the setting, a bad value is a ConfigError naming the variable."""
    raw = _env_lookup().get(ENV_PREFIX + "TLS_EXPIRY_WARNING", "").strip()
    if not raw:
        return DEFAULT_TLS_EXPIRY_WARNING
    if not raw.isdigit() or not 0 <= int(raw) <= 365:
        raise ConfigError(f"environment: {ENV_PREFIX}TLS_EXPIRY_WARNING: {raw!r} is not a number of days (0-365)")
    return int(raw)


def builtin_notice(targets: TargetsConfig, *, lang: str) -> str:
    """The first line a person reads when no config file was found (console mode, `wscheck check`)."""
    if not targets.builtin:
        return ""
    from bot.i18n import t
    from checks.config import DEFAULT_TARGET

    return t("config.builtin_defaults", target=DEFAULT_TARGET["name"], app=DEFAULT_TARGET["pm2_app"],
             port=DEFAULT_TARGET["app_port"], lang=lang)
