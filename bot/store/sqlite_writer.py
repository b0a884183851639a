"""An audit writer in its own process, for SQLite under a high write rate (REPLAY and backtests).

Why a process: the interpreter lock. In a thread, the SQLite writer needs the lock to bind every parameter and
between statements, and a busy engine thread holds it; the two end up taking turns instead of running side by
side (measured: a writer thread slowed 3.5x beside a busy thread). In a process the writer runs on the other
core; the engine's process only pickles the rows (tuples of plain values, already converted by ``AuditStore``).

The child is a standard-library-only script run with ``python -I -c`` (``WRITER``): it imports nothing of ours,
so it cannot run other code than this, whatever the parent's import path or main module.

Protocol over its stdin/stdout: length-prefixed pickles. The parent sends ``[(sql, rows), ...]`` (one transaction);
the child answers ``(True, None)`` after COMMIT or ``(False, "<error>")`` after ROLLBACK; an empty frame asks it to
stop. A write that fails, or a writer that died, raises ``AuditWriteError`` in the parent: the rows stay buffered
(nothing is lost) and the engine stops.
"""

from __future__ import annotations

import asyncio
import pickle
import struct
import subprocess
import sys
from typing import Any

Batch = list[tuple[str, list[tuple[Any, ...]]]]
_LEN = struct.Struct("<Q")

WRITER = r"""
import pickle, sqlite3, struct, sys
LEN = struct.Struct("<Q")
inp, out = sys.stdin.buffer, sys.stdout.buffer
def read():
    head = inp.read(8)
    if len(head) < 8:
        return None
    (n,) = LEN.unpack(head)
    if n == 0:
        return None
    data = inp.read(n)
    return pickle.loads(data) if len(data) == n else None
def reply(obj):
    data = pickle.dumps(obj, protocol=5)
    out.write(LEN.pack(len(data)) + data)
    out.flush()
db = sqlite3.connect(sys.argv[1], isolation_level=None)
for pragma in ("journal_mode=WAL", "synchronous=NORMAL", "busy_timeout=5000", "foreign_keys=ON"):
    db.execute("PRAGMA " + pragma)
while True:
    batch = read()
    if batch is None:
        break
    try:
        db.execute("BEGIN IMMEDIATE")
        for sql, rows in batch:
            db.executemany(sql, rows)
        db.execute("COMMIT")
        reply((True, None))
    except Exception as exc:
        try:
            db.execute("ROLLBACK")
        except sqlite3.Error:
            pass
        reply((False, type(exc).__name__ + ": " + str(exc)))
db.close()
"""


class AuditWriteError(Exception):
    """The writer process refused or failed a batch (or is gone)."""


class ProcessWriter:
    """The parent's side. The child starts with the first write (construction does no I/O). A batch travels in
    an executor thread (blocking pipe I/O releases the interpreter lock): the event loop, and the engine, go on."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._proc: subprocess.Popen[bytes] | None = None
        self._closed = False

    def _roundtrip(self, data: bytes) -> tuple[bool, str | None]:
        if self._proc is None:
            self._proc = subprocess.Popen(  # noqa: S603 - our own fixed script, the database path as its argument
                [sys.executable, "-I", "-c", WRITER, self.path], stdin=subprocess.PIPE, stdout=subprocess.PIPE
            )
        proc = self._proc
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.write(_LEN.pack(len(data)))
        proc.stdin.write(data)
        proc.stdin.flush()
        head = proc.stdout.read(_LEN.size)
        if len(head) < _LEN.size:
            raise EOFError("no answer")
        (n,) = _LEN.unpack(head)
        body = proc.stdout.read(n)
        if len(body) < n:
            raise EOFError("answer cut short")
        ok, error = pickle.loads(body)
        return ok, error

    async def write(self, batch: Batch) -> None:
        """Send one transaction; return once the child committed it."""
        if self._closed:
            raise AuditWriteError("the audit writer is closed")
        data = pickle.dumps(batch, protocol=5)
        try:
            ok, error = await asyncio.get_running_loop().run_in_executor(None, self._roundtrip, data)
        except (EOFError, OSError) as exc:
            code = self._proc.poll() if self._proc is not None else None
            raise AuditWriteError(f"the audit writer process is gone (exit {code}; {type(exc).__name__}: {exc})") from None
        if not ok:
            raise AuditWriteError(error)

    async def close(self, timeout_s: float = 10.0) -> None:
        if self._closed:
            return
        self._closed = True
        proc = self._proc
        if proc is None:
            return

        def stop() -> None:
            assert proc.stdin is not None and proc.stdout is not None
            try:
                proc.stdin.write(_LEN.pack(0))
                proc.stdin.close()
            except OSError:
                pass
            try:
                proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            proc.stdout.close()

        await asyncio.get_running_loop().run_in_executor(None, stop)
