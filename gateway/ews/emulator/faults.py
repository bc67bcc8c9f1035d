"""Faults on demand: latency, throttling, HTTP errors and dropped connections.

Configured by the seed's ``faults`` object or at run time with ``POST /_emulator/faults`` (the same
JSON). Example::

    {"latency_ms": 50, "max_concurrent_per_user": 4,
     "rules": [{"kind": "server_busy", "operation": "FindItem", "count": 2, "back_off_ms": 500},
               {"kind": "http_503", "user": "bob@example.com"}]}

Rule kinds: ``server_busy`` (SOAP fault ErrorServerBusy with BackOffMilliseconds, HTTP 500),
``http_500``, ``http_503``, ``drop`` (the connection is closed without an answer) and ``latency``
(``latency_ms`` more for the matching requests). ``operation``/``user`` narrow a rule; ``count``
limits it to the next N matching requests (absent: until the faults are replaced).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

FAULT_KINDS = ("server_busy", "http_500", "http_503", "drop", "latency")


@dataclass
class FaultRule:
    kind: str
    operation: str | None = None
    user: str | None = None
    count: int | None = None
    back_off_ms: int = 1000
    latency_ms: int = 0

    @classmethod
    def from_json(cls, data: dict) -> FaultRule:
        kind = data.get("kind")
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {kind!r}; expected one of {', '.join(FAULT_KINDS)}")
        count = data.get("count")
        if count is not None and (not isinstance(count, int) or count < 0):
            raise ValueError("count must be a non-negative integer")
        user = data.get("user")
        return cls(
            kind=kind,
            operation=data.get("operation"),
            user=user.lower() if user else None,
            count=count,
            back_off_ms=int(data.get("back_off_ms", 1000)),
            latency_ms=int(data.get("latency_ms", 0)),
        )

    def matches(self, operation: str, user: str | None) -> bool:
        if self.count == 0:
            return False
        if self.operation and self.operation.lower() != operation.lower():
            return False
        return not (self.user and self.user != (user or "").lower())

    def consume(self) -> None:
        if self.count is not None:
            self.count -= 1


@dataclass
class FaultSettings:
    """The active faults. Mutated only from the event loop thread."""

    latency_ms: int = 0
    max_concurrent_per_user: int | None = None
    rules: list[FaultRule] = field(default_factory=list)

    @classmethod
    def from_json(cls, data: dict | None, *, latency_ms: int = 0) -> FaultSettings:
        data = data or {}
        limit = data.get("max_concurrent_per_user")
        if limit is not None and (not isinstance(limit, int) or limit < 1):
            raise ValueError("max_concurrent_per_user must be a positive integer")
        return cls(
            latency_ms=int(data.get("latency_ms", latency_ms)),
            max_concurrent_per_user=limit,
            rules=[FaultRule.from_json(r) for r in data.get("rules", [])],
        )

    def to_json(self) -> dict:
        return {
            "latency_ms": self.latency_ms,
            "max_concurrent_per_user": self.max_concurrent_per_user,
            "rules": [asdict(r) for r in self.rules],
        }

    def latency_for(self, operation: str, user: str | None) -> int:
        """Milliseconds to wait before answering (global latency plus matching latency rules)."""
        total = self.latency_ms
        for rule in self.rules:
            if rule.kind == "latency" and rule.matches(operation, user):
                rule.consume()
                total += rule.latency_ms
        return total

    def take(self, operation: str, user: str | None) -> FaultRule | None:
        """The first failure rule matching this request, counted as used."""
        for rule in self.rules:
            if rule.kind != "latency" and rule.matches(operation, user):
                rule.consume()
                return rule
        return None
