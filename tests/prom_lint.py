"""Prometheus naming conventions checked on a /metrics text, as `promtool check metrics` lints them
(client_golang's promlint), plus consistent histogram buckets.

`promtool_problems` runs the real promtool where one is on PATH or in the test cache's bin/ (the
install scripts do not build it: `go install github.com/prometheus/prometheus/cmd/promtool@latest`
took ~20 min on 2 busy cores); `problems` is the same lint in Python (it reports what promtool
v0.316's `check metrics` reports, plus inconsistent histogram buckets), so the check runs everywhere.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

SNAKE = re.compile(r"^[a-z_][a-z0-9_]*$")
# promlint: unit abbreviations a name must not use (as a whole "_word_" or at the end).
ABBREVIATIONS = ("s", "ms", "us", "ns", "sec", "b", "kb", "mb", "gb", "tb", "pb", "m", "h", "d")
BASE_UNITS = ("seconds", "bytes", "meters", "metres", "grams", "joules", "volts", "amperes", "celsius", "kelvin")
PREFIXES = ("pico", "nano", "micro", "milli", "centi", "deci", "deca", "hecto", "kilo", "kibi", "mega", "mebi",
            "giga", "gibi", "tera", "tebi", "peta", "pebi")  # fmt: skip
NON_BASE_TIME = ("minutes", "hours", "days", "weeks")
TYPES = ("counter", "gauge", "histogram", "summary", "untyped")


def problems(text: str) -> list[str]:
    """Every convention a metrics text breaks, one line each ("name: what is wrong")."""
    out: list[str] = []
    types: dict[str, str] = {}
    helps: set[str] = set()
    for line in text.splitlines():
        if m := re.match(r"^# TYPE (\S+) (\S+)", line):
            types[m[1]] = m[2]
        elif m := re.match(r"^# HELP (\S+) ?(.*)$", line):
            if m[2].strip():
                helps.add(m[1])
    for name, kind in types.items():
        out += [f"{name}: {p}" for p in _name_problems(name, kind)]
        if name not in helps:
            out.append(f"{name}: no help text")
    seen: set[tuple[str, tuple[tuple[str, str], ...]]] = set()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            key = (sample.name, tuple(sorted(sample.labels.items())))
            if key in seen:
                out.append(f"{sample.name}: duplicate series {dict(key[1])}")
            seen.add(key)
            for label in sample.labels:
                if label.startswith("__"):
                    out.append(f"{family.name}: label {label!r} is reserved (starts with __)")
                elif not SNAKE.match(label):
                    out.append(f"{family.name}: label names should be written in 'snake_case' not {label!r}")
                if label == "le" and family.type != "histogram":
                    out.append(f"{family.name}: non-histogram metrics should not have \"le\" label")
                if label == "quantile" and family.type != "summary":
                    out.append(f"{family.name}: non-summary metrics should not have \"quantile\" label")
        if family.type == "histogram":
            out += [f"{family.name}: {p}" for p in _histogram_problems(family.samples, family.name)]
    return out


def _name_problems(name: str, kind: str) -> list[str]:
    out = []
    if kind not in TYPES:
        out.append(f"unknown type {kind!r}")
    if not SNAKE.match(name):
        out.append("metric names should be written in 'snake_case' not 'camelCase'")
    if ":" in name:
        out.append("metric names should not contain ':'")
    if kind == "counter" and not name.endswith("_total"):
        out.append("counter metrics should have \"_total\" suffix")
    if kind != "counter" and name.endswith("_total"):
        out.append("non-counter metrics should not have \"_total\" suffix")
    if kind not in ("histogram", "summary") and name.endswith(("_bucket", "_count", "_sum")):
        out.append("non-histogram and non-summary metrics should not have \"_bucket\", \"_count\" or \"_sum\" suffix")
    lowered = name.lower()
    if kind != "untyped" and (f"_{kind}_" in lowered or lowered.endswith(f"_{kind}")):
        out.append(f"metric name should not include type '{kind}'")
    for ab in ABBREVIATIONS:
        if f"_{ab}_" in lowered or lowered.endswith(f"_{ab}"):
            out.append("metric names should not contain abbreviated units")
            break
    for part in lowered.split("_"):
        for unit in BASE_UNITS:
            prefix = part[: -len(unit)] if part.endswith(unit) else None
            if prefix and prefix in PREFIXES:
                out.append(f"use base unit \"{unit}\" instead of \"{part}\"")
        if part in NON_BASE_TIME:
            out.append(f"use base unit \"seconds\" instead of \"{part}\"")
    return out


def _histogram_problems(samples: list, name: str) -> list[str]:
    out = []
    series: dict[tuple[tuple[str, str], ...], dict[str, object]] = {}
    for s in samples:
        labels = tuple(sorted((k, v) for k, v in s.labels.items() if k != "le"))
        entry = series.setdefault(labels, {"buckets": []})
        if s.name == f"{name}_bucket":
            entry["buckets"].append((float(s.labels["le"]), s.value))  # type: ignore[union-attr]
        elif s.name == f"{name}_count":
            entry["count"] = s.value
        elif s.name == f"{name}_sum":
            entry["sum"] = s.value
    for labels, entry in series.items():
        buckets: list[tuple[float, float]] = entry["buckets"]  # type: ignore[assignment]
        if not buckets or buckets[-1][0] != float("inf"):
            out.append(f"{dict(labels)}: no +Inf bucket")
            continue
        if [b for b, _ in buckets] != sorted(b for b, _ in buckets):
            out.append(f"{dict(labels)}: buckets not in ascending order")
        if any(later < earlier for (_, earlier), (_, later) in zip(buckets, buckets[1:], strict=False)):
            out.append(f"{dict(labels)}: bucket counts not cumulative")
        if "count" not in entry or "sum" not in entry:
            out.append(f"{dict(labels)}: _count or _sum missing")
        elif entry["count"] != buckets[-1][1]:
            out.append(f"{dict(labels)}: _count {entry['count']} != +Inf bucket {buckets[-1][1]}")
    return out


def find_promtool() -> str | None:
    """promtool from the test cache or PATH, or None."""
    cached = Path(os.environ.get("SRL_CACHE", Path.home() / ".cache" / "srl-test")) / "bin" / "promtool"
    return str(cached) if os.access(cached, os.X_OK) else shutil.which("promtool")


def promtool_problems(text: str) -> list[str] | None:
    """What `promtool check metrics` reports on the text (None: promtool is not installed)."""
    promtool = find_promtool()
    if promtool is None:
        return None
    proc = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True, text=True, timeout=60)
    return [line for line in (proc.stdout + proc.stderr).splitlines() if line.strip()] if proc.returncode else []
