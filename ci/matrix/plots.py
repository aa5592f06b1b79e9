"""Latency and bandwidth against message size, one line per transport
(provider), one panel per backend: PNG bytes for the report to embed.
matplotlib draws them (the `matrix` extra), headless (Agg)."""
from __future__ import annotations

import io
from typing import Dict, List, Optional

METRICS = {"latency_us": ("latency (us, REQ/REP round trip, median)", "log"),
           "bandwidth_MBps": ("bandwidth (MB/s, PUSH/PULL stream, median)", "log")}


def _series(cells: List[dict], metric: str) -> Dict[str, Dict[str, List[tuple]]]:
    """backend -> transport -> [(size, value)] over the passed data cells."""
    out: Dict[str, Dict[str, List[tuple]]] = {}
    for c in cells:
        if c["size"] is not None and c["status"] == "passed" and c.get(metric) is not None:
            out.setdefault(c["backend"], {}).setdefault(c["transport"], []).append((c["size"], c[metric]))
    return out


def plot(cells: List[dict], metric: str, transports: List[str], backends: List[str],
         sizes: List[int], labels: List[str]) -> Optional[bytes]:
    """One figure for metric; None if no cell measured it."""
    series = _series(cells, metric)
    panels = [b for b in backends if b in series]
    if not panels:
        return None
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colours = plt.get_cmap("tab10")
    title, yscale = METRICS[metric]
    fig, axes = plt.subplots(1, len(panels), figsize=(3.2 * len(panels) + 1.6, 3.1), sharey=True, squeeze=False)
    for ax, backend in zip(axes[0], panels):
        for i, transport in enumerate(transports):
            points = sorted(series[backend].get(transport, []))
            if points:
                xs, ys = zip(*points)
                ax.plot(xs, ys, marker="o", markersize=3.5, linewidth=1.6, color=colours(i % 10), label=transport)
        ax.set_xscale("log", base=2)
        ax.set_yscale(yscale)
        ax.set_xticks(sizes, labels, fontsize=7)
        ax.minorticks_off()
        ax.set_title(backend, fontsize=9)
        ax.grid(True, which="major", alpha=0.3)
        ax.tick_params(axis="y", labelsize=7)
    axes[0][0].set_ylabel(title, fontsize=8)
    handles = {}
    for ax in axes[0]:
        for h, label in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(label, h)
    order = [t for t in transports if t in handles]
    fig.legend([handles[t] for t in order], order, loc="center right", fontsize=7, frameon=False)
    fig.tight_layout(rect=(0, 0, 1 - 1.4 / fig.get_figwidth(), 1))
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    return buf.getvalue()
