"""Configuration: one TOML file per run plus environment variables (``BOT_`` prefix, ``__`` for nesting).

Rules (spec 8.7, DESIGN contracts):
- unknown keys are errors, and every error names the key and the file;
- secrets (``SecretStr`` fields) come only from the environment or a credential, never from the file;
- ``[mode_overrides.<mode>]`` tables override keys for one mode; every override is reported (and logged);
- the config hash covers the effective configuration with secrets excluded.
"""

from __future__ import annotations

import hashlib
import json
import os
import tomllib
from datetime import time as dtime
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from bot.domain.modes import Mode


class ConfigError(Exception):
    """A configuration problem, with the key and the file in the message."""


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# --------------------------------------------------------------------------- sections
class StoreSettings(Section):
    url: str = Field("sqlite+aiosqlite:///./var/bot.db", description="SQLAlchemy async URL (sqlite+aiosqlite or postgresql+asyncpg)")
    pg_schema: str | None = Field(None, description="PostgreSQL schema (search_path); default: the server's")
    batch_size: int = Field(500, ge=1, le=100_000, description="audit rows buffered before a write")
    flush_interval_ms: int = Field(200, ge=1, le=60_000, description="longest time an audit row waits in the buffer")
    echo: bool = False


class EngineSettings(Section):
    heartbeat_interval_s: float = Field(10.0, gt=0, le=3600, description="seconds between heartbeat log lines")
    shutdown_timeout_s: float = Field(10.0, gt=0, le=300, description="longest graceful shutdown before tasks are cancelled")
    state_dir: Path = Field(Path("./state"), description="operator flag files and snapshots")
    kill_file: Path = Field(Path("./state/KILL"), description="manual kill switch: when this file exists the engine acts on nothing")
    queue_size: int = Field(10_000, ge=10, le=10_000_000)


class SyntheticFeedSettings(Section):
    seed: int = 7
    start_price: Decimal = Field(Decimal("60000"), gt=0)
    step_ticks: int = Field(500, ge=1, description="largest random-walk step, in ticks")
    spread_ticks: int = Field(1, ge=1)
    size: Decimal = Field(Decimal("1.5"), gt=0, description="displayed size at the best bid and ask")
    interval_ms: int = Field(250, ge=0, description="pacing between ticks in DRY_RUN; 0 = as fast as possible")
    max_ticks: int = Field(0, ge=0, description="stop after this many ticks; 0 = unbounded")
    start_ts: str = Field("", description="ISO-8601 UTC start time of the synthetic clock; empty = now")


class MarketSettings(Section):
    venue: str = Field("sim", description="'sim' (simulated venue) or a live venue name, e.g. 'binance'")
    assets: tuple[str, ...] = ("BTC/USDT",)
    feed: Literal["synthetic", "recorded", "venue"] = "synthetic"
    recorded_file: Path | None = Field(None, description="market data file for feed='recorded'")
    record: bool = Field(True, description="record normalised market data in DRY_RUN and LIVE")
    record_dir: Path = Path("./var/marketdata")
    retention_days: int = Field(30, ge=30, le=90, description="raw market data retention (spec 4.3: 30-90 days)")
    synthetic: SyntheticFeedSettings = SyntheticFeedSettings()

    @field_validator("assets")
    @classmethod
    def _assets(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        if not v:
            raise ValueError("at least one asset is required")
        for a in v:
            if a.count("/") != 1 or a != a.upper():
                raise ValueError(f"asset {a!r} must look like BASE/QUOTE in upper case, e.g. BTC/USDT")
        return v


class InstrumentSettings(Section):
    """Instrument definition for the simulated venue (spec 8.8; live venues load theirs from the venue)."""

    tick_size: Decimal = Field(Decimal("0.01"), gt=0)
    lot_size: Decimal = Field(Decimal("0.00001"), gt=0)
    min_qty: Decimal = Field(Decimal("0.00001"), ge=0)
    max_qty: Decimal | None = Field(None, gt=0, description="largest order quantity (none: unlimited)")
    min_notional: Decimal = Field(Decimal("5"), ge=0)
    maker_fee: Decimal = Field(Decimal("0.001"), ge=Decimal("-0.01"), le=Decimal("0.01"))
    taker_fee: Decimal = Field(Decimal("0.001"), ge=0, le=Decimal("0.01"))
    gas: Decimal = Field(Decimal("0"), ge=0, description="fixed cost per fill in the quote currency (on-chain venues)")
    contract_size: Decimal = Field(Decimal("1"), gt=0)
    semantics: Literal["spot", "contracts"] = Field("spot", description="position in base units (spot) or signed contracts")
    venue_symbol: str | None = Field(None, description="the venue's own symbol (default BASE+QUOTE, e.g. BTCUSDT)")
    chain: str | None = None
    network: str | None = None


class SimSettings(Section):
    seed: int = Field(1, description="seeds the simulated venue's latency jitter (REPLAY reuses the run's seed)")
    ack_latency_ms: int = Field(0, ge=0, le=60_000, description="request -> matching engine, in event time")
    latency_jitter_ms: int = Field(0, ge=0, le=60_000, description="uniform extra latency drawn from the seed")
    l1_extra_levels: int = Field(20, ge=0, le=10_000, description="L1-only slippage model: levels one tick apart")
    fill_on_touch: bool = Field(True, description="a resting order fills when the opposite best price reaches it")
    enforce_balances: bool = Field(True, description="spot: refuse orders beyond the free balance (-2010)")
    history: int = Field(10_000, ge=100, le=1_000_000, description="terminal orders and fills kept for lookups")
    balances: dict[str, Decimal] = Field(default_factory=lambda: {"USDT": Decimal("100000"), "BTC": Decimal("1")})
    instruments: dict[str, InstrumentSettings] = Field(default_factory=lambda: {"BTC/USDT": InstrumentSettings()})


class StrategySettings(Section):
    id: str = Field(..., pattern=r"^[a-z][a-z0-9_-]{0,31}$")
    name: str = Field(..., description="entry point name in the bot.strategies group")
    enabled: bool = True
    assets: tuple[str, ...] = ()
    params: dict[str, Any] = Field(default_factory=dict)


class RiskDrawdownSettings(Section):
    """Drawdown = (peak equity - equity) / peak equity, on account value (never on peak P&L)."""

    throttle_at: Decimal = Field(Decimal("0.02"), gt=0, le=Decimal("0.5"), description="drawdown fraction that throttles size")
    release_at: Decimal = Field(Decimal("0.01"), ge=0, le=Decimal("0.5"), description="the throttle lifts below this (hysteresis)")
    throttle_scale: Decimal = Field(Decimal("0.5"), gt=0, lt=1, description="size multiplier while throttled")
    kill_at: Decimal = Field(Decimal("0.05"), gt=0, le=Decimal("0.5"), description="cancel resting, flatten gradually, alert")
    strategy_capital: dict[str, Decimal] = Field(default_factory=dict, description="per-strategy equity base (quote currency); strategies not listed have no drawdown of their own")

    @model_validator(mode="after")
    def _ordered(self) -> "RiskDrawdownSettings":
        if not self.release_at < self.throttle_at <= self.kill_at:
            raise ValueError("need release_at < throttle_at <= kill_at")
        for sid, cap in self.strategy_capital.items():
            if cap <= 0:
                raise ValueError(f"strategy_capital.{sid} must be positive")
        return self


class RiskCooldownSettings(Section):
    strategy_cooldown_s: float = Field(300.0, ge=0, le=86_400, description="new risk of a strategy delayed after its drawdown or loss trigger")
    global_cooldown_s: float = Field(120.0, ge=0, le=86_400, description="global circuit breaker open time")
    kill_cooldown_s: float = Field(600.0, ge=0, le=86_400, description="resume refused until this long after an automated kill")
    breaker_errors: int = Field(10, ge=1, le=10_000, description="venue errors within breaker_window_s that trip the global breaker")
    breaker_window_s: float = Field(60.0, gt=0, le=3600)
    breaker_max_trips: int = Field(3, ge=1, le=100, description="trips within breaker_escalation_s that halt trading (a human decides)")
    breaker_escalation_s: float = Field(3600.0, gt=0, le=86_400)


class RiskLatencySettings(Section):
    window: int = Field(50, ge=5, le=10_000, description="order-ack samples in the rolling p95 window")
    min_samples: int = Field(20, ge=1, le=10_000)
    baseline_ms: float = Field(0.0, ge=0, le=60_000, description="0 = learn from the first full window")
    min_baseline_ms: float = Field(5.0, gt=0, le=60_000)
    degrade_ratio: float = Field(2.0, gt=1, le=100, description="p95 >= ratio x baseline halves the order rate")
    hard_ms: float = Field(2000.0, gt=0, le=120_000, description="p95 at or above this blocks new orders")
    persist_s: float = Field(60.0, gt=0, le=86_400, description="throttled this long blocks new orders")
    recover_ratio: float = Field(1.5, gt=0, le=100, description="back to normal only below ratio x baseline ...")
    recover_s: float = Field(30.0, ge=0, le=86_400, description="... held this long")
    block_cooldown_s: float = Field(30.0, gt=0, le=86_400)
    throttle_factor: Decimal = Field(Decimal("0.5"), gt=0, lt=1)
    order_rate_per_s: Decimal = Field(Decimal("5"), gt=0, le=1000, description="normal order rate per venue; the throttle scales it")

    @model_validator(mode="after")
    def _ordered(self) -> "RiskLatencySettings":
        if self.min_samples > self.window:
            raise ValueError("min_samples must not exceed window")
        if self.recover_ratio >= self.degrade_ratio:
            raise ValueError("recover_ratio must be below degrade_ratio (hysteresis)")
        return self


class RiskStaleSettings(Section):
    asset_stale_s: float = Field(10.0, gt=0, le=3600, description="no market update for this long blocks the asset")
    recover_s: float = Field(5.0, ge=0, le=3600, description="updates must flow this long before a stale asset is unblocked")
    all_stale_safe: bool = Field(True, description="every asset stale -> SAFE")


class RiskSlippageSettings(Section):
    max_bps: Decimal = Field(Decimal("20"), gt=0, le=Decimal("1000"), description="expected slippage vs mid at or above this blocks the order")
    unknown_depth_bps: Decimal = Field(Decimal("50"), ge=0, le=Decimal("10000"), description="assumed cost beyond the known depth")


class RiskCalendarEvent(Section):
    name: str = Field(..., min_length=1, max_length=64)
    at: str = Field(..., description="ISO-8601 UTC time of the release, e.g. 2026-03-18T18:00:00Z")
    before_s: float = Field(300.0, ge=0, le=86_400)
    after_s: float = Field(300.0, ge=0, le=86_400)
    assets: tuple[str, ...] = Field((), description="empty: every asset")
    action: Literal["widen", "pull"] = "pull"

    @field_validator("at")
    @classmethod
    def _utc(cls, v: str) -> str:
        from datetime import datetime

        try:
            dt = datetime.fromisoformat(v.replace("Z", "+00:00"))
        except ValueError:
            raise ValueError(f"{v!r} is not an ISO-8601 time") from None
        if dt.tzinfo is None:
            raise ValueError(f"{v!r} must carry a time zone (e.g. ...Z)")
        return v


class RiskEventSettings(Section):
    jump_sigma: float = Field(6.0, ge=2, le=100, description="a move of this many sigma within jump_window_s is a jump")
    jump_window_s: float = Field(5.0, gt=0, le=3600)
    jump_min_move_bps: float = Field(10.0, ge=0, le=10_000)
    jump_min_samples: int = Field(100, ge=10, le=1_000_000, description="no verdict before this many returns (cold start)")
    jump_halflife_s: float = Field(300.0, gt=0, le=86_400)
    jump_action: Literal["widen", "pull"] = "pull"
    cooldown_s: float = Field(60.0, ge=0, le=86_400, description="after a jump, widen/pull this long, then re-tighten")
    widen_factor: Decimal = Field(Decimal("3"), gt=1, le=100, description="spread multiplier strategies apply in WIDEN")
    widen_min_bps: Decimal = Field(Decimal("20"), ge=0, le=Decimal("10000"), description="in WIDEN, new passive orders closer to mid are blocked")
    calendar: tuple[RiskCalendarEvent, ...] = ()


class RiskFlattenSettings(Section):
    slice_qty: Decimal | None = Field(None, gt=0, description="largest flatten slice; default: max_trade_qty")
    interval_s: float = Field(1.0, ge=0, le=3600, description="time between flatten slices of one position")
    max_slippage_bps: Decimal = Field(Decimal("50"), gt=0, le=Decimal("1000"), description="how far past the touch a flatten or exit slice may trade")
    via_gate: bool = Field(False, description="true: flatten slices and barrier exits go through the execution gate (LIVE: need arming + confirmation)")


class RiskSettings(Section):
    max_trade_qty: Decimal = Field(Decimal("0.01"), gt=0, description="largest quantity of one order (base units)")
    max_order_notional: Decimal = Field(Decimal("1000"), gt=0, description="largest notional of one order (quote currency)")
    max_position_qty: Decimal = Field(Decimal("0.05"), gt=0, description="largest absolute position per asset incl. resting and in-flight orders")
    max_daily_loss: Decimal = Field(Decimal("200"), gt=0, description="daily loss (realised + unrealised, net of fees): SAFE, flatten, no new risk until the next trading day")
    max_daily_loss_per_strategy: Decimal = Field(Decimal("100"), gt=0, description="the same per strategy (that strategy only)")
    daily_loss_by_strategy: dict[str, Decimal] = Field(default_factory=dict, description="per-strategy overrides of max_daily_loss_per_strategy")
    daily_reset_hour_utc: int = Field(0, ge=0, le=23)
    max_portfolio_loss: Decimal = Field(Decimal("400"), gt=0, description="cumulative loss since start or the last resume: halt all")
    strategy_loss_kill: Decimal = Field(Decimal("150"), gt=0, description="cumulative loss of one strategy: halt that strategy + alert")
    account_value: Decimal | None = Field(None, gt=0, description="starting account value (quote currency); empty: valued from the venue's balances")
    eval_interval_ms: int = Field(100, ge=1, le=60_000, description="P&L-based checks at least this often (and after every fill)")
    timer_interval_s: float = Field(1.0, gt=0, le=60, description="the engine is woken this often when no market data arrives (staleness, time limits)")
    allowed_assets: dict[str, tuple[str, ...]] = Field(
        default_factory=lambda: {"sim": ("BTC/USDT", "ETH/USDT"), "binance": ("BTC/USDT", "ETH/USDT")},
        description="per-venue asset allowlist (spec 15)",
    )
    drawdown: RiskDrawdownSettings = RiskDrawdownSettings()
    cooldown: RiskCooldownSettings = RiskCooldownSettings()
    latency: RiskLatencySettings = RiskLatencySettings()
    stale: RiskStaleSettings = RiskStaleSettings()
    slippage: RiskSlippageSettings = RiskSlippageSettings()
    events: RiskEventSettings = RiskEventSettings()
    flatten: RiskFlattenSettings = RiskFlattenSettings()

    @model_validator(mode="after")
    def _consistent(self) -> "RiskSettings":
        for sid, cap in self.daily_loss_by_strategy.items():
            if cap <= 0:
                raise ValueError(f"daily_loss_by_strategy.{sid} must be positive")
        if self.flatten.slice_qty is not None and self.flatten.slice_qty > self.max_trade_qty:
            raise ValueError("flatten.slice_qty must not exceed max_trade_qty")
        return self


class OmsSettings(Section):
    reconcile_interval_s: float = Field(5.0, ge=1, le=60)
    mismatch_threshold: Decimal = Field(Decimal("0.001"), ge=0, le=Decimal("0.1"), description="relative position mismatch tolerated")
    grace_window_s: float = Field(3.0, ge=0, le=60, description="after a fill, venue position lag tolerated")
    dirty_max_age_s: float = Field(15.0, gt=0, le=600)
    stream_stale_s: float = Field(30.0, gt=0, le=600)
    max_orders_per_s: Decimal = Field(Decimal("5"), gt=0, le=100)
    flipflop_window_s: float = Field(60.0, gt=0, le=3600)
    flipflop_max_cycles: int = Field(
        150, ge=2, le=10_000, description="place/cancel cycles per asset within flipflop_window_s that mean flip-flop -> SAFE "
        "(above the quote strategy's 120/min at one requote per second per side)"
    )
    unknown_orders: Literal["cancel", "adopt"] = Field("cancel", description="venue orders this run did not place: cancel or adopt")
    mismatch_abs_qty: Decimal = Field(Decimal("0"), ge=0, description="absolute position mismatch tolerated (dust), besides the relative one")
    reconcile_max_age_s: float = Field(
        30.0, ge=5, le=3600, description="once scheduled reconciliation runs, new orders stop when the last success is older than this"
    )
    retention_s: float = Field(
        7200.0, ge=600, le=7 * 86_400,
        description="terminal orders and fill ids are kept in memory this long (the audit store keeps everything); "
        "intents older than this are refused and older unknown fills are never applied unverified",
    )


class VenueSettings(Section):
    """A live venue (LIVE). REST and WebSocket endpoints default to the public ones."""

    exchange: str = "binance"
    rest_url: str = "https://api.binance.com"
    ws_url: str = "wss://stream.binance.com:9443"
    sandbox: bool = False
    recv_window_ms: int = Field(5000, ge=100, le=60_000)
    request_timeout_ms: int = Field(10_000, ge=100, le=120_000)
    ccxt_options: dict[str, Any] = Field(default_factory=dict, description="merged into ccxt's `options` (e.g. recvWindow overrides)")
    max_clock_offset_ms: int = Field(1000, ge=10, le=60_000)
    # --- venue adapter (issue 6); see docs/venues.md
    enable_rate_limit: bool = Field(True, description="ccxt's client-side throttle (keep on against a real venue)")
    max_clock_drift_ms: int = Field(500, ge=10, le=60_000, description="largest change of the clock offset between two measurements")
    clock_check_interval_s: float = Field(60.0, ge=5, le=3600, description="how often the offset to the venue clock is measured")
    retry_attempts: int = Field(3, ge=1, le=10, description="attempts of an idempotent call (reads, cancels); a submit is never retried")
    retry_base_ms: int = Field(200, ge=1, le=60_000, description="first backoff of an idempotent retry (exponential, full jitter)")
    retry_max_ms: int = Field(5000, ge=1, le=120_000, description="largest backoff of an idempotent retry")
    max_retry_after_s: float = Field(60.0, ge=0, le=3600, description="a Retry-After longer than this is not waited out in-line: the call fails RATE_LIMITED")
    market_data_stale_s: float = Field(10.0, gt=0, le=600, description="no update of an asset for this long: MARKET_DATA_STALE")
    depth_levels: Literal[0, 5, 10, 20] = Field(0, description="partial order book depth stream (0 = L1 bookTicker only)")
    ws_ping_interval_s: float = Field(20.0, gt=0, le=300, description="WebSocket ping (heartbeat) interval")
    ws_ping_timeout_s: float = Field(10.0, gt=0, le=300, description="no pong within this: the connection is dead, reconnect")
    reconnect_initial_ms: int = Field(250, ge=1, le=60_000, description="first reconnect delay (exponential backoff, full jitter)")
    reconnect_max_ms: int = Field(30_000, ge=1, le=600_000, description="largest reconnect delay")
    listen_key_keepalive_s: float = Field(1800.0, ge=60, le=3500, description="user-data stream listen key keepalive (Binance: expires after 60 min)")
    trade_poll_interval_s: float = Field(10.0, ge=1, le=600, description="REST poll of trades since the last id (catches fills the stream missed)")
    trade_poll_fallback_s: float = Field(2.0, ge=0.2, le=600, description="REST poll interval while the user-data stream is down")
    cancel_on_disconnect: bool = Field(True, description="cancel resting orders when a stream dies or the service stops")
    dead_mans_switch_s: int = Field(60, ge=0, le=3600, description="server-side cancel-all-after countdown where the venue supports it (0 = off)")


class TelegramSettings(Section):
    token: SecretStr | None = Field(None, description="bot token; environment only: BOT_TELEGRAM__TOKEN")
    base_url: str = "https://api.telegram.org/bot"
    base_file_url: str = "https://api.telegram.org/file/bot"
    allowed_chat_ids: tuple[int, ...] = ()
    allowed_user_ids: tuple[int, ...] = ()
    max_update_age_s: int = Field(60, ge=1, le=3600, description="older updates (queued while down) are dropped, never executed")
    arm_max_ttl_s: int = Field(3600, ge=60, le=86_400)
    intent_ttl_s: int = Field(120, ge=10, le=3600)
    max_price_drift_bps: Decimal = Field(Decimal("50"), gt=0, le=Decimal("10000"))
    totp_secret: SecretStr | None = Field(None, description="optional TOTP second factor on /arm; environment only")
    four_eyes_notional: Decimal | None = Field(None, gt=0, description="intents above this notional need a second user's confirmation")
    alert_chat_ids: tuple[int, ...] = Field((), description="chats that receive alerts and staged intents; empty = every allowed chat")
    commands_per_minute: int = Field(20, ge=1, le=600, description="per-user command budget (moving window of one minute)")
    lockout_after_failures: int = Field(3, ge=1, le=50, description="failures (bad hash, malformed command, unauthorized attempt) that lock a user out")
    failure_window_s: int = Field(600, ge=10, le=86_400, description="failures older than this are forgotten")
    lockout_base_s: int = Field(60, ge=1, le=86_400, description="first lockout; each further lockout lasts 4x longer")
    lockout_max_s: int = Field(86_400, ge=1, le=7 * 86_400, description="longest lockout")
    mandate_max_ttl_s: int = Field(4 * 3600, ge=60, le=7 * 86_400, description="longest mandate expiry an operator may ask for")
    alert_dedup_s: int = Field(60, ge=0, le=86_400, description="an alert with the same key within this time is suppressed (counted)")
    info_alerts_per_minute: int = Field(20, ge=1, le=1000, description="INFO alerts beyond this per minute are suppressed (counted)")
    unauthorized_alert_interval_s: int = Field(300, ge=1, le=86_400, description="at most one unauthorized-attempt alert per this time")
    strategy_push_interval_s: int = Field(30, ge=1, le=3600, description="at most one staged strategy intent pushed per strategy per this time")
    send_rate_per_s: float = Field(30.0, gt=0, le=1000, description="outgoing message rate (Telegram allows about 30/s)")
    outbox_retry_max_s: float = Field(60.0, ge=0.05, le=3600, description="longest backoff between delivery attempts of an alert")
    gate_in_dry_run: bool = Field(False, description="DRY_RUN rehearsal: strategy intents are staged for confirmation or a mandate as in LIVE")

    @model_validator(mode="after")
    def _allowlists(self) -> "TelegramSettings":
        stray = set(self.alert_chat_ids) - set(self.allowed_chat_ids)
        if stray:
            raise ValueError(f"telegram.alert_chat_ids {sorted(stray)} are not in allowed_chat_ids")
        if self.lockout_max_s < self.lockout_base_s:
            raise ValueError("telegram.lockout_max_s must be at least lockout_base_s")
        return self


class KeysSettings(Section):
    master_key: SecretStr | None = Field(None, description="development only: BOT_KEYS__MASTER_KEY; prefer a systemd credential or a key file")
    master_key_file: Path | None = Field(None, description="key file with the master key: mode 0600, owned by the service user")
    credential_name: str = Field("bot-master-key", pattern=r"^[A-Za-z0-9_.-]{1,64}$", description="systemd credential name ($CREDENTIALS_DIRECTORY/<name>)")
    allow_env_master_key_in_live: bool = Field(False, description="accept BOT_KEYS__MASTER_KEY in LIVE (refused by default: development only)")
    trade_key_drain_timeout_s: float = Field(10.0, gt=0, le=120, description="when arming ends, longest wait for resting orders to be cancelled before the trade key is dropped")


class OpsSettings(Section):
    timezone: str = Field("UTC", description="IANA time zone of the daily summary and retention times, e.g. Europe/Berlin")
    daily_summary_time: dtime = Field(dtime(21, 0), description="local time the daily summary is sent; a report day ends here")
    daily_summary_enabled: bool = True
    snapshot_interval_s: int = Field(3600, ge=10, le=86_400)
    snapshot_keep: int = Field(48, ge=1, le=10_000)
    snapshot_dir: Path = Path("./var/snapshots")
    misfire_grace_s: int = Field(300, ge=1, le=86_400, description="a job that could not start on time still runs this late (once)")
    outbox_interval_s: float = Field(2.0, ge=0.2, le=60, description="how often pending alerts are handed to the Telegram delivery")
    expiry_interval_s: float = Field(1.0, ge=0.2, le=60, description="how often staged intents and arming are checked for expiry")
    reconcile_timeout_s: float = Field(20.0, ge=1, le=300, description="a reconciliation fetch taking longer is abandoned (and counted as failed)")
    reconcile_max_failures: int = Field(3, ge=1, le=100, description="consecutive failed reconciliations that put the bot in SAFE")
    retention_time: dtime = Field(dtime(3, 30), description="local time of the daily market data retention run")
    job_alert_repeat_s: int = Field(600, ge=10, le=86_400, description="a job that keeps failing is re-alerted at most this often")
    summary_outliers: int = Field(5, ge=1, le=50, description="slippage outliers listed in the daily summary")
    regime_bucket_min: int = Field(60, ge=5, le=1440, description="length of a regime bucket of the daily summary")
    regime_trend_er: float = Field(0.5, gt=0, lt=1, description="efficiency ratio at or above which a bucket is a trend")
    regime_high_vol_mult: float = Field(2.0, gt=1, le=100, description="bucket volatility above this multiple of the day's median is high-vol")
    incident_lookback_s: int = Field(900, ge=60, le=86_400, description="audit timeline included in an incident draft")
    incident_requires_root_cause: bool = Field(True, description="resume needs the open incident's root cause filled in by a person")

    @field_validator("timezone")
    @classmethod
    def _tz(cls, v: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {v!r} (use an IANA name such as 'UTC' or 'Europe/Berlin')") from None
        return v


class LoggingSettings(Section):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    json_format: bool = Field(False, description="one JSON object per log line")


def _default_strategies() -> tuple[StrategySettings, ...]:
    return (StrategySettings(id="quote", name="quote", assets=("BTC/USDT",), params={"order_qty": "0.001", "spread_bps": "2"}),)


# --------------------------------------------------------------------------- root
class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="BOT_", env_nested_delimiter="__", extra="forbid", frozen=True, case_sensitive=False
    )

    mode: Mode = Mode.DRY_RUN
    store: StoreSettings = StoreSettings()
    engine: EngineSettings = EngineSettings()
    market: MarketSettings = MarketSettings()
    sim: SimSettings = SimSettings()
    strategies: tuple[StrategySettings, ...] = Field(default_factory=_default_strategies)
    risk: RiskSettings = RiskSettings()
    oms: OmsSettings = OmsSettings()
    venue: VenueSettings = VenueSettings()
    telegram: TelegramSettings = TelegramSettings()
    keys: KeysSettings = KeysSettings()
    ops: OpsSettings = OpsSettings()
    logging: LoggingSettings = LoggingSettings()

    @model_validator(mode="after")
    def _consistent(self) -> "Settings":
        ids = [s.id for s in self.strategies]
        dup = {i for i in ids if ids.count(i) > 1}
        if dup:
            raise ValueError(f"strategies: duplicate id(s) {sorted(dup)}")
        for s in self.strategies:
            for a in s.assets:
                if a not in self.market.assets:
                    raise ValueError(f"strategies[{s.id}].assets: {a} is not in market.assets {list(self.market.assets)}")
        if self.oms.retention_s <= self.telegram.intent_ttl_s:
            raise ValueError(
                f"oms.retention_s ({self.oms.retention_s:g}) must exceed telegram.intent_ttl_s ({self.telegram.intent_ttl_s}): "
                "a staged intent confirmed near its expiry would otherwise be refused as too old"
            )
        if self.mode is Mode.LIVE and self.market.venue == "sim":
            raise ValueError("mode LIVE needs a live venue: set market.venue (the simulated venue is for DRY_RUN and REPLAY)")
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # environment over file; the file content arrives as init kwargs from load_settings()
        return (env_settings, init_settings)


# --------------------------------------------------------------------------- loading
def secret_paths(model: type[BaseModel] = Settings, prefix: str = "") -> list[str]:
    """Dotted paths of every SecretStr field (they must never come from the file)."""
    out: list[str] = []
    for name, info in model.model_fields.items():
        ann = info.annotation
        path = f"{prefix}{name}"
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            out.extend(secret_paths(ann, path + "."))
        elif "SecretStr" in repr(ann):
            out.append(path)
    return out


def _deep_merge(base: dict[str, Any], override: dict[str, Any], path: str, changed: list[str]) -> dict[str, Any]:
    result = dict(base)
    for key, value in override.items():
        here = f"{path}{key}"
        if isinstance(value, dict) and isinstance(result.get(key, {}), dict):
            result[key] = _deep_merge(result.get(key, {}), value, here + ".", changed)
        else:
            changed.append(here)
            result[key] = value
    return result


def _get_path(data: dict[str, Any], dotted: str) -> tuple[bool, Any]:
    node: Any = data
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return False, None
        node = node[part]
    return True, node


class LoadedConfig:
    """The effective settings plus where they came from."""

    def __init__(self, settings: Settings, source: str, overrides: list[str]) -> None:
        self.settings = settings
        self.source = source
        self.overrides = overrides  # dotted keys changed by [mode_overrides.<mode>]

    @property
    def hash(self) -> str:
        return config_hash(self.settings)


def _format_validation_error(err: ValidationError, source: str) -> str:
    lines = [f"invalid configuration ({source}):"]
    for e in err.errors():
        loc = ".".join(str(p) for p in e["loc"]) or "(root)"
        msg = e["msg"]
        if e["type"] == "extra_forbidden":
            msg = "unknown key (check the spelling; unknown keys are refused so a typo cannot pass silently)"
        inp = e.get("input")
        shown = "" if e["type"] == "extra_forbidden" or isinstance(inp, (dict, list)) or any(
            s in loc for s in ("token", "secret", "master_key", "password")
        ) else f" (got {inp!r})"
        lines.append(f"  {loc}: {msg}{shown}")
    return "\n".join(lines)


def load_settings(path: str | Path | None = None, *, env: dict[str, str] | None = None) -> LoadedConfig:
    """Load and validate. ``env`` replaces os.environ (tests). Raises ConfigError with key and file named."""
    source = str(path) if path is not None else "<embedded defaults>"
    data: dict[str, Any] = {}
    if path is not None:
        p = Path(path)
        try:
            with p.open("rb") as fh:
                data = tomllib.load(fh)
        except FileNotFoundError:
            raise ConfigError(f"configuration file not found: {p}") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{p}: not valid TOML: {exc}") from None
    for secret in secret_paths():
        found, _ = _get_path(data, secret)
        if found:
            env_name = "BOT_" + secret.upper().replace(".", "__")
            raise ConfigError(
                f"{source}: secret '{secret}' must not be in the configuration file; remove it and set {env_name} "
                "in the environment (or use a systemd credential / the encrypted key store)"
            )
    overrides_table = data.pop("mode_overrides", {}) or {}
    if not isinstance(overrides_table, dict):
        raise ConfigError(f"{source}: mode_overrides must be a table of [mode_overrides.<MODE>] tables")
    for mode_name in overrides_table:
        if mode_name.upper() not in Mode.__members__:
            raise ConfigError(f"{source}: mode_overrides.{mode_name}: unknown mode (use one of {', '.join(Mode.__members__)})")
        for secret in secret_paths():
            if _get_path(overrides_table[mode_name], secret)[0]:
                raise ConfigError(f"{source}: secret 'mode_overrides.{mode_name}.{secret}' must not be in the configuration file")

    environ = dict(os.environ) if env is None else env
    saved = None
    if env is not None:
        saved = dict(os.environ)
        os.environ.clear()
        os.environ.update(env)
    try:
        base = Settings(**data)  # validates the base file first so errors name base keys
        mode = base.mode
        changed: list[str] = []
        table = {k.upper(): v for k, v in overrides_table.items()}.get(mode.value)
        if table:
            merged = _deep_merge(data, table, "", changed)
            settings = Settings(**merged)
            if settings.mode is not mode:
                raise ConfigError(f"{source}: mode_overrides.{mode.value} must not change the mode itself")
        else:
            settings = base
    except ValidationError as exc:
        raise ConfigError(_format_validation_error(exc, source)) from None
    finally:
        if saved is not None:
            os.environ.clear()
            os.environ.update(saved)
    del environ
    return LoadedConfig(settings, source, changed)


def public_dict(settings: Settings) -> dict[str, Any]:
    """The effective configuration as JSON-able data with every secret masked."""
    data = settings.model_dump(mode="json")
    for secret in secret_paths():
        node = data
        parts = secret.split(".")
        for part in parts[:-1]:
            node = node.get(part, {})
        if parts[-1] in node:
            node[parts[-1]] = "**********" if node[parts[-1]] else None
    return data


def config_hash(settings: Settings) -> str:
    """SHA-256 of the effective configuration with secrets masked (a secret never influences the hash)."""
    canonical = json.dumps(public_dict(settings), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()
