"""``bot replay``: the command line of REPLAY (the work is in ``bot.replay``, imported only when it runs).

    bot replay --run RUN_ID [--config FILE] [--record-dir DIR] [--out DIR] [--force] [--param ID.k=v ...]
    bot replay --data FILE [FILE ...] --strategy NAME [--param k=v ...] [--config FILE] [--out DIR] [--json FILE]
    bot replay --list [--config FILE]

Exit codes: 0 identical (or backtest done), 1 runtime failure, 2 usage or configuration error (unknown run,
code changed without --force, bad parameter), 3 store schema not at head, 4 replay diverged.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any

EXIT_OK, EXIT_FAIL, EXIT_CONFIG, EXIT_SCHEMA, EXIT_DIVERGED = 0, 1, 2, 3, 4


def _main_thread() -> bool:
    """Signal handlers can only be installed from the main thread (tests run the command in a worker thread)."""
    return threading.current_thread() is threading.main_thread()

# ----------------------------------------------------------------------------- the command
def register(sub: Any) -> None:
    p = sub.add_parser(
        "replay",
        help="re-run a recorded run (identical or first divergence) or backtest a strategy on recorded data",
        description="Re-run a recorded run and report 'identical' or the first divergence, or backtest a strategy on "
        "recorded market data, through the same pipeline as DRY_RUN with an injected clock.",
    )
    p.add_argument("--config", "-c", metavar="FILE", help="configuration: the store to read runs from; the base for --data")
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--run", metavar="RUN_ID", help="re-run this recorded run and compare its decisions")
    what.add_argument("--data", metavar="FILE", nargs="+", type=Path, help="recorded market data file(s) to backtest on")
    what.add_argument("--list", action="store_true", help="list the recent runs in the audit store")
    p.add_argument("--strategy", metavar="NAME", help="strategy entry point name (with --data)")
    p.add_argument(
        "--param", metavar="K=V", action="append", default=[],
        help="strategy parameter (repeatable); with --run: STRATEGY_ID.key=value replays with that parameter changed",
    )
    p.add_argument("--record-dir", metavar="DIR", type=Path, help="where the run's market data is (default: as recorded)")
    p.add_argument("--out", metavar="DIR", type=Path, help="keep the replay's audit database and logs here (default: temporary)")
    p.add_argument("--json", metavar="FILE", type=Path, help="also write the backtest report as JSON")
    p.add_argument("--force", action="store_true", help="replay even if the strategy code differs from the recorded run")
    p.set_defaults(func=cmd_replay)


def cmd_replay(args: argparse.Namespace) -> int:
    from bot import replay, service
    from bot.config import ConfigError, load_settings
    from bot.engine.recorder import RecordedDataError
    from bot.ops import logs
    from bot.store import migrate

    try:
        base = load_settings(args.config)
    except ConfigError as exc:
        print(f"bot replay: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    logs.configure("WARNING", base.settings.logging.json_format)
    if args.data is not None and not args.strategy:
        print("bot replay: --data needs --strategy NAME", file=sys.stderr)
        return EXIT_CONFIG
    if args.run is None and args.force:
        print("bot replay: --force applies to --run only", file=sys.stderr)
        return EXIT_CONFIG
    temp = None
    out_dir = args.out
    if out_dir is None and not args.list:
        temp = tempfile.TemporaryDirectory(prefix="bot-replay-")
        out_dir = Path(temp.name)
    elif out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
        if any(out_dir.iterdir()):
            print(f"bot replay: --out {out_dir} is not empty (a replay never overwrites earlier results)", file=sys.stderr)
            return EXIT_CONFIG
    try:
        return asyncio.run(_main(args, base, out_dir))
    except replay.ReplayError as exc:
        print(f"bot replay: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except migrate.SchemaBehind as exc:
        print(f"bot replay: {exc}", file=sys.stderr)
        return EXIT_SCHEMA
    except (RecordedDataError, service.StartupError) as exc:
        print(f"bot replay: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    finally:
        if temp is not None:
            temp.cleanup()


async def _main(args: argparse.Namespace, base: Any, out_dir: Path | None) -> int:
    from bot import replay
    from bot.store.db import redacted_url

    if args.list:
        lines = await replay.list_runs(base)
        print("\n".join(lines) if lines else f"no runs in {redacted_url(base.settings.store.url)}")
        return EXIT_OK
    assert out_dir is not None
    if args.run is not None:
        report = await replay.replay_run(
            base, args.run, record_dir=args.record_dir, out_dir=out_dir, force=args.force, params=replay.parse_params(args.param),
            install_signals=_main_thread(),
        )
        print(report.text())
        return EXIT_OK if report.identical else EXIT_DIVERGED
    params = replay.parse_params(args.param)
    result = await replay.backtest(base, args.data, args.strategy, params, out_dir, install_signals=_main_thread())
    print(result.text())
    if args.json is not None:
        args.json.write_text(json.dumps(result.as_dict(), indent=2, sort_keys=True) + "\n")
    return EXIT_OK
