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
    names, values, colors = [], [], []
    for key, label, color in SYSTEMS:
        if case.get(key) is not None:
            names.append(label)
            values.append(case[key])
            colors.append(color)
    if not values:
        ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes)
    bars = ax.bar(names, values, color=colors)
    for b, v in zip(bars, values, strict=True):
        ax.annotate(f"{v:,.0f}" if v >= 100 else f"{v:.1f}", (b.get_x() + b.get_width() / 2, b.get_height()),
                    ha="center", va="bottom", fontsize=8)
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
