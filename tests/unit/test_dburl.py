"""WSCHECK_DB: the accepted forms, the errors (one line naming the field, no traceback), and the password that no
printed form of the value, nor any error about it, ever shows."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from bot.settings import load_settings
from bot.store.dburl import DEFAULT_DB, parse_db_url
from checks.config import ConfigError

SECRET = "s3cr3t-Pa55"


@pytest.mark.parametrize(
    ("value", "path"),
    [
        ("wscheck.db", Path("wscheck.db")),
        ("/var/lib/wscheck/wscheck.db", Path("/var/lib/wscheck/wscheck.db")),
        ("  /var/lib/wscheck/wscheck.db  ", Path("/var/lib/wscheck/wscheck.db")),
        ("sqlite:///wscheck.db", Path("wscheck.db")),
        ("sqlite:////var/lib/wscheck/wscheck.db", Path("/var/lib/wscheck/wscheck.db")),
        ("SQLite:///data/w%20x.db", Path("data/w x.db")),
    ],
)
def test_sqlite_forms(value: str, path: Path) -> None:
    url = parse_db_url(value)
    assert (url.engine, url.path, str(url)) == ("sqlite", path, str(path))


def test_home_is_expanded_and_the_default_is_the_file_in_the_working_directory() -> None:
    assert parse_db_url("~/w.db").path == Path.home() / "w.db"
    assert (DEFAULT_DB.engine, DEFAULT_DB.path) == ("sqlite", Path("wscheck.db"))


ENCODED = SECRET.replace("-", "%2D")


@pytest.mark.parametrize(
    ("value", "shown", "secret"),
    [
        (f"postgresql://wscheck:{SECRET}@db.internal:5432/wscheck", "postgresql://wscheck:***@db.internal:5432/wscheck",
         True),
        (f"postgres://wscheck:{SECRET}@db/wscheck?sslmode=require",
         "postgresql://wscheck:***@db/wscheck?sslmode=require", True),
        ("postgresql://wscheck@db/wscheck", "postgresql://wscheck@db/wscheck", False),
        ("postgresql:///wscheck?host=/run/postgresql", "postgresql:///wscheck?host=/run/postgresql", False),
        (f"postgresql://db/wscheck?user=w&password={SECRET}", "postgresql://db/wscheck?user=w&password=***", True),
        (f"postgresql://w:{ENCODED}@db/wscheck", "postgresql://w:***@db/wscheck", True),
    ],
)
def test_postgresql_urls_print_without_their_secret(value: str, shown: str, secret: bool) -> None:
    url = parse_db_url(value)
    assert url.engine == "postgresql" and url.path is None
    assert str(url) == shown and repr(url) == f"DatabaseURL({shown!r})" and f"{url}" == shown
    assert SECRET not in str(url) and SECRET not in repr(url)
    assert url.secret_dsn() == value  # only the driver gets the real one
    # A driver error that echoes the URL or the (decoded) password loses it too.
    said = f"driver said: {value}; {SECRET}"
    if secret:
        assert SECRET not in url.scrub(said) and ENCODED not in url.scrub(said) and "***" in url.scrub(said)
    else:
        assert url.scrub(said) == said  # nothing to hide


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("", "not the path of a SQLite file"),
        ("/", "not the path of a SQLite file"),
        (".", "not the path of a SQLite file"),
        (f"mysql://root:{SECRET}@db/wscheck", "unsupported database scheme 'mysql'"),
        (f"postgresql+asyncpg://u:{SECRET}@db/w", "unsupported database scheme 'postgresql+asyncpg'"),
        (f"postgresql://u:{SECRET}@db:port/w", "the port must be a number"),
        (f"postgresql://u:{SECRET}@db:99999/w", "the port must be a number"),
        (f"postgresql://u:{SECRET}@db/w/x", "just /dbname"),
        ("sqlite://host/w.db", "a sqlite URL has no host"),
        ("sqlite:///w.db?mode=ro", "no ?options"),
    ],
)
def test_bad_values_are_refused_without_echoing_a_secret(value: str, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("?", r"\?").replace("+", r"\+")) as info:
        parse_db_url(value)
    assert SECRET not in str(info.value)


def test_a_directory_is_not_a_database(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not the path of a SQLite file"):
        parse_db_url(str(tmp_path))


def test_settings_name_the_variable_and_never_print_the_password(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("WSCHECK_DB", f"postgresql://wscheck:{SECRET}@db.internal:70000/wscheck")
    with pytest.raises(ConfigError) as info:
        load_settings(None)
    assert str(info.value) == ("environment: WSCHECK_DB: 'postgresql://wscheck:***@db.internal:70000/wscheck': "
                               "the port must be a number from 1 to 65535")

    monkeypatch.setenv("WSCHECK_DB", f"postgresql://wscheck:{SECRET}@db.internal/wscheck")
    settings = load_settings(None)
    assert settings.db.engine == "postgresql"
    caplog.set_level(logging.DEBUG)
    logging.getLogger("wscheck").info("settings: %s %r", settings, settings.db)
    for text in (repr(settings), str(settings), str(settings.model_dump()), settings.model_dump_json(), caplog.text):
        assert SECRET not in text
        assert "postgresql://wscheck:***@db.internal/wscheck" in text


def test_toml_key_db_is_named_with_its_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("WSCHECK_DB", raising=False)
    config = tmp_path / "wscheck.toml"
    config.write_text('db = "redis://localhost/0"\n[[targets]]\nname = "local"\nhost = "local"\n')
    with pytest.raises(ConfigError, match=rf"^{config}: db: unsupported database scheme 'redis'"):
        load_settings(config)
    config.write_text('db = "sqlite:////srv/w.db"\n[[targets]]\nname = "local"\nhost = "local"\n')
    assert load_settings(config).db.path == Path("/srv/w.db")
