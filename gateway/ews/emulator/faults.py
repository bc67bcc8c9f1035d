"""Faults on demand: latency, throttling, HTTP errors and dropped connections.

Configured by the seed's ``faults`` object or at run time with ``POST /_emulator/faults`` (the same
JSON). Example::

    {"latency_ms": 50, "max_concurrent_per_user": 4,
     "rules": [{"kind": "server_busy", "operation": "FindItem", "count": 2, "back_off_ms": 500},
               {"kind": "http_503", "user": "bob@example.com"}]}

Rule kinds: ``server_busy`` (SOAP fault ErrorServerBusy with BackOffMilliseconds, HTTP 500),
``http_500``, ``http_503``, ``drop`` (the connection is closed without an answer), ``latency``
(``latency_ms`` more for the matching requests) and ``timeout`` (see below). ``operation``/``user``
narrow a rule; ``skip`` lets the first N matching requests pass untouched (to fail, say, the second
UpdateItem of a write); ``count`` then limits it to the next N matching requests (absent: until the
faults are replaced).

``when`` says whether a failure happens ``"before"`` the request is carried out (the default: nothing
changed, as when Exchange throttles or a proxy refuses) or ``"after"`` it (the mailbox changed but the
answer is lost: a connection that broke or a proxy that timed out on the way back). ``after`` is
allowed for ``drop``, ``http_500``, ``http_503`` and ``server_busy``; a ``timeout`` rule always acts
after: the request is carried out, then the emulator waits ``latency_ms`` (default 30 000) and closes
the connection without an answer, so a client whose timeout is shorter gives up first. Only a request
that was carried out (its answer holds a response message that is not an error) meets an ``after``
rule: an EWS error answer is delivered as it is and the rule waits for the next matching request.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

FAULT_KINDS = ("server_busy", "http_500", "http_503", "drop", "latency", "timeout")
AFTER_KINDS = ("server_busy", "http_500", "http_503", "drop", "timeout")  # may act after applying
TIMEOUT_DEFAULT_MS = 30_000


@dataclass
class FaultRule:
    kind: str
    operation: str | None = None
    user: str | None = None
    count: int | None = None
    back_off_ms: int = 1000
    latency_ms: int = 0
    when: str = "before"  # "before" or "after" the request is carried out
    skip: int = 0  # matching requests still to let pass before the rule applies

    @classmethod
    def from_json(cls, data: dict) -> FaultRule:
        kind = data.get("kind")
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {kind!r}; expected one of {', '.join(FAULT_KINDS)}")
        count = data.get("count")
        if count is not None and (not isinstance(count, int) or count < 0):
            raise ValueError("count must be a non-negative integer")
        user = data.get("user")
        when = data.get("when", "after" if kind == "timeout" else "before")
        if when not in ("before", "after"):
            raise ValueError('when must be "before" or "after"')
        if when == "after" and kind not in AFTER_KINDS:
            raise ValueError(f"a {kind} fault cannot come after the request; only {', '.join(AFTER_KINDS)}")
        if kind == "timeout" and when != "after":
            raise ValueError("a timeout fault always comes after the request is carried out")
        skip = data.get("skip", 0)
        if not isinstance(skip, int) or skip < 0:
            raise ValueError("skip must be a non-negative integer")
        latency = data.get("latency_ms", TIMEOUT_DEFAULT_MS if kind == "timeout" else 0)
        return cls(
            kind=kind,
            operation=data.get("operation"),
            user=user.lower() if user else None,
            count=count,
            back_off_ms=int(data.get("back_off_ms", 1000)),
            latency_ms=int(latency),
            when=when,
            skip=skip,
        )

    def matches(self, operation: str, user: str | None) -> bool:
        if self.count == 0:
            return False
        if self.operation and self.operation.lower() != operation.lower():
            return False
        return not (self.user and self.user != (user or "").lower())

    def consume(self) -> bool:
        """Count one matching request; whether the rule acts on it (not while requests are skipped)."""
        if self.skip:
            self.skip -= 1
            return False
        if self.count is not None:
            self.count -= 1
        return True


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
            if rule.kind == "latency" and rule.matches(operation, user) and rule.consume():
                total += rule.latency_ms
        return total

    def take(self, operation: str, user: str | None, when: str = "before") -> FaultRule | None:
        """The first failure rule matching this request at this moment (``when``), counted as used."""
        for rule in self.rules:
            if (
                rule.kind != "latency"
                and rule.when == when
                and rule.matches(operation, user)
                and rule.consume()
            ):
                return rule
        return None
