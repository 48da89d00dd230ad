"""Draws a results JSON from the harness as one PNG: CartPole steps/s, Pong frames/s (each with the
raw-environment ceiling as a dashed line) and CartPole time-to-solve, ours vs peers.
  python bench/chart.py bench/results/<stamp>.json out.png
"""

from __future__ import annotations

import json
import sys

import matplotlib

matplotlib.use("Agg")  # files only; there is no display
import matplotlib.pyplot as plt  # noqa: E402

SYSTEMS = [("ours", "ours (srl)", "#d62728"), ("sample_factory", "Sample Factory", "#1f77b4"),
           ("cleanrl", "CleanRL", "#2ca02c"), ("rllib", "RLlib", "#9467bd")]


def panel(ax, case: dict, title: str, ylabel: str, ceiling: float | None = None) -> None:
    names, values, colors, labels, hatches = [], [], [], [], []
    for key, label, color in SYSTEMS:
        v = case.get(key)
        if v is not None:
            names.append(label)
            values.append(v)
            colors.append(color)
            labels.append(f"{v:,.0f}" if v >= 100 else f"{v:.1f}")
            hatches.append("")
        elif key in case.get("solved", {}):
            # Ran but did not solve within the cap: a hatched bar at the cap, so it is not mistaken
            # for missing.
            names.append(label)
            values.append(case["cap_s"])
            colors.append("white")
            labels.append(f"unsolved\n(> {case['cap_s']:.0f} s)")
            hatches.append("//")
    if not values:
        ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes)
    bars = ax.bar(names, values, color=colors, edgecolor="black", linewidth=0.5)
    for b, text, hatch in zip(bars, labels, hatches, strict=True):
        b.set_hatch(hatch)
        ax.annotate(text, (b.get_x() + b.get_width() / 2, b.get_height()), ha="center", va="bottom", fontsize=8)
    if values:
        ax.set_ylim(0, max([*values, ceiling or 0]) * 1.2)  # room for the labels above the bars
    if ceiling:
        ax.axhline(ceiling, ls="--", color="gray", lw=1)
        ax.annotate(f"raw env ceiling {ceiling:,.0f}", (0.01, ceiling), xycoords=("axes fraction", "data"),
                    va="bottom", fontsize=7, color="gray")
    r = case.get("ratio")
    ax.set_title(f"{title}\nours / best peer = {r if r is not None else 'n/a'}", fontsize=9)
    ax.set_ylabel(ylabel, fontsize=8)
    ax.tick_params(axis="x", labelsize=7, rotation=15)


def main() -> None:
    src, out = sys.argv[1], sys.argv[2]
    res = json.load(open(src))
    cases = res["cases"]
    ceil = cases.get("ceiling", {})
    fig, axes = plt.subplots(1, 3, figsize=(13, 4))
    panel(axes[0], cases["cartpole_throughput"], "CartPole-v1 throughput (higher is better)", "env steps/s",
          ceil.get("cartpole", {}).get("ours"))
    panel(axes[1], cases["pong_throughput"], "Pong throughput, frame skip 4 (higher is better)", "env frames/s",
          ceil.get("pong", {}).get("ours"))
    panel(axes[2], cases["cartpole_time_to_solve"], "CartPole-v1 time to mean return 475 (lower is better)", "seconds")
    fig.suptitle(f"srl vs peers, {res['mode']} run {res['timestamp']}, {res['cores']} cores, medians", fontsize=10)
    fig.tight_layout()
    fig.savefig(out, dpi=90)


if __name__ == "__main__":
    main()
