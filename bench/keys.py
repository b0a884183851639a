"""Benchmark: the cost of the key store and of redaction.

- redaction per log line (empty redactor vs the secrets a LIVE service registers: Telegram token, read key,
  master key and entry fingerprints) for typical lines;
- a log record through ``logs.configure``'s handler with and without the redacting filter;
- seal / open of one entry; the trade key load at an arming (key file read + decrypt + Credentials);
- ``rotate_master`` over N entries on SQLite.

    python bench/keys.py [--lines 20000] [--entries 200]

Prints the numbers and writes bench/results/keys.json.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import io
import json
import logging
import secrets
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bot.domain.credentials import KeyScope  # noqa: E402
from bot.keys.holder import TradeKeyHolder  # noqa: E402
from bot.keys.master import FileSource, MasterKey, write_new_key_file  # noqa: E402
from bot.keys.redaction import FILTER, REDACTOR  # noqa: E402
from bot.keys.sealing import SealedEntry, encode_plaintext, open_into, register_fingerprints, seal, wipe  # noqa: E402
from bot.keys.store import KeyStore  # noqa: E402
from bot.store import migrate  # noqa: E402
from bot.store.db import create_engine  # noqa: E402

LINES = {
    "short": "order k-1 acknowledged",
    "heartbeat": "heartbeat mode=LIVE ticks=123456 intents=789 orders=321 fills=45 position[BTC/USDT]=0.00100 pnl_net=-1.2345",
    "with_hash": "starting run=9f1c2a3b4c5d6e7f8a9b0c1d2e3f4a5b mode=LIVE version=0.1.0+abcdef123456 config_hash="
    + hashlib.sha256(b"x").hexdigest(),
    "sql_params": "[generated in 0.00012s] "
    + "[('2026-01-01 00:00:00.000000', '9f1c2a3b4c5d6e7f8a9b0c1d2e3f4a5b', 'LIVE', 'quote', '0.1.0+abcdef123456', '"
    + hashlib.sha256(b"x").hexdigest()
    + "', 1, None)]" * 10,
}


def per_line_us(lines: int) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    for label in ("empty", "live_service"):
        REDACTOR.clear()
        if label == "live_service":
            REDACTOR.add(f"123456789:AA{secrets.token_urlsafe(33)}", "telegram.token")
            REDACTOR.add(secrets.token_hex(32), "read api key")
            REDACTOR.add(secrets.token_hex(32), "read secret")
            MasterKey.generate().register_fingerprints()
            for _ in range(2):
                for _ in range(2):
                    REDACTOR.add_fingerprint(secrets.token_hex(32).encode(), "entry")
        out[label] = {}
        for name, line in LINES.items():
            start = time.perf_counter()
            for _ in range(lines):
                REDACTOR.redact(line)
            out[label][name] = round((time.perf_counter() - start) / lines * 1e6, 2)
    return out


def logging_overhead(lines: int) -> dict[str, float]:
    log = logging.getLogger("bench.keys")
    log.propagate = False
    handler = logging.StreamHandler(io.StringIO())
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    result = {}
    for label in ("without_filter", "with_filter"):
        if label == "with_filter":
            handler.addFilter(FILTER)
        start = time.perf_counter()
        for i in range(lines):
            log.info("heartbeat mode=%s ticks=%d config_hash=%s", "LIVE", i, LINES["with_hash"][-64:])
        result[label] = round((time.perf_counter() - start) / lines * 1e6, 2)
    log.removeHandler(handler)
    return result


async def store_numbers(entries: int, tmp: Path) -> dict[str, float]:
    key_file, new_file = tmp / "old.key", tmp / "new.key"
    write_new_key_file(key_file)
    write_new_key_file(new_file)
    source = FileSource(key_file)
    out: dict[str, float] = {}
    with source.load() as master:
        plaintext = encode_plaintext(secrets.token_hex(32), secrets.token_hex(32), None)
        n = 2000
        start = time.perf_counter()
        for _ in range(n):
            ct = seal(master, "binance", KeyScope.TRADE, "t1", "abcd...wxyz", plaintext)
        out["seal_us"] = round((time.perf_counter() - start) / n * 1e6, 2)
        entry = SealedEntry("binance", KeyScope.TRADE, "t1", "abcd...wxyz", master.key_id, ct)
        start = time.perf_counter()
        for _ in range(n):
            buf = open_into(master, entry)
            register_fingerprints(buf, "bench")
            wipe(buf)
        out["open_and_fingerprint_us"] = round((time.perf_counter() - start) / n * 1e6, 2)
        wipe(plaintext)
    holder = TradeKeyHolder(entry, source, is_armed=lambda: True)
    n = 500
    start = time.perf_counter()
    for _ in range(n):
        holder.load("bench")
        holder.drop_now("bench")
    out["arm_load_then_drop_ms"] = round((time.perf_counter() - start) / n * 1e3, 3)

    db = create_engine(f"sqlite+aiosqlite:///{tmp / 'bench.db'}")
    await migrate.upgrade(db)
    store = KeyStore(db, time.time_ns)
    with source.load() as master:
        for i in range(entries):
            await store.add(master, f"venue{i // 2}", KeyScope.READ if i % 2 == 0 else KeyScope.TRADE, secrets.token_hex(32), secrets.token_hex(32))
    with source.load() as old, FileSource(new_file).load() as new:
        start = time.perf_counter()
        count = await store.rotate_master(old, new)
        out["rotate_master_s"] = round(time.perf_counter() - start, 3)
        out["rotated_entries"] = count
        start = time.perf_counter()
        listed = await store.entries()
        for e in listed:
            wipe(open_into(new, e))
        out["startup_verify_all_s"] = round(time.perf_counter() - start, 3)
    await db.dispose()
    return out


def main() -> None:
    logging.getLogger("bot.keys").setLevel(logging.ERROR)  # the holder announces every load and drop
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lines", type=int, default=20000)
    parser.add_argument("--entries", type=int, default=200)
    args = parser.parse_args()
    results: dict[str, object] = {"redact_us_per_line": per_line_us(args.lines), "log_record_us": logging_overhead(args.lines)}
    with tempfile.TemporaryDirectory() as tmp:
        results["store"] = asyncio.run(store_numbers(args.entries, Path(tmp)))
    REDACTOR.clear()
    results["params"] = {"lines": args.lines, "entries": args.entries}
    text = json.dumps(results, indent=2)
    print(text)
    out = Path(__file__).resolve().parent / "results" / "keys.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(text + "\n")


if __name__ == "__main__":
    main()
