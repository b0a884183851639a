"""``bot keys ...``: manage the encrypted key store.

    bot keys add --venue V --kind read|trade [--key-id ID] [--passphrase] [--replace]
    bot keys list
    bot keys remove --venue V --kind read|trade [--key-id ID] --yes
    bot keys verify [--offline]
    bot keys rotate-master --new-key-file FILE
    bot keys gen-master --out FILE

Secrets are never taken from the command line (it ends up in shell history and ``ps``): ``add`` prompts
without echo on a terminal, or reads lines from stdin (API key, secret, then the passphrase if
``--passphrase``). Every command takes ``--config FILE`` for the database and the master-key settings and is
recorded in the audit store (``operator_commands``, never with a secret). Exit codes as ``bot``: 0 ok,
1 failure (a verify check failed, a key problem), 2 usage or configuration error, 3 schema not at head.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import logging
import sys
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

EXIT_OK, EXIT_FAIL, EXIT_CONFIG, EXIT_SCHEMA = 0, 1, 2, 3
log = logging.getLogger(__name__)

ConfigureLogging = Callable[[str, bool], None]


# ---------------------------------------------------------------------------------------------- registration
def register(sub: Any, configure_logging: ConfigureLogging | None = None) -> None:
    """Add ``keys`` to the ``bot`` parser. ``configure_logging(level, json)`` comes from the caller (bot.cli)."""
    p = sub.add_parser("keys", help="encrypted venue API keys and the master key (docs/keys.md)")
    ksub = p.add_subparsers(dest="keys_command", required=True)

    def common(q: argparse.ArgumentParser) -> None:
        q.add_argument("--config", "-c", metavar="FILE", help="TOML configuration file (default: embedded defaults)")
        q.set_defaults(configure_logging=configure_logging)

    def venue_kind(q: argparse.ArgumentParser, key_id_help: str) -> None:
        q.add_argument("--venue", required=True, help="exchange id, e.g. binance")
        q.add_argument("--kind", required=True, choices=["read", "trade"], help="read-only key or trade key")
        q.add_argument("--key-id", help=key_id_help)

    q = ksub.add_parser(
        "add",
        help="add a key: the secret is read without echo from the terminal, or from stdin",
        description="Seal a venue API key into the key store. On a terminal the API key, the secret (and the passphrase "
        "with --passphrase) are asked for without echo; otherwise stdin must hold them, one per line. They are never "
        "accepted on the command line.",
    )
    common(q)
    venue_kind(q, "a label for the entry (default: generated)")
    q.add_argument("--passphrase", action="store_true", help="the venue also issued a passphrase: ask for it too")
    q.add_argument("--replace", action="store_true", help="swap an existing key of this venue and kind atomically")
    q.set_defaults(func=cmd_add, secret_input=True)  # bot.cli refuses stray arguments without echoing them

    q = ksub.add_parser("list", help="venue, kind, key id, masked API key, master key id, created and last used")
    common(q)
    q.set_defaults(func=cmd_list)

    q = ksub.add_parser("remove", help="remove a key")
    common(q)
    venue_kind(q, "only this entry (default: the venue's key of that kind)")
    q.add_argument("--yes", action="store_true", help="confirm the removal")
    q.set_defaults(func=cmd_remove)

    q = ksub.add_parser("verify", help="open every entry; check each key against its venue where possible")
    common(q)
    q.add_argument("--offline", action="store_true", help="only check that every entry opens (no venue calls)")
    q.set_defaults(func=cmd_verify)

    q = ksub.add_parser("rotate-master", help="re-encrypt every entry under a new master key, atomically")
    common(q)
    q.add_argument("--new-key-file", required=True, metavar="FILE", help="the new master key (bot keys gen-master --out FILE)")
    q.set_defaults(func=cmd_rotate_master)

    q = ksub.add_parser("gen-master", help="write a new random master key to a new file (mode 0600)")
    q.add_argument("--out", required=True, metavar="FILE", help="the file to create (never overwritten)")
    q.set_defaults(func=cmd_gen_master, configure_logging=configure_logging)


# ---------------------------------------------------------------------------------------------- plumbing
class _Context:
    """Settings, database and audit for one command; logging configured, config secrets registered."""

    def __init__(self, args: argparse.Namespace) -> None:
        from bot.config import load_settings
        from bot.keys.runtime import register_config_secrets

        self.args = args
        self.loaded = load_settings(args.config)
        self.settings = self.loaded.settings
        configure = getattr(args, "configure_logging", None)
        if configure is not None:
            configure(self.settings.logging.level, self.settings.logging.json_format)
        register_config_secrets(self.settings)
        self.hint = f" --config {args.config}" if args.config else ""

    async def __aenter__(self) -> "_Context":
        from bot.engine.clock import WallClock
        from bot.keys.store import KeyStore
        from bot.store.audit import AuditStore
        from bot.store.db import create_engine
        from bot.store.migrate import check_schema

        s = self.settings
        self.clock = WallClock()
        self.db = create_engine(s.store.url, schema=s.store.pg_schema)
        try:
            await check_schema(self.db, self.hint)
        except Exception:
            await self.db.dispose()
            raise
        self.store = KeyStore(self.db, self.clock.now_ns)
        self.audit = AuditStore(
            self.db, run_id="cli-" + uuid.uuid4().hex[:28], mode=s.mode.value, version_hash=_version(),
            config_hash=self.loaded.hash, now_ns=self.clock.now_ns,
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        try:
            await self.audit.flush()
        finally:
            await self.db.dispose()

    def record(self, command: str, args: str, outcome: str, detail: str = "") -> None:
        from bot.keys.redaction import redact

        self.audit.record("command", {"command": command, "args": redact(args), "outcome": outcome, "detail": redact(detail)[:2000]})

    def source(self) -> Any:
        from bot.keys.errors import MasterKeyError
        from bot.keys.master import no_source_message, resolve_source

        source = resolve_source(self.settings.keys, self.settings.mode)
        if source is None:
            raise MasterKeyError(no_source_message(self.settings.keys))
        return source


def _version() -> str:
    import bot

    return f"{bot.__version__}+cli"


def _run(args: argparse.Namespace, body: Callable[[_Context], Any]) -> int:
    """Common error handling: every failure is one clear line on stderr and a non-zero exit."""
    from bot.config import ConfigError
    from bot.keys.errors import InvalidKeyInput, KeyExists, KeyNotFound, KeyStoreError
    from bot.store.migrate import SchemaBehind

    try:
        ctx = _Context(args)
    except ConfigError as exc:
        print(f"bot: {exc}", file=sys.stderr)
        return EXIT_CONFIG

    async def main() -> int:
        async with ctx:
            return int(await body(ctx))

    try:
        return asyncio.run(main())
    except SchemaBehind as exc:
        print(f"bot keys: {exc}", file=sys.stderr)
        return EXIT_SCHEMA
    except (InvalidKeyInput, KeyExists, KeyNotFound) as exc:
        print(f"bot keys: {_redacted(exc)}", file=sys.stderr)
        return EXIT_CONFIG
    except KeyStoreError as exc:
        print(f"bot keys: {_redacted(exc)}", file=sys.stderr)
        return EXIT_FAIL


def _redacted(exc: BaseException) -> str:
    from bot.keys.redaction import redact

    return redact(str(exc))


def _fmt_time(value: Any) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%SZ") if value is not None else "never"


# ---------------------------------------------------------------------------------------------- secret input
def read_secrets(passphrase: bool, stdin: TextIO | None = None) -> tuple[str, str, str | None]:
    """From the terminal without echo (getpass), or from stdin lines when stdin is not a terminal."""
    from bot.keys.errors import InvalidKeyInput

    stream = stdin if stdin is not None else sys.stdin
    if stream.isatty():
        api_key = getpass.getpass("API key (input hidden): ").strip()
        secret = getpass.getpass("API secret (input hidden): ").strip()
        phrase = getpass.getpass("Passphrase (input hidden): ") if passphrase else None
    else:
        lines = [line.rstrip("\r\n") for line in stream.read().splitlines()]
        while lines and not lines[-1].strip():
            lines.pop()
        wanted = 3 if passphrase else 2
        if len(lines) != wanted:
            raise InvalidKeyInput(
                f"stdin must hold exactly {wanted} lines: the API key, the secret" + (" and the passphrase" if passphrase else "")
                + f"; got {len(lines)}"
            )
        api_key, secret = lines[0].strip(), lines[1].strip()
        phrase = lines[2] if passphrase else None
    if not api_key or not secret:
        raise InvalidKeyInput("the API key and the secret must not be empty")
    return api_key, secret, phrase


# ---------------------------------------------------------------------------------------------- commands
def cmd_add(args: argparse.Namespace) -> int:
    async def body(ctx: _Context) -> int:
        from bot.domain.credentials import KeyScope
        from bot.keys.errors import KeyStoreError
        from bot.keys.store import check_venue

        kind = KeyScope(args.kind)
        check_venue(args.venue)
        what = f"venue={args.venue} kind={kind.value} key_id={args.key_id or '-'} replace={args.replace}"
        try:
            api_key, secret, phrase = read_secrets(args.passphrase)
            with ctx.source().load() as master:
                entry = await ctx.store.add(master, args.venue, kind, api_key, secret, phrase, key_id=args.key_id, replace=args.replace)
            del api_key, secret, phrase
        except KeyStoreError as exc:
            ctx.record("keys add", what, "refused", str(exc))
            raise
        ctx.record("keys add", what, "ok", f"added {entry.label} api key {entry.api_key_masked} under {entry.master_key_id}")
        print(f"added {entry.kind.value} key {entry.key_id} for {entry.venue}: api key {entry.api_key_masked}, master key {entry.master_key_id}")
        print(f"check it against the venue: bot keys verify{ctx.hint}")
        return EXIT_OK

    return _run(args, body)


def cmd_list(args: argparse.Namespace) -> int:
    async def body(ctx: _Context) -> int:
        entries = await ctx.store.entries()
        if not entries:
            print(f"the key store is empty: add keys with: bot keys add --venue binance --kind read{ctx.hint}")
            return EXIT_OK
        rows = [("VENUE", "KIND", "KEY ID", "API KEY", "MASTER KEY", "CREATED", "LAST USED")]
        rows += [(e.venue, e.kind.value, e.key_id, e.api_key_masked, e.master_key_id, _fmt_time(e.created_at), _fmt_time(e.last_used_at)) for e in entries]
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        for r in rows:
            print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())
        return EXIT_OK

    return _run(args, body)


def cmd_remove(args: argparse.Namespace) -> int:
    async def body(ctx: _Context) -> int:
        from bot.domain.credentials import KeyScope
        from bot.keys.errors import KeyNotFound

        kind = KeyScope(args.kind)
        what = f"venue={args.venue} kind={kind.value} key_id={args.key_id or '-'}"
        if not args.yes:
            current = await ctx.store.get(args.venue, kind)
            if current is None:
                raise KeyNotFound(f"no {kind.value} key for {args.venue} (see: bot keys list)")
            print(f"bot keys remove: this removes {current.label} (api key {current.api_key_masked}); repeat with --yes", file=sys.stderr)
            return EXIT_CONFIG
        try:
            entry = await ctx.store.remove(args.venue, kind, args.key_id)
        except KeyNotFound as exc:
            ctx.record("keys remove", what, "refused", str(exc))
            raise
        ctx.record("keys remove", what, "ok", f"removed {entry.label}")
        print(f"removed {entry.kind.value} key {entry.key_id} for {entry.venue} (api key {entry.api_key_masked}); "
              "revoke it on the venue too if it is no longer used")
        return EXIT_OK

    return _run(args, body)


def cmd_verify(args: argparse.Namespace) -> int:
    async def body(ctx: _Context) -> int:
        from bot.keys.errors import TamperedEntry, WrongMasterKey
        from bot.keys.sealing import credentials_from, open_into, wipe
        from bot.keys.verify import Check, EntryReport, verify_online

        entries = await ctx.store.entries()
        if not entries:
            print("the key store is empty: nothing to verify")
            return EXIT_OK
        reports: list[EntryReport] = []
        online: list[tuple[EntryReport, Any]] = []
        with ctx.source().load() as master:
            print(f"master key {master.key_id} from {master.source}")
            for entry in entries:
                report = EntryReport(entry)
                reports.append(report)
                try:
                    buf = open_into(master, entry)
                except (WrongMasterKey, TamperedEntry) as exc:
                    report.checks.append(Check("integrity", "fail", str(exc)))
                    continue
                try:
                    report.checks.append(Check("integrity", "ok", f"opens under master key {master.key_id}"))
                    if not args.offline:
                        online.append((report, credentials_from(buf, entry)))
                finally:
                    wipe(buf)
        for report, creds in online:
            report.checks.extend(await verify_online(ctx.settings, creds))
            await ctx.store.touch(report.entry)
        online.clear()
        failed = False
        for report in reports:
            e = report.entry
            print(f"{e.venue} {e.kind.value} {e.key_id} (api key {e.api_key_masked})")
            for check in report.checks:
                print(f"  {check.status.upper():8} {check.name}: {check.detail}")
            failed |= report.failed
        summary = "; ".join(f"{r.entry.label}={'FAIL' if r.failed else 'ok'}" for r in reports)
        ctx.record("keys verify", "offline" if args.offline else "online", "error" if failed else "ok", summary)
        print("verify: FAILED" if failed else "verify: ok")
        return EXIT_FAIL if failed else EXIT_OK

    return _run(args, body)


def cmd_rotate_master(args: argparse.Namespace) -> int:
    async def body(ctx: _Context) -> int:
        from bot.keys.errors import KeyStoreError
        from bot.keys.master import FileSource

        new_source = FileSource(Path(args.new_key_file), what="--new-key-file")
        try:
            with ctx.source().load() as old, new_source.load() as new:
                count = await ctx.store.rotate_master(old, new)
                old_id, new_id = old.key_id, new.key_id
        except KeyStoreError as exc:
            ctx.record("keys rotate-master", f"new_key_file={args.new_key_file}", "refused", str(exc))
            raise
        ctx.record("keys rotate-master", f"new_key_file={args.new_key_file}", "ok", f"{count} entries re-sealed {old_id} -> {new_id}")
        print(f"re-encrypted {count} entr{'y' if count == 1 else 'ies'} from master key {old_id} to {new_id} (one transaction: committed).")
        print("Now install the new key where the service reads it, then restart the service (docs/keys.md, 'Rotating the master key'):")
        print(f"  systemd credential: systemd-creds encrypt --name={ctx.settings.keys.credential_name} {args.new_key_file} /etc/bot/{ctx.settings.keys.credential_name}.cred")
        print(f"  or key file:        install -m 0600 {args.new_key_file} <keys.master_key_file>")
        print("Then destroy the old key and the new key's plain copy (shred -u FILE).")
        return EXIT_OK

    return _run(args, body)


def cmd_gen_master(args: argparse.Namespace) -> int:
    from bot.keys.errors import MasterKeyError
    from bot.keys.master import write_new_key_file

    try:
        key_id = write_new_key_file(Path(args.out))
    except MasterKeyError as exc:
        print(f"bot keys: {exc}", file=sys.stderr)
        return EXIT_FAIL
    print(f"wrote a new master key {key_id} to {args.out} (mode 0600). Keep a backup offline: without it the key store cannot be opened.")
    return EXIT_OK
