"""Counts and times every EWS SOAP request the gateway sends, for Prometheus.

How the traffic is observed: exchangelib sends each request through a ``requests`` session whose
HTTP adapter comes from the protocol class (``BaseProtocol.HTTP_ADAPTER_CLS``). The gateway's
protocol classes (``gateway/ews/exchange.py``) use an adapter that calls :meth:`EwsMetrics.observe`
for every request it sends, named by the SOAP Body child's local name (:func:`soap_operation`). So
the numbers include exchangelib's own hidden calls (version probes, GetServerTimeZones) and every
retry, exactly what Exchange sees. HTTP ``401`` legs of an authentication handshake (NTLM sends a
request up to three times) are not counted as requests: they never reach an EWS operation.

Exposition follows the Prometheus text format 0.0.4 (counters ``_total``, histograms with
cumulative ``_bucket{le=...}``, ``_sum`` and ``_count``).
"""

from __future__ import annotations

import re
import threading
from bisect import bisect_left
from dataclasses import dataclass, field

# Latency buckets in seconds: EWS calls range from a few ms (emulator) to tens of seconds
# (GetUserAvailability over many mailboxes on a loaded server).
DEFAULT_BUCKETS: tuple[float, ...] = (
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
)

_BODY_CHILD = re.compile(rb"<(?:[\w.-]+:)?Body\b[^>]*>\s*<(?:[\w.-]+:)?([\w.-]+)")
# Some operations name their request element differently from the operation:
# GetUserAvailability → m:GetUserAvailabilityRequest, Autodiscover GetUserSettings →
# a:GetUserSettingsRequestMessage.
_REQUEST_SUFFIXES = ("RequestMessage", "Request")


def soap_operation(body: bytes | str | None) -> str | None:
    """The EWS operation a SOAP request body invokes (the Body child's local name), or None."""
    if body is None:
        return None
    data = body.encode() if isinstance(body, str) else body
    if not isinstance(data, bytes | bytearray):
        return None
    match = _BODY_CHILD.search(data)
    if match is None:
        return None
    name = match.group(1).decode("ascii", "replace")
    for suffix in _REQUEST_SUFFIXES:
        if name.endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)]
    return name


@dataclass
class Histogram:
    """Cumulative-bucket latency histogram (Prometheus semantics)."""

    buckets: tuple[float, ...]
    counts: list[int] = field(default_factory=list)
    total: float = 0.0
    count: int = 0

    def __post_init__(self) -> None:
        self.counts = [0] * len(self.buckets)

    def observe(self, seconds: float) -> None:
        index = bisect_left(self.buckets, seconds)
        if index < len(self.counts):
            self.counts[index] += 1
        self.total += seconds
        self.count += 1


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


class EwsMetrics:
    """Thread-safe request counters and latency histograms per EWS operation."""

    def __init__(self, buckets: tuple[float, ...] = DEFAULT_BUCKETS) -> None:
        self._buckets = tuple(sorted(buckets))
        self._lock = threading.Lock()
        self._requests: dict[str, int] = {}
        self._failures: dict[str, int] = {}
        self._latency: dict[str, Histogram] = {}

    def observe(self, operation: str, seconds: float, *, failed: bool = False) -> None:
        """Record one SOAP request; ``failed`` when it got no answer or an HTTP error status."""
        with self._lock:
            self._requests[operation] = self._requests.get(operation, 0) + 1
            if failed:
                self._failures[operation] = self._failures.get(operation, 0) + 1
            histogram = self._latency.get(operation)
            if histogram is None:
                histogram = self._latency[operation] = Histogram(self._buckets)
            histogram.observe(seconds)

    def requests(self) -> dict[str, int]:
        """Requests sent so far, by operation."""
        with self._lock:
            return dict(self._requests)

    def render_prometheus(self) -> str:
        """The metrics in the Prometheus text exposition format."""
        with self._lock:
            lines = [
                "# HELP gateway_ews_requests_total EWS SOAP requests sent, by operation.",
                "# TYPE gateway_ews_requests_total counter",
            ]
            lines += [
                f'gateway_ews_requests_total{{operation="{_label(op)}"}} {n}'
                for op, n in sorted(self._requests.items())
            ]
            lines += [
                "# HELP gateway_ews_request_failures_total EWS requests without an answer or with an HTTP error.",
                "# TYPE gateway_ews_request_failures_total counter",
            ]
            lines += [
                f'gateway_ews_request_failures_total{{operation="{_label(op)}"}} {n}'
                for op, n in sorted(self._failures.items())
            ]
            lines += [
                "# HELP gateway_ews_request_duration_seconds EWS request latency, by operation.",
                "# TYPE gateway_ews_request_duration_seconds histogram",
            ]
            for op, histogram in sorted(self._latency.items()):
                lines += histogram_lines(
                    "gateway_ews_request_duration_seconds", f'operation="{_label(op)}"', histogram
                )
        return "\n".join(lines) + "\n"


def histogram_lines(name: str, labels: str, histogram: Histogram) -> list[str]:
    """``name``'s bucket, sum and count lines; ``labels`` is ``key="value"`` text or empty."""
    prefix = f"{labels}," if labels else ""
    suffix = f"{{{labels}}}" if labels else ""
    lines = []
    cumulative = 0
    for bound, count in zip(histogram.buckets, histogram.counts, strict=True):
        cumulative += count
        lines.append(f'{name}_bucket{{{prefix}le="{bound:g}"}} {cumulative}')
    lines.append(f'{name}_bucket{{{prefix}le="+Inf"}} {histogram.count}')
    lines.append(f"{name}_sum{suffix} {histogram.total:.6f}")
    lines.append(f"{name}_count{suffix} {histogram.count}")
    return lines
