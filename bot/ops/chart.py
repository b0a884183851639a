"""The daily chart: net equity and position through the report day, as a PNG (matplotlib, Agg, no pyplot).

Uses the object API (``Figure`` + ``FigureCanvasAgg``), which needs no display and no global state, so it
is safe in a worker thread.
"""

from __future__ import annotations

import io
from datetime import UTC, datetime, tzinfo

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.dates import DateFormatter
from matplotlib.figure import Figure

from bot.ops.daymetrics import DayMetrics

WIDTH_IN, HEIGHT_IN, DPI = 10, 6, 100  # 1000 x 600 pixels


def render_chart(metrics: DayMetrics, *, tz: tzinfo, title: str, quote: str = "") -> bytes:
    times = [datetime.fromtimestamp(ts / 1e9, UTC).astimezone(tz) for ts, _, _ in metrics.curve]
    equity = [float(eq) for _, eq, _ in metrics.curve]
    assets = sorted({a for _, _, pos in metrics.curve for a in pos})

    fig = Figure(figsize=(WIDTH_IN, HEIGHT_IN), dpi=DPI)
    FigureCanvasAgg(fig)
    ax_eq, ax_pos = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 2]})
    fig.suptitle(title)
    if times:
        ax_eq.plot(times, equity, color="tab:blue", linewidth=1.2, drawstyle="steps-post")
        ax_eq.fill_between(times, equity, 0, step="post", alpha=0.15, color="tab:blue")
    ax_eq.axhline(0, color="grey", linewidth=0.6)
    ax_eq.set_ylabel(f"net PnL {quote}".strip())
    ax_eq.grid(True, alpha=0.3)
    for asset in assets:
        ax_pos.plot(times, [float(pos.get(asset, 0)) for _, _, pos in metrics.curve], drawstyle="steps-post", linewidth=1.2, label=asset)
    ax_pos.axhline(0, color="grey", linewidth=0.6)
    ax_pos.set_ylabel("position")
    ax_pos.grid(True, alpha=0.3)
    if assets:
        ax_pos.legend(loc="upper left", fontsize="small")
    if not metrics.fills:
        ax_eq.text(0.5, 0.5, "no fills in this report day", transform=ax_eq.transAxes, ha="center", va="center", color="grey")
    ax_pos.xaxis.set_major_formatter(DateFormatter("%H:%M", tz=tz))
    ax_pos.set_xlabel(f"time ({tz})")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI)
    return buf.getvalue()
