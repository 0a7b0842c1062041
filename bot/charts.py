"""Charts for /insights, drawn with matplotlib off-screen (Agg) as PNG bytes: the engine's Charts port.

Made to be read on a phone: a wide, short figure at a high resolution, large
type, one colour per series with a legend, and at most a dozen periods on the
axis. Nothing is written to disk: the PNG is built in memory and sent, or saved
where the person asked (the console), like an export.
"""

from __future__ import annotations

import io
import threading
from typing import Sequence

#: Colour-blind-safe colours (Okabe and Ito), one per series in order.
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000")
_lock = threading.Lock()  # pyplot's state is global: one chart at a time


class MatplotlibCharts:
    """Stacked bars of counts per period (months or weeks)."""

    def __init__(self, dpi: int = 160):
        self.dpi = dpi  # matplotlib is imported on the first chart, so start-up does not wait for it

    def bars_over_time(self, title: str, periods: Sequence[str], series: dict[str, Sequence[int]],
                       y_label: str) -> bytes:
        import matplotlib

        matplotlib.use("Agg", force=True)  # off-screen: no display, no GUI toolkit
        import matplotlib.pyplot as plt
        from matplotlib.ticker import MaxNLocator

        with _lock:
            fig, ax = plt.subplots(figsize=(7.2, 4.2), dpi=self.dpi)
            try:
                bottom = [0] * len(periods)
                for i, (name, counts) in enumerate(series.items()):
                    ax.bar(range(len(periods)), counts, bottom=bottom, label=name,
                           color=PALETTE[i % len(PALETTE)], edgecolor="white", linewidth=0.6)
                    bottom = [b + c for b, c in zip(bottom, counts)]
                ax.set_title(title, fontsize=15, loc="left", pad=10)
                ax.set_ylabel(y_label, fontsize=12)
                step = max(1, (len(periods) + 11) // 12)  # at most a dozen labels: readable at phone size
                ax.set_xticks(range(0, len(periods), step), [periods[i] for i in range(0, len(periods), step)],
                              fontsize=11, rotation=30 if len(periods) > 6 else 0, ha="right" if len(periods) > 6
                              else "center")
                ax.yaxis.set_major_locator(MaxNLocator(integer=True))
                ax.tick_params(axis="y", labelsize=11)
                for side in ("top", "right"):
                    ax.spines[side].set_visible(False)
                ax.legend(fontsize=11, frameon=False, loc="upper left", bbox_to_anchor=(1.0, 1.0))
                fig.tight_layout()
                out = io.BytesIO()
                fig.savefig(out, format="png")
                return out.getvalue()
            finally:
                plt.close(fig)
