"""The PNG: latency and bandwidth against message size, log-log, one line
per library and transport (matplotlib, the `bench` extra)."""
from typing import Any, Dict, List, Optional, Tuple

from .report import human

# The colour says the transport, the line and marker the library: the rows
# to compare (the same transport) share a colour.
COLORS = {"inproc": "tab:gray", "ipc": "tab:purple", "tcp": "tab:blue", "ofi+tcp": "tab:green",
          "ofi+shm": "tab:orange", "ofi+verbs": "tab:red"}
STYLES = {"nnofi": ("-", "o"), "nnofi-batch": ((0, (1, 1)), "s"), "pyzmq": ("--", "^"),
          "pynng": ("-.", "v"), "nanomsg": ((0, (5, 1, 1, 1)), "D"), "fi_pingpong": (":", "x")}


def lines(rows: List[Dict[str, Any]], metric: str) -> Dict[Tuple[str, str], List[Tuple[int, float]]]:
    """(library, transport) -> [(size, value)] sorted by size, rows without the metric left out."""
    out: Dict[Tuple[str, str], List[Tuple[int, float]]] = {}
    for row in rows:
        value = row.get(metric)
        if isinstance(value, (int, float)) and value > 0:
            out.setdefault((row["library"], row["transport"]), []).append((row["size"], value))
    return {key: sorted(points) for key, points in out.items()}


def plot(rows: List[Dict[str, Any]], path: str, title: str = "") -> Optional[str]:
    """Write the PNG to `path`; None, or why there is no plot (no matplotlib)."""
    try:
        import matplotlib

        matplotlib.use("Agg")  # no display needed
        import matplotlib.pyplot as plt
    except ImportError:
        return "matplotlib is not installed (pip install 'nnofi[bench]')"
    fig, axes = plt.subplots(1, 2, figsize=(15, 6.5))
    panels = ((axes[0], "latency_us", "REQ/REP round trip (us)"),
              (axes[1], "MB_per_s", "PUSH/PULL bandwidth (MB/s, 10^6 B)"))
    for ax, metric, label in panels:
        for key, points in lines(rows, metric).items():
            sizes, values = zip(*points)
            linestyle, marker = STYLES.get(key[0], ("-", "o"))
            ax.plot(sizes, values, linestyle=linestyle, marker=marker, markersize=4,
                    color=COLORS.get(key[1], "black"), label=f"{key[0]} {key[1]}")
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("message size")
        ax.set_ylabel(label)
        ax.grid(True, which="both", alpha=0.3)
        ticks = sorted({r["size"] for r in rows})
        ax.set_xticks(ticks, [human(s) for s in ticks], rotation=45)
    axes[0].set_title("latency (lower is better)")
    axes[1].set_title("bandwidth (higher is better; fi_pingpong: one message in flight)")
    handles, labels = axes[0].get_legend_handles_labels()
    more = [(h, lab) for h, lab in zip(*axes[1].get_legend_handles_labels()) if lab not in labels]
    handles += [h for h, _ in more]
    labels += [lab for _, lab in more]
    fig.legend(handles, labels, loc="center right", fontsize=8)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout(rect=(0, 0, 0.84, 0.95))
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return None
