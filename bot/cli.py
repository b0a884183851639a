"""The ``bot`` command.

    bot run [--config FILE]            run the service (no config: embedded DRY_RUN defaults)
    bot config check [--config FILE]   validate, print the effective configuration (secrets masked) and its hash
    bot db upgrade|current|downgrade   manage the schema (Alembic)
    bot keys add|list|remove|verify|rotate-master|gen-master   the encrypted key store (docs/keys.md)

Other subcommands register themselves through ``COMMANDS`` (replay, keys, report) as their issues land.
Exit codes: 0 ok, 1 runtime failure, 2 configuration or usage error, 3 schema not at head.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Callable, Sequence
from typing import Any

from bot.config import ConfigError, LoadedConfig, load_settings, public_dict
from bot.ops import logs

EXIT_OK, EXIT_FAIL, EXIT_CONFIG, EXIT_SCHEMA = 0, 1, 2, 3


def _config_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", "-c", metavar="FILE", help="TOML configuration file (default: embedded defaults)")


def _load(args: argparse.Namespace) -> LoadedConfig:
    return load_settings(args.config)


def _hint(args: argparse.Namespace) -> str:
    return f" --config {args.config}" if getattr(args, "config", None) else ""


# ----------------------------------------------------------------------------- run
def cmd_run(args: argparse.Namespace) -> int:
    from bot import service
    from bot.store.migrate import SchemaBehind

    loaded = _load(args)
    logs.configure(loaded.settings.logging.level, loaded.settings.logging.json_format)

    async def main() -> int:
        try:
            svc = await service.build(loaded, config_hint=_hint(args))
        except SchemaBehind as exc:
            print(f"bot: refusing to start: {exc}", file=sys.stderr)
            return EXIT_SCHEMA
        except service.StartupError as exc:
            print(f"bot: refusing to start: {exc}", file=sys.stderr)
            return EXIT_CONFIG
        return await service.run(svc)

    return asyncio.run(main())


# ----------------------------------------------------------------------------- config
def cmd_config_check(args: argparse.Namespace) -> int:
    loaded = _load(args)
    print(f"# configuration: {loaded.source}")
    print(f"# mode: {loaded.settings.mode.value}")
    for key in loaded.overrides:
        print(f"# override for {loaded.settings.mode.value}: {key}")
    print(json.dumps(public_dict(loaded.settings), indent=2, sort_keys=True))
    print(f"config hash: {loaded.hash}")
    return EXIT_OK


# ----------------------------------------------------------------------------- db
def cmd_db(args: argparse.Namespace) -> int:
    from bot.store import migrate
    from bot.store.db import create_engine, redacted_url

    loaded = _load(args)
    url = loaded.settings.store.url

    async def main() -> int:
        engine = create_engine(url, schema=loaded.settings.store.pg_schema)
        try:
            if args.db_command == "upgrade":
                await migrate.upgrade(engine, args.revision)
                print(f"database {redacted_url(url)} is at {', '.join(sorted(await migrate.database_heads(engine)))}")
            elif args.db_command == "downgrade":
                if not args.yes:
                    print("bot: downgrade drops tables and audit history; repeat with --yes to proceed", file=sys.stderr)
                    return EXIT_CONFIG
                await migrate.downgrade(engine, args.revision)
                print(f"database {redacted_url(url)} is at {', '.join(sorted(await migrate.database_heads(engine))) or 'base'}")
            else:
                current = await migrate.database_heads(engine)
                heads = migrate.code_heads()
                state = "up to date" if current == heads else "BEHIND: run 'bot db upgrade" + _hint(args) + "'"
                print(f"database {redacted_url(url)}: {', '.join(sorted(current)) or 'empty'} (code: {', '.join(sorted(heads))}) {state}")
        finally:
            await engine.dispose()
        return EXIT_OK

    return asyncio.run(main())


# ----------------------------------------------------------------------------- parser
Registrar = Callable[[Any], None]
COMMANDS: list[Registrar] = []  # extra subcommands: each gets the subparsers object


def _register_keys(sub: Any) -> None:
    from bot.keys.cli import register  # the keys part owns its commands (bot/keys/cli.py)

    register(sub, configure_logging=logs.configure)


COMMANDS.append(_register_keys)


def _register_report(sub: Any) -> None:
    from bot.ops.report_cli import register

    register(sub)


COMMANDS.append(_register_report)  # bot report daily (bot/ops/report_cli.py)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bot", description="Trading bot service controlled from Telegram.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("run", help="run the service")
    _config_arg(p)
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("config", help="configuration tools")
    csub = p.add_subparsers(dest="config_command", required=True)
    pc = csub.add_parser("check", help="validate and print the effective configuration with secrets masked")
    _config_arg(pc)
    pc.set_defaults(func=cmd_config_check)

    p = sub.add_parser("db", help="database schema (Alembic)")
    dsub = p.add_subparsers(dest="db_command", required=True)
    for name, help_text in (("upgrade", "migrate to the newest schema"), ("current", "show the schema revision"), ("downgrade", "migrate down")):
        pd = dsub.add_parser(name, help=help_text)
        _config_arg(pd)
        if name == "upgrade":
            pd.add_argument("revision", nargs="?", default="heads")
        if name == "downgrade":
            pd.add_argument("revision", nargs="?", default="-1")
            pd.add_argument("--yes", action="store_true", help="confirm that audit history may be dropped")
        pd.set_defaults(func=cmd_db)

    from bot import replay_cli  # light: the replay machinery is imported only when the command runs

    replay_cli.register(sub)
    for register in COMMANDS:
        register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra:
        if getattr(args, "secret_input", False):  # never echo them: a secret typed on the command line by mistake
            print(f"bot: {len(extra)} unexpected argument(s) refused and not shown; secrets are never taken from the command "
                  "line (see 'bot keys add --help'). A secret typed there is exposed (shell history, ps): rotate it on the venue.",
                  file=sys.stderr)
            return EXIT_CONFIG
        parser.error("unrecognized arguments: " + " ".join(extra))
    try:
        return int(args.func(args))
    except ConfigError as exc:
        print(f"bot: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except KeyboardInterrupt:
        return EXIT_FAIL


if __name__ == "__main__":
    sys.exit(main())
