"""`wscheck` command line: check, checks, config, run.

Imports are lazy on purpose: `wscheck check` against a local target should not pay for asyncssh,
Slack Bolt or APScheduler (see bench/RESULTS.md for the cold-start numbers).
"""

from __future__ import annotations

import argparse
import asyncio
import difflib
import json
import os
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, NoReturn

if TYPE_CHECKING:
    from bot.store.dburl import DatabaseURL
    from checks.config import Target, TargetsConfig
    from checks.models import TargetReport

EXIT_UNKNOWN = 3


class UsageError(Exception):
    """Bad command line or config: one line on stderr, exit 3 (Nagios UNKNOWN), never a traceback."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(EXIT_UNKNOWN, f"{self.prog}: error: {message}\n")


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("wscheck-bot")
    except PackageNotFoundError:
        return "0+unknown"


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="wscheck", description="Check, explain and fix an Nginx -> PM2 -> Next.js WebSocket stack.",
                     epilog="For a single answer (once, then exit with a Nagios code), use `wscheck check`; "
                     "`wscheck run` keeps running (Slack or console) and monitors.")
    parser.add_argument("--version", action="version", version=f"wscheck {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    def config_arg(p: argparse.ArgumentParser) -> None:
        p.add_argument("--config", metavar="FILE", help="config file (default: $WSCHECK_CONFIG, ./wscheck.toml, "
                       "else one local target with built-in defaults)")

    check = sub.add_parser("check", help="run the checklist once and print the report with the diagnosis",
                           description="Run the checklist and print a report. Exit code (Nagios): 0 ok, 1 warn, "
                           "2 fail, 3 error/unreachable/bad usage.")
    check.add_argument("target", nargs="?", help="target name (default: every configured target)")
    check.add_argument("--only", action="append", default=[], metavar="ID",
                       help="check id or item (nginx, pm2, port, build, http, ws, logs); repeatable")
    check.add_argument("--json", action="store_true", help="one JSON object per target, one per line")
    config_arg(check)

    checks = sub.add_parser("checks", help="list the checks, their items and the known causes")
    checks.add_argument("--json", action="store_true")

    cfg = sub.add_parser("config", help="validate the config file and print the resolved targets",
                         description="Validate settings and targets exactly as `wscheck run` does (file, environment "
                         "and .env): every problem, one line each naming the file and key or the variable; exit 3.")
    config_arg(cfg)

    trust = sub.add_parser("trust", help="fetch a target's SSH host key, show its fingerprint, add it to known_hosts",
                           description="Fetch the host key, print its SHA256 fingerprint (compare it with "
                           "`ssh-keygen -lf /etc/ssh/ssh_host_*_key.pub` on the server) and, once confirmed, append it "
                           "to the target's known_hosts. A changed key is an error, never replaced.")
    trust.add_argument("target")
    trust.add_argument("--fingerprint", metavar="SHA256:…", help="confirm without a prompt: the fingerprint you "
                       "read on the server")
    config_arg(trust)

    audit = sub.add_parser("audit", help="export the remediation audit log")
    audit.add_argument("--json", action="store_true", help="one JSON object per line (the only format)")
    audit.add_argument("--db", metavar="PATH|URL", help="database (default: WSCHECK_DB / db setting)")
    config_arg(audit)

    db = sub.add_parser("db", help="the database's schema: status, migrate",
                        description="The database of WSCHECK_DB (a SQLite path, sqlite:///..., or postgresql://...). "
                        "`status` shows the applied and pending schema steps (exit 0 up to date, 1 pending, 3 error "
                        "or newer than this wscheck); `migrate` applies the pending ones (refused while a bot runs "
                        "on the database). `wscheck run` migrates on start too, and refuses a newer database.")
    db_sub = db.add_subparsers(dest="db_command", metavar="ACTION", required=True, parser_class=_Parser)
    for action, text in (("status", "show the schema version and the applied and pending steps"),
                         ("migrate", "apply the pending schema steps")):
        p = db_sub.add_parser(action, help=text, description=text)
        p.add_argument("--db", metavar="PATH|URL", help="database (default: WSCHECK_DB / db setting)")
        config_arg(p)

    run = sub.add_parser("run", help="run the bot (Slack when SLACK_BOT_TOKEN is set, else console mode)",
                         description="Run the bot until SIGTERM/Ctrl-C: Slack when SLACK_BOT_TOKEN is set, else "
                         "console mode (commands on stdin; monitoring goes on after stdin closes). For a single "
                         "answer, once, use `wscheck check` instead. Exit 78 on a bad config (same lines as "
                         "`wscheck config`); exit 75 when a replica on PostgreSQL lost the leader's lease (restart "
                         "it: it comes back as a follower, docs/ha.md).")
    config_arg(run)
    run.add_argument("--http", action="store_true", help="serve Slack's HTTP endpoint instead of Socket Mode")
    run.add_argument("--console", action="store_true", help="console mode even if Slack tokens are set")
    return parser


def _load_targets(config: str | None) -> TargetsConfig:
    from bot.settings import resolve_config_path, tls_expiry_warning_default
    from checks.config import load_targets, with_tls_expiry_warning

    return with_tls_expiry_warning(load_targets(resolve_config_path(config)), tls_expiry_warning_default())


def _pick(cfg: TargetsConfig, name: str | None) -> list[Target]:
    if name is None:
        return list(cfg.targets)
    target = cfg.get(name)
    if target is None:
        close = difflib.get_close_matches(name, cfg.names, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise UsageError(f"unknown target {name!r}{hint}; targets: {', '.join(cfg.names)}")
    return [target]


def _language(config: str | None) -> str:
    """WSCHECK_LANG (env, .env or `lang` in the config) for the text reports; a settings problem that
    `wscheck check` never needed does not stop it: English, then."""
    from bot.settings import load_settings, resolve_config_path
    from checks.config import ConfigError

    try:
        lang = load_settings(resolve_config_path(config)).lang
    except ConfigError:
        lang = "en"
    return lang


def _selection(only: Sequence[str]) -> list[str]:
    from checks.registry import BY_ID, ITEMS, resolve_selection

    try:
        resolve_selection(list(only))
    except KeyError as exc:
        word = str(exc.args[0])
        close = difflib.get_close_matches(word.lower(), [*ITEMS, *BY_ID], n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise UsageError(
            f"unknown check {word!r}{hint}; items: {', '.join(ITEMS)}; ids: see `wscheck checks`"
        ) from None
    return list(only)


async def _check_all(targets: list[Target], only: list[str], config_file: str = "") -> list[TargetReport]:
    from bot.settings import ssh_agent_path
    from checks.runner import run_checks
    from checks.transport import make_transport

    agent_path = ssh_agent_path()

    async def one(target: Target) -> TargetReport:
        transport = make_transport(target, agent_path=agent_path)
        try:
            return await run_checks(target, transport, only, config_file=config_file)
        finally:
            await transport.aclose()

    return list(await asyncio.gather(*(one(t) for t in targets)))


def cmd_check(args: argparse.Namespace) -> int:
    from bot.settings import builtin_notice

    cfg = _load_targets(args.config)
    targets = _pick(cfg, args.target)
    only = _selection(args.only)
    lang = _language(args.config)
    if notice := builtin_notice(cfg, lang=lang):
        # stderr, first: stdout stays the report (Nagios reads its first line) or pure JSON with --json.
        print(notice, file=sys.stderr, flush=True)
    reports = asyncio.run(_check_all(targets, only, cfg.config_file))
    if args.json:
        for report in reports:
            print(json.dumps(report.to_json_dict(), ensure_ascii=False, default=str))
    else:
        from bot.render import report_text

        print("\n\n".join(report_text(r, lang=lang) for r in reports))
    return max((r.exit_code for r in reports), key=_exit_rank, default=0)


def _exit_rank(code: int) -> int:
    """Nagios 'worst wins': CRITICAL(2) > UNKNOWN(3) > WARNING(1) > OK(0)."""
    return {0: 0, 1: 1, 3: 2, 2: 3}.get(code, 2)


def cmd_checks(args: argparse.Namespace) -> int:
    from checks.diagnosis import CAUSES
    from checks.registry import CHECKS

    if args.json:
        print(json.dumps({
            "checks": [{"id": c.id, "item": c.item, "title": c.title, "description": c.description} for c in CHECKS],
            "causes": [{"cause": k, "description": v} for k, v in CAUSES.items()],
        }, indent=2))
        return 0
    from bot.i18n import t
    from checks.messages import cause_description, check_description

    lang = _language(None)
    width = max(len(c.id) for c in CHECKS)
    print(t("cli.checks_title", lang=lang))
    for c in CHECKS:
        print(f"  {c.id:<{width}}  {'[' + c.item + ']':<8} {check_description(c.id, lang) or c.description}")
    print("\n" + t("cli.causes_title", lang=lang))
    cwidth = max(len(k) for k in CAUSES)
    for cause, text in CAUSES.items():
        print(f"  {cause:<{cwidth}}  {cause_description(cause, lang) or text}")
    return 0


def cmd_config(args: argparse.Namespace) -> int:
    """The same validation as `wscheck run` (bot.settings.load_config): every problem, one line each, exit 3."""
    from bot.settings import load_config, resolve_config_path

    _, cfg = load_config(resolve_config_path(args.config))
    print(f"# config: {cfg.source}: {len(cfg.targets)} target(s), valid")
    for target in cfg.targets:
        print(json.dumps(target.masked(), indent=2))
    return 0


def cmd_trust(args: argparse.Namespace) -> int:
    from bot.ops.trust import TrustError, trust

    cfg = _load_targets(args.config)
    (target,) = _pick(cfg, args.target)
    try:
        print(trust(target, expected=args.fingerprint))
    except TrustError as exc:
        print(f"wscheck: {exc}", file=sys.stderr)
        return 1
    return 0


def _db_url(args: argparse.Namespace) -> DatabaseURL:
    """--db, else WSCHECK_DB / the `db` setting; a bad value is a usage error naming the field, never the password."""
    from bot.settings import load_settings, resolve_config_path
    from bot.store.dburl import parse_db_url

    if not args.db:
        return load_settings(resolve_config_path(args.config)).db
    try:
        return parse_db_url(args.db)
    except ValueError as exc:
        raise UsageError(f"--db: {exc}") from None


def cmd_audit(args: argparse.Namespace) -> int:
    """Read the audit table while the bot may be running (the store opens it without the bot's lock)."""
    from bot.store import Store, StoreError

    db = _db_url(args)
    if db.path is not None and not db.path.is_file():
        raise UsageError(f"no database at {db} (set WSCHECK_DB or --db)")

    async def export() -> int:
        try:
            store = await Store.open(db, exclusive=False)
        except StoreError as exc:
            raise UsageError(str(exc)) from None
        count = 0
        try:
            async for row in store.export_audit():
                print(json.dumps(row, ensure_ascii=False, default=str))
                count += 1
        finally:
            await store.close()
        return count

    asyncio.run(export())
    return 0


def cmd_db(args: argparse.Namespace) -> int:
    """`wscheck db status` (exit 0 up to date, 1 steps pending, 3 unreachable or newer than this wscheck) and
    `wscheck db migrate` (takes the bot's lock: never migrates under a running bot)."""
    from bot.i18n import t
    from bot.store import MIGRATIONS, Store, StoreError

    db = _db_url(args)
    lang = _language(args.config)
    known = len(MIGRATIONS)
    if args.db_command == "status":
        print(t("cli.db_database", lang=lang, db=str(db), engine=db.engine))
        if db.path is not None and not db.path.is_file():
            print(t("cli.db_none_yet", lang=lang, known=known))
            return 1

        async def status() -> int:
            try:
                store = await Store.open(db, exclusive=False, migrate=False)
            except StoreError as exc:
                raise UsageError(str(exc)) from None
            try:
                applied = await store.applied_migrations()
            finally:
                await store.close()
            print(t("cli.db_schema", lang=lang, version=store.schema_version, known=known))
            done, todo = t("cli.db_applied", lang=lang), t("cli.db_pending", lang=lang)
            width = max(len(done), len(todo))
            for version, name, at in applied:
                print(f"  {done:<{width}}  {version:>3}  {at.isoformat(timespec='seconds')}  {name}")
            for migration in MIGRATIONS[store.schema_version:]:
                print(f"  {todo:<{width}}  {migration.version:>3}  {'-':<25}  {migration.name}")
            return 0 if store.schema_version == known else 1

        return asyncio.run(status())

    async def migrate() -> int:
        try:
            store = await Store.open(db, exclusive=True, migrate=False)
        except StoreError as exc:
            raise UsageError(str(exc)) from None
        before = store.schema_version
        await store.close()
        try:
            store = await Store.open(db, exclusive=True)
        except StoreError as exc:
            raise UsageError(str(exc)) from None
        await store.close()
        if store.schema_version == before:
            print(t("cli.db_up_to_date", lang=lang, db=str(db), version=before))
        else:
            print(t("cli.db_migrated", lang=lang, db=str(db), before=before, after=store.schema_version))
        return 0

    return asyncio.run(migrate())


def cmd_run(args: argparse.Namespace) -> int:
    from bot.app import main as run_main

    return run_main(config=args.config, http=args.http, console=args.console)


def main(argv: Sequence[str] | None = None) -> int:
    from bot.ops.logs import setup_early_logging

    # First, before any command imports asyncssh/cryptography: warnings they emit on import become log lines.
    setup_early_logging()
    parser = build_parser()
    args = parser.parse_args(argv)
    handlers = {"check": cmd_check, "checks": cmd_checks, "config": cmd_config, "run": cmd_run, "trust": cmd_trust,
                "audit": cmd_audit, "db": cmd_db}
    if args.command is None:
        parser.print_help()
        return EXIT_UNKNOWN
    from checks.config import ConfigError

    try:
        return handlers[args.command](args)
    except ConfigError as exc:
        print(exc.lines(), file=sys.stderr)
        return EXIT_UNKNOWN
    except UsageError as exc:
        print(f"wscheck: {exc}", file=sys.stderr)
        return EXIT_UNKNOWN
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # `wscheck config | head`: the reader left; say nothing more (and keep Python from complaining at exit).
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except Exception as exc:
        # A bug or an environment we did not foresee: one log line (JSON in JSON mode) and UNKNOWN, not a
        # traceback; WSCHECK_LOG_LEVEL=debug adds the traceback to the record for whoever reports it.
        import logging

        debug = os.environ.get("WSCHECK_LOG_LEVEL", "").strip().lower() == "debug"
        logging.getLogger("wscheck").error("wscheck %s failed: %s: %s", args.command, type(exc).__name__, exc,
                                           exc_info=exc if debug else None)
        return EXIT_UNKNOWN


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

