"""``bot report daily --date YYYY-MM-DD [--out FILE] [--config FILE] [--html]``.

Prints the daily summary of one report day (it ends at ``ops.daily_summary_time`` in ``ops.timezone``;
see docs/operations.md) and writes its chart as a PNG to ``--out``. The day still running is reported up
to now. Reads the database and the recorded market data; changes nothing.
Exit codes: 0 ok, 1 runtime failure, 2 usage or configuration error, 3 schema not at head.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

EXIT_OK, EXIT_FAIL, EXIT_CONFIG, EXIT_SCHEMA = 0, 1, 2, 3


def register(sub: Any) -> None:
    p = sub.add_parser("report", help="reports from the audit store")
    rsub = p.add_subparsers(dest="report_command", required=True)
    d = rsub.add_parser("daily", help="the daily summary of one report day (message text and PNG chart)")
    d.add_argument("--date", required=True, metavar="YYYY-MM-DD", help="the report day (it ends at ops.daily_summary_time)")
    d.add_argument("--out", metavar="FILE", help="write the chart (PNG) to this file")
    d.add_argument("--html", action="store_true", help="print the Telegram HTML instead of plain text")
    d.add_argument("--config", "-c", metavar="FILE", help="TOML configuration file (default: embedded defaults)")
    d.set_defaults(func=cmd_report_daily)


def cmd_report_daily(args: argparse.Namespace) -> int:
    from zoneinfo import ZoneInfo

    from bot.config import load_settings
    from bot.ops.marketdata import RecordedPrices
    from bot.ops.summary import build_daily_summary
    from bot.store.db import create_engine
    from bot.store.migrate import SchemaBehind, check_schema

    try:
        day = date.fromisoformat(args.date)
    except ValueError:
        print(f"bot: --date {args.date!r}: use YYYY-MM-DD, e.g. --date 2026-03-29", file=sys.stderr)
        return EXIT_CONFIG
    out = Path(args.out) if args.out else None
    if out is not None and not out.parent.is_dir():
        print(f"bot: --out {out}: the directory {out.parent} does not exist", file=sys.stderr)
        return EXIT_CONFIG
    loaded = load_settings(args.config)
    s = loaded.settings
    hint = f" --config {args.config}" if args.config else ""

    async def main() -> int:
        db = create_engine(s.store.url, schema=s.store.pg_schema)
        try:
            await check_schema(db, hint)
            summary = await build_daily_summary(
                db, day, ZoneInfo(s.ops.timezone), at=s.ops.daily_summary_time, prices=RecordedPrices(s.market.record_dir),
                now=datetime.now(UTC), configured_mode=s.mode.value, outliers=s.ops.summary_outliers, bucket_min=s.ops.regime_bucket_min,
                trend_er=s.ops.regime_trend_er, high_vol_mult=s.ops.regime_high_vol_mult,
            )
        except SchemaBehind as exc:
            print(f"bot: {exc}", file=sys.stderr)
            return EXIT_SCHEMA
        except ValueError as exc:
            print(f"bot: {exc}", file=sys.stderr)
            return EXIT_CONFIG
        finally:
            await db.dispose()
        print(summary.text_html if args.html else summary.text_plain)
        if out is not None:
            tmp = out.with_name(out.name + ".tmp")
            tmp.write_bytes(summary.png_bytes)
            tmp.replace(out)
            print(f"chart: {out} ({len(summary.png_bytes)} bytes)", file=sys.stderr)
        return EXIT_OK

    return asyncio.run(main())
