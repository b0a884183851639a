"""The canonical decision and intent logs of a run, and their comparison (REPLAY's "identical or first divergence").

Canonical logs: every ``decision`` and ``intent`` audit row of a run becomes one JSON line (sorted keys, ASCII,
exact decimal strings, event time in whole microseconds as the store keeps it) in ``decisions.jsonl`` and
``intents.jsonl``. Nothing in a line depends on the run id, the mode or wall time, so the same decisions give
byte-identical files. Both sides of a comparison (the recorded run and its replay) are read back from their
audit stores through the same functions, so what is compared is what was recorded.

A decision as compared (``Decision``) is its row plus its intents, in order; the strategy's code and parameter
hashes are reported, not compared (a changed parameter shows as the first decision it changes). Ids are compared
by correspondence, not by value: an operator's order in the recorded run took an id the replay does not take, and
the decisions after it are still the same decisions.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import IO, Any, NamedTuple


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
DECISION_FIELDS = ("event", "ts_us", "strategy_id", "decision_id", "inputs_ref", "rationale", "tags", "code_hash", "params_hash")
INTENT_FIELDS = (
    "ts_us", "strategy_id", "intent_id", "decision_id", "kind", "asset", "side", "qty", "order_type", "limit_price", "tif",
    "urgency", "risk_tags", "rationale", "target",
)
NOT_COMPARED = ("code_hash", "params_hash")


def _text(value: Any) -> Any:
    if isinstance(value, Decimal):
        return format(value, "f")
    if hasattr(value, "value") and not isinstance(value, (str, int)):
        return value.value  # enums
    return value


def _ts_us(row: dict[str, Any]) -> int:
    ts = row.get("ts")
    if isinstance(ts, datetime):
        delta = ts - _EPOCH
        return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds
    return int(row["ts_ns"]) // 1000


def canonical_decision(row: dict[str, Any]) -> dict[str, Any]:
    """A decision audit row (as recorded by the engine, or as read back from the store) -> canonical dict."""
    data = row.get("data") or {}
    out = {k: _text(row.get(k)) for k in DECISION_FIELDS if k not in ("event", "ts_us")}
    out["event"] = data.get("event") if isinstance(data, dict) else None
    out["ts_us"] = _ts_us(row)
    return out


def canonical_intent(row: dict[str, Any]) -> dict[str, Any]:
    out = {k: _text(row.get(k)) for k in INTENT_FIELDS if k != "ts_us"}
    out["ts_us"] = _ts_us(row)
    return out


def dumps(obj: dict[str, Any]) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


# ----------------------------------------------------------------------------- comparing
class Decision(NamedTuple):
    """A decision with its intents, canonical (dicts of JSON values)."""

    row: dict[str, Any]
    intents: tuple[dict[str, Any], ...]

    def compared(self) -> dict[str, Any]:
        """What must be equal, ids aside (``same`` compares the ids through the correspondence built so far)."""
        return {k: v for k, v in self.row.items() if k not in NOT_COMPARED and k != "decision_id"} | {
            "intents": [{k: v for k, v in i.items() if k not in _ID_FIELDS} for i in self.intents]
        }


_ID_FIELDS = ("intent_id", "decision_id", "target")


def _translate(target: str | None, ids: dict[str, str]) -> str | None:
    """A client order id ``<intent id>-<attempt>`` of the expected run, in the actual run's ids."""
    if target is None:
        return None
    intent_id, sep, attempt = target.rpartition("-")
    mapped = ids.get(intent_id) if sep else None
    return f"{mapped}-{attempt}" if mapped is not None else target


def same(e: Decision, a: Decision, ids: dict[str, str]) -> bool:
    """Equal decisions. Ids may be shifted (an operator's intent in the recorded run took a number the replay
    does not take): intent ids correspond by position, and a cancel must target the order its counterpart
    targeted. ``ids`` (expected intent id -> actual intent id) grows as decisions match."""
    if e.compared() != a.compared():
        return False
    for ei, ai in zip(e.intents, a.intents):
        if _translate(ei.get("target"), ids) != ai.get("target"):
            return False
    for ei, ai in zip(e.intents, a.intents):
        ids[ei["intent_id"]] = ai["intent_id"]
    return True


def group(decisions: Iterable[dict[str, Any]], intents: Iterable[dict[str, Any]]) -> Iterator[Decision]:
    """Pair each canonical decision with its intents (intents follow their decision, in the same order)."""
    pending = iter(intents)
    carry: dict[str, Any] | None = next(pending, None)
    for d in decisions:
        own: list[dict[str, Any]] = []
        while carry is not None and carry.get("decision_id") == d["decision_id"]:
            own.append(carry)
            carry = next(pending, None)
        yield Decision(d, tuple(own))


def from_lines(decision_lines: Iterable[str], intent_lines: Iterable[str]) -> Iterator[Decision]:
    return group((json.loads(x) for x in decision_lines), (json.loads(x) for x in intent_lines))


@dataclass
class Divergence:
    index: int  # position in the decision sequence (0-based)
    event: int | None  # market event index where the decisions part
    expected: Decision | None
    actual: Decision | None

    def describe(self) -> str:
        def show(d: Decision | None) -> str:
            if d is None:
                return "  (no decision)"
            lines = [f"  {d.row.get('decision_id')} at event {d.row.get('event')} ts_us={d.row.get('ts_us')} "
                     f"{d.row.get('strategy_id')} inputs={d.row.get('inputs_ref')}"]
            for i in d.intents:
                lines.append(
                    f"    {i.get('intent_id')} {i.get('kind')} {i.get('side')} {i.get('qty')} {i.get('asset')} "
                    f"{i.get('order_type')} {i.get('limit_price')} {i.get('tif')} target={i.get('target')} ({i.get('rationale')})"
                )
            if not d.intents:
                lines.append("    (no intents)")
            return "\n".join(lines)

        return (
            f"first divergence at event {self.event} (decision #{self.index + 1})\n"
            f"expected:\n{show(self.expected)}\nactual:\n{show(self.actual)}"
        )


def first_divergence(expected: Iterable[Decision], actual: Iterable[Decision]) -> tuple[Divergence | None, int]:
    """(the first difference, or None; the number of decisions compared). The event reported is where the
    two sequences part: the earlier of the two decisions' events."""
    exp_it, act_it = iter(expected), iter(actual)
    index = 0
    ids: dict[str, str] = {}
    while True:
        e = next(exp_it, None)
        a = next(act_it, None)
        if e is None and a is None:
            return None, index
        if e is None or a is None or not same(e, a, ids):
            events = [d.row.get("event") for d in (e, a) if d is not None and d.row.get("event") is not None]
            return Divergence(index, min(events) if events else None, e, a), index
        index += 1
