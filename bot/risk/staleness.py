"""Stale market data: no update for ``asset_stale_s`` blocks the asset; every asset stale -> SAFE.

Ages are measured on the monotonic clock from the asset's last market update (or from the start, for an asset
that never had one: a feed that never starts is stale too). Recovery has hysteresis: a stale asset is unblocked
only after updates have kept its age under the threshold for ``recover_s``; a single late tick is not enough.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from bot.domain.errors import ErrorCode
from bot.risk.limits import StaleLimits
from bot.risk.transition import Transition

NS = 1_000_000_000


class StalenessMonitor:
    def __init__(self, limits: StaleLimits, assets: Iterable[str], start_ns: int) -> None:
        self.limits = limits
        self.assets = tuple(assets)
        self.start_ns = start_ns
        self.stale_ns = int(limits.asset_stale_s * NS)
        self.recover_ns = int(limits.recover_s * NS)
        self.stale: dict[str, int | None] = {}  # stale asset -> when its updates resumed (None: still silent)

    def age_ns(self, last_update_ns: int | None, now_ns: int) -> int:
        return now_ns - (last_update_ns if last_update_ns is not None else self.start_ns)

    def blocked(self, asset: str, last_update_ns: int | None, now_ns: int) -> bool:
        """Pure: stale now, or still recovering from staleness."""
        return asset in self.stale or self.age_ns(last_update_ns, now_ns) >= self.stale_ns

    def all_stale(self) -> bool:
        return bool(self.assets) and all(a in self.stale for a in self.assets)

    def evaluate(self, last_update: Callable[[str], int | None], now_ns: int) -> list[Transition]:
        out: list[Transition] = []
        for asset in self.assets:
            age = self.age_ns(last_update(asset), now_ns)
            if age >= self.stale_ns:
                if asset not in self.stale:
                    out.append(
                        Transition(
                            "feed", f"asset:{asset}", "FRESH", "STALE", ErrorCode.MARKET_DATA_STALE,
                            f"no market data for {age / NS:.1f}s (threshold {self.limits.asset_stale_s:g}s)", "warning",
                        )
                    )
                self.stale[asset] = None
            elif asset in self.stale:
                resumed = self.stale[asset]
                if resumed is None:
                    self.stale[asset] = now_ns
                elif now_ns - resumed >= self.recover_ns:
                    del self.stale[asset]
                    out.append(
                        Transition("feed", f"asset:{asset}", "STALE", "FRESH", None, f"updates flowing for {self.limits.recover_s:g}s", "info")
                    )
        return out
