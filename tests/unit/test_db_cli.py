"""`wscheck db status` / `wscheck db migrate` for operators, on a real SQLite file (the PostgreSQL runs are in
tests/integration/test_store_postgresql_only.py): exit codes, what they print, and what they refuse."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

import bot.store as store_module
import bot.store.db as store_db
from bot.cli import EXIT_UNKNOWN, main
from bot.store import MIGRATIONS, Migration, Store


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("WSCHECK_DB", raising=False)
    monkeypatch.delenv("WSCHECK_CONFIG", raising=False)


def test_status_then_migrate_then_status(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    db = tmp_path / "w.db"
    code, out, _ = run(capsys, "db", "status", "--db", str(db))
    assert code == 1 and f"database: {db} (sqlite)" in out and "none yet" in out
    assert not db.exists()  # looking creates nothing

    code, out, _ = run(capsys, "db", "migrate", "--db", str(db))
    assert (code, out) == (0, f"database {db}: migrated from schema version 0 to {len(MIGRATIONS)}\n")
    code, out, _ = run(capsys, "db", "migrate", "--db", str(db))
    assert (code, out) == (0, f"database {db}: schema version {len(MIGRATIONS)}, up to date\n")

    code, out, _ = run(capsys, "db", "status", "--db", f"sqlite:///{db}")
    lines = out.splitlines()
    assert code == 0, out
    assert lines[1] == f"schema: version {len(MIGRATIONS)}; this wscheck: version {len(MIGRATIONS)}"
    assert [line.split()[:2] for line in lines[2:]] == [["applied", str(m.version)] for m in MIGRATIONS]
    assert lines[2].endswith(MIGRATIONS[0].name)


def test_status_shows_pending_steps_and_migrate_applies_them(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = tmp_path / "w.db"
    assert run(capsys, "db", "migrate", "--db", str(db))[0] == 0
    step = Migration(version=len(MIGRATIONS) + 1, name="add notes", statements=("CREATE TABLE notes (x TEXT)",))
    monkeypatch.setattr(store_module, "MIGRATIONS", (*MIGRATIONS, step))
    monkeypatch.setattr(store_db, "MIGRATIONS", (*MIGRATIONS, step))  # what Store applies
    code, out, _ = run(capsys, "db", "status", "--db", str(db))
    assert code == 1 and out.splitlines()[-1].split()[:2] == ["pending", str(step.version)], out
    assert out.rstrip().endswith("add notes")
    code, out, _ = run(capsys, "db", "migrate", "--db", str(db))
    assert code == 0 and f"from schema version {len(MIGRATIONS)} to {step.version}" in out


def test_newer_database_is_an_error_for_status_migrate_and_run(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    db = tmp_path / "w.db"
    con = sqlite3.connect(db)
    con.execute("PRAGMA user_version = 99")
    con.close()
    for action in ("status", "migrate"):
        code, out, err = run(capsys, "db", action, "--db", str(db))
        assert code == EXIT_UNKNOWN, (out, err)
        assert f"schema version 99, but this wscheck only knows versions up to {len(MIGRATIONS)}" in err
        assert "Traceback" not in err and err.count("\n") == 1


def test_migrate_is_refused_while_a_bot_holds_the_database(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    db = tmp_path / "w.db"

    async def holding() -> None:
        async with await Store.open(db):
            code, _, err = await asyncio.to_thread(run, capsys, "db", "migrate", "--db", str(db))
            assert code == EXIT_UNKNOWN and "already in use" in err and "PostgreSQL" in err
            code, out, _ = await asyncio.to_thread(run, capsys, "db", "status", "--db", str(db))
            assert code == 0, out  # looking is fine while it runs

    asyncio.run(holding())


def test_bad_values_name_the_field(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    code, _, err = run(capsys, "db", "status", "--db", "mysql://root:hunter2@db/w")
    assert code == EXIT_UNKNOWN and err.startswith("wscheck: --db: unsupported database scheme 'mysql'")
    assert "hunter2" not in err
    monkeypatch.setenv("WSCHECK_DB", "postgresql://u:hunter2@db:0x10/w")
    code, _, err = run(capsys, "db", "migrate")
    assert code == EXIT_UNKNOWN and err.startswith("wscheck: environment: WSCHECK_DB: 'postgresql://u:***@db:0x10/w'")
    assert "hunter2" not in err and "Traceback" not in err
    with pytest.raises(SystemExit) as exited:
        main(["db"])
    assert exited.value.code == EXIT_UNKNOWN and "required: ACTION" in capsys.readouterr().err


def test_status_and_migrate_speak_korean_with_wscheck_lang(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """wt-ops: the operator's lines in the bot's language (bot/i18n.py); the same facts as in English."""
    monkeypatch.setenv("WSCHECK_LANG", "ko")
    db = tmp_path / "w.db"
    code, out, _ = run(capsys, "db", "status", "--db", str(db))
    assert code == 1 and out.splitlines() == [
        f"데이터베이스: {db} (sqlite)",
        f"스키마: 아직 없음 (파일 없음); 이 wscheck: 버전 {len(MIGRATIONS)}; `wscheck db migrate` 또는 봇의 첫 시작 때 "
        "만들어집니다"]
    code, out, _ = run(capsys, "db", "migrate", "--db", str(db))
    assert (code, out) == (0, f"데이터베이스 {db}: 스키마를 버전 0에서 {len(MIGRATIONS)}(으)로 올렸습니다\n")
    code, out, _ = run(capsys, "db", "migrate", "--db", str(db))
    assert (code, out) == (0, f"데이터베이스 {db}: 스키마 버전 {len(MIGRATIONS)}, 최신 상태입니다\n")

    step = Migration(version=len(MIGRATIONS) + 1, name="add notes", statements=("CREATE TABLE notes (x TEXT)",))
    monkeypatch.setattr(store_module, "MIGRATIONS", (*MIGRATIONS, step))
    monkeypatch.setattr(store_db, "MIGRATIONS", (*MIGRATIONS, step))  # what Store applies
    code, out, _ = run(capsys, "db", "status", "--db", str(db))
    lines = out.splitlines()
    assert code == 1 and lines[1] == f"스키마: 버전 {len(MIGRATIONS)}; 이 wscheck: 버전 {step.version}", out
    assert [line.split()[:2] for line in lines[2:]] == \
        [["적용됨", str(m.version)] for m in MIGRATIONS] + [["대기", str(step.version)]]
    assert lines[-1].endswith("add notes")  # a step's name is data: as written


def test_english_stays_the_default_without_wscheck_lang(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("WSCHECK_LANG", raising=False)
    code, out, _ = run(capsys, "db", "status", "--db", str(tmp_path / "w.db"))
    assert code == 1 and out.startswith("database: ") and "schema: none yet" in out
