"""Draws a results JSON from the harness as one PNG: one row per arm (matched, best), columns CartPole
trained frames/s, CartPole time to solve and Pong trained frames/s. Bars are medians over seeds,
whiskers the IQR; a hatched bar is a censored median (most runs hit the cap: the true value is at
least that). Each title carries ours / best peer with its bootstrap 95% interval.
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
PANELS = [("cartpole", "trained_fps", "CartPole trained frames/s", "frames/s"),
          ("cartpole", "solve_s", "CartPole time to mean 475 (lower is better)", "seconds"),
          ("pong", "trained_fps", "Pong trained frames/s (frame skip 4)", "frames/s")]


def _fmt(v: float) -> str:
    return f"{v:,.0f}" if v >= 100 else f"{v:.1f}"


def panel(ax, case: dict | None, metric: str, title: str, ylabel: str) -> None:  # type: ignore[no-untyped-def]
    if not case:
        ax.text(0.5, 0.5, "not run", ha="center", va="center", transform=ax.transAxes)
        ax.set_title(title, fontsize=8)
        ax.set_axis_off()
        return
    names, meds, lo, hi, colors, hatches = [], [], [], [], [], []
    for key, label, color in SYSTEMS:
        s = (case["systems"].get(key) or {}).get(metric)
        if not s:
            continue
        names.append(label)
        meds.append(s["median"])
        lo.append(max(0.0, s["median"] - s["iqr"][0]))
        hi.append(max(0.0, s["iqr"][1] - s["median"]))
        colors.append(color)
        hatches.append("//" if s.get("median_censored") else "")
    if not meds:
        ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes)
    bars = ax.bar(names, meds, yerr=[lo, hi], color=colors, edgecolor="black", linewidth=0.5, capsize=3)
    for b, v, h in zip(bars, meds, hatches, strict=True):
        b.set_hatch(h)
        ax.annotate(("≥ " if h else "") + _fmt(v), (b.get_x() + b.get_width() / 2, b.get_height()), ha="center",
                    va="bottom", fontsize=7)
    r = case.get("ratios", {}).get(metric)
    note = "ours / best peer: n/a"
    if r and r.get("best_peer"):
        v = r["vs"][r["best_peer"]]
        ci = v["interval"]
        note = f"ours / {r['best_peer']} = {v['ratio']}" + (f" [{ci[0]}, {ci[1]}]" if ci else "")
    ax.set_title(f"{title}\n{note}", fontsize=8)
    ax.set_ylabel(ylabel, fontsize=8)
    ax.tick_params(axis="x", labelsize=7, rotation=15)


def main() -> None:
    src, out = sys.argv[1], sys.argv[2]
    res = json.load(open(src))
    cases = res.get("cases", {})
    fig, axes = plt.subplots(2, 3, figsize=(14, 8))
    for row, arm in enumerate(("matched", "best")):
        for col, (env, metric, title, ylabel) in enumerate(PANELS):
            panel(axes[row][col], cases.get(f"{env}-{arm}"), metric, f"[{arm}] {title}", ylabel)
    fig.suptitle(f"srl vs peers, {res['mode']} run {res['timestamp']}, {res['cores']} cores: medians, IQR whiskers, "
                 "bootstrap 95% interval of the ratio", fontsize=10)
    fig.tight_layout()
    fig.savefig(out, dpi=80)


if __name__ == "__main__":
    main()
