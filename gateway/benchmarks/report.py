"""Statistics, the printed table and the JSON document of a benchmark run."""

from __future__ import annotations

import math
import os
import platform
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0–100) with linear interpolation between closest ranks."""
    if not values:
        return math.nan
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100
    low, high = math.floor(position), math.ceil(position)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def ms(seconds: float) -> float:
    return round(seconds * 1000, 2)


@dataclass
class Row:
    """One timed workload: gateway and floor samples (seconds) and EWS calls per operation."""

    name: str
    gateway: list[float] = field(default_factory=list)
    floor: list[float] = field(default_factory=list)
    calls: list[Counter[str]] = field(default_factory=list)
    floor_calls: list[Counter[str]] = field(default_factory=list)
    target_ratio: float | None = None  # reported, not asserted
    max_calls: int | None = None
    note: str = ""

    def summary(self) -> dict[str, Any]:
        gw_median, floor_median = percentile(self.gateway, 50), percentile(self.floor, 50)
        ratio = gw_median / floor_median if self.floor else math.nan
        calls = _mean_calls(self.calls)
        met = None
        if self.target_ratio is not None:
            met = ratio <= self.target_ratio and (
                self.max_calls is None or sum(calls.values()) <= self.max_calls
            )
        return {
            "name": self.name,
            "rounds": len(self.gateway),
            "gateway_ms": {"median": ms(gw_median), "p95": ms(percentile(self.gateway, 95))},
            "floor_ms": {"median": ms(floor_median), "p95": ms(percentile(self.floor, 95))},
            "ratio": round(ratio, 3) if not math.isnan(ratio) else None,
            "ews_calls": round(sum(calls.values()), 2),
            "ews_calls_by_operation": calls,
            "floor_ews_calls": round(sum(_mean_calls(self.floor_calls).values()), 2),
            "target": _target_text(self.target_ratio, self.max_calls),
            "target_met": met,
            "note": self.note,
        }


def _mean_calls(samples: list[Counter[str]]) -> dict[str, float]:
    total: Counter[str] = Counter()
    for sample in samples:
        total.update(sample)
    return {op: round(n / len(samples), 2) for op, n in sorted(total.items())} if samples else {}


def _target_text(ratio: float | None, max_calls: int | None) -> str:
    parts = []
    if max_calls is not None:
        parts.append(f"<= {max_calls} EWS call")
    if ratio is not None:
        parts.append(f"median <= {ratio} x floor")
    return ", ".join(parts)


def machine() -> dict[str, Any]:
    """What the figures ran on: CPU count and model, Python, OS."""
    model = ""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {
        "nproc": os.cpu_count(),
        "cpu_model": model or platform.processor(),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def table(document: dict[str, Any]) -> str:
    """The human-readable summary printed at the end of a run."""
    lines = [
        f"{'workload':<34} {'gateway ms':>10} {'p95':>8} {'floor ms':>9} {'p95':>8} {'ratio':>6} "
        f"{'EWS/op':>7} {'floor':>6}  target",
    ]
    for row in document["workloads"]:
        gw, fl = row["gateway_ms"], row["floor_ms"]
        met = {True: "met", False: "MISSED", None: ""}[row["target_met"]]
        ratio = f"{row['ratio']:.2f}" if row["ratio"] is not None else "-"
        lines.append(
            f"{row['name']:<34} {gw['median']:>10.1f} {gw['p95']:>8.1f} {fl['median']:>9.1f} {fl['p95']:>8.1f} "
            f"{ratio:>6} {row['ews_calls']:>7.2f} {row['floor_ews_calls']:>6.2f}  {row['target']} {met}".rstrip()
        )
    for window in document.get("concurrency", []):
        lines.append(
            "concurrency: " + ", ".join(f"{k}={v}" for k, v in window.items() if k != "by_operation")
        )
        for name, op in window["by_operation"].items():
            lines.append(
                f"  {name:<18} {op['requests']:>5} requests, {op['errors']} errors, p50 {op['p50_ms']} ms, "
                f"p99 {op['p99_ms']} ms, p99/p50 {op['p99_over_p50']}"
            )
    for key in ("memory", "cpu"):
        if key in document:
            lines.append(f"{key}: " + ", ".join(f"{k}={v}" for k, v in document[key].items()))
    return "\n".join(lines)


class Progress:
    """Prints a benchmark's progress, each line with the seconds since the run started."""

    def __init__(self) -> None:
        self.started = time.monotonic()

    def __call__(self, text: str) -> None:
        print(f"[{time.monotonic() - self.started:6.1f}s] {text}", flush=True)
