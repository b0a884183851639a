"""Comparing decision logs: the first divergence, ids by correspondence, operator decisions."""

from __future__ import annotations

from typing import Any

from bot.engine.decision_log import Decision, first_divergence


def decision(did: str, event: int, intents: list[dict[str, Any]], price: str = "100") -> Decision:
    row = {"decision_id": did, "event": event, "ts_us": event, "strategy_id": "q", "inputs_ref": f"sim:X:{event}", "rationale": "",
           "tags": "", "code_hash": "c", "params_hash": "p"}
    return Decision(row, tuple(dict(i, decision_id=did) for i in intents))


def place(iid: str, price: str = "100") -> dict[str, Any]:
    return {"intent_id": iid, "kind": "PLACE", "side": "BUY", "qty": "1", "limit_price": price, "target": None, "ts_us": 0}


def cancel(iid: str, target: str) -> dict[str, Any]:
    return {"intent_id": iid, "kind": "CANCEL", "side": "BUY", "qty": "1", "limit_price": "100", "target": target, "ts_us": 0}


def test_identical_and_shifted_ids_are_the_same_decisions() -> None:
    expected = [decision("r-d1", 5, [place("r-1")]), decision("r-d3", 9, [cancel("r-3", "r-1-0"), place("r-4")])]
    assert first_divergence(expected, expected) == (None, 2)
    # the replay numbered everything one lower (an operator's intent took r-2 in the recorded run)
    shifted = [decision("r-d1", 5, [place("r-1")]), decision("r-d2", 9, [cancel("r-2", "r-1-0"), place("r-3")])]
    assert first_divergence(expected, shifted) == (None, 2)


def test_first_divergence_reports_the_event_and_both_decisions() -> None:
    expected = [decision("r-d1", 5, [place("r-1")]), decision("r-d2", 9, [place("r-2", "101")])]
    actual = [decision("r-d1", 5, [place("r-1")]), decision("r-d2", 9, [place("r-2", "102")])]
    div, compared = first_divergence(expected, actual)
    assert div is not None and (div.index, div.event, compared) == (1, 9, 1)
    assert "first divergence at event 9 (decision #2)" in div.describe()
    # a missing decision: the event is the one of the side that has it
    div, _ = first_divergence(expected, actual[:1])
    assert div is not None and div.event == 9 and div.actual is None


def test_a_cancel_of_another_order_diverges() -> None:
    expected = [decision("d1", 1, [place("r-1"), place("r-2")]), decision("d2", 2, [cancel("r-3", "r-1-0")])]
    actual = [decision("d1", 1, [place("r-1"), place("r-2")]), decision("d2", 2, [cancel("r-3", "r-2-0")])]
    div, _ = first_divergence(expected, actual)
    assert div is not None and div.event == 2
