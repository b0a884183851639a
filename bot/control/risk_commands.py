"""``/limits``: the risk limits in force and what the risk monitors see; ``/limits confirm`` records the
operator's confirmation of the limits (spec 16.1 "risk limits reset/confirmed": a resume check that must
follow the last halt). Registered by the composition root next to the control plane's own commands."""

from __future__ import annotations

from typing import Any

from bot.control.command import Reply, Sender, in_engine, refused
from bot.control.fmt import esc
from bot.control.plane import CommandSpec
from bot.engine.risk_runtime import RiskRuntime


def _fmt(value: Any) -> str:
    return format(value.normalize(), "f") if hasattr(value, "normalize") else str(value)


def limits_html(runtime: RiskRuntime) -> str:
    lim = runtime.risk.limits
    st = runtime.status()
    lo, dd, ev = lim.loss, lim.drawdown, lim.events
    confirmed = runtime.risk.limits_confirmed
    since = runtime.risk.safety.last_escalation_ns
    if confirmed is None:
        conf = "❌ not confirmed"
    elif since is not None and confirmed[0] < since:
        conf = f"❌ last confirmed by {esc(confirmed[1])}, before the last halt"
    else:
        conf = f"✅ confirmed by {esc(confirmed[1])}"
    lines = [
        "<b>Risk limits</b>",
        f"Per order: qty ≤ {_fmt(lim.max_trade_qty)}, notional ≤ {_fmt(lim.max_order_notional)}, slippage &lt; {_fmt(lim.slippage.max_bps)} bps",
        f"Position ≤ {_fmt(lim.max_position_qty)} per asset (incl. resting and in-flight orders)",
        f"Daily loss &lt; {_fmt(lo.max_daily_loss)} (per strategy {_fmt(lo.max_daily_loss_per_strategy)}), reset {lo.reset_hour_utc:02d}:00 UTC",
        f"Portfolio loss &lt; {_fmt(lo.max_portfolio_loss)} · strategy loss kill {_fmt(lo.strategy_loss_kill)}",
        f"Drawdown: throttle at {dd.throttle_at:%} (size ×{_fmt(dd.throttle_scale)}, lifted below {dd.release_at:%}), kill at {dd.kill_at:%}",
        f"Stale data {lim.stale.asset_stale_s:g} s · latency hard {lim.latency.hard_ms:g} ms · jumps {ev.jump_sigma:g}σ/{ev.jump_window_s:g} s",
        "",
        f"<b>Now</b>: {esc(st['state'])} · daily P&amp;L {_fmt(st['daily_pnl'])} · latency {esc(st['latency'])}",
    ]
    for label, key in (("Lockouts", "locked_until"), ("Throttled", "throttled"), ("Stale", "stale_assets"), ("Events", "events"), ("Flattening", "flatten")):
        if st[key]:
            lines.append(f"{label}: {esc(st[key])}")
    if st["kill_cooldown_s"]:
        lines.append(f"Automated-kill cooldown: {st['kill_cooldown_s']:.0f} s left")
    lines += ["", f"Limits: {conf}", "/limits confirm — confirm them (a /resume check)"]
    return "\n".join(lines)


def limits_command(runtime: RiskRuntime, timeout_s: float = 10.0) -> CommandSpec:
    async def handler(sender: Sender, args: list[str], ref: str) -> Reply:
        if args and args[0].lower() != "confirm":
            return refused("❌ usage: /limits or /limits confirm", failure="malformed command")
        if args:
            await in_engine(runtime.engine, lambda: runtime.confirm_limits(sender.label), timeout_s)
            return Reply("✅ Limits confirmed.\n\n" + await in_engine(runtime.engine, lambda: limits_html(runtime), timeout_s), detail="limits confirmed")
        return Reply(await in_engine(runtime.engine, lambda: limits_html(runtime), timeout_s), detail="limits shown")

    return CommandSpec("limits", "Risk limits in force; /limits confirm before /resume", "/limits confirm", handler)
