"""The emulator's mutable state: directory, calendar store, faults and statistics."""

from __future__ import annotations

import copy
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from gateway.ews.emulator.directory import Directory, Mailbox
from gateway.ews.emulator.faults import FaultSettings
from gateway.ews.emulator.soap import SERVER_VERSIONS, ServerVersion
from gateway.ews.emulator.store import CalendarStore

# What Autodiscover may answer for a domain (see autodiscover.py).
AUTODISCOVER_MODES = ("success", "redirect_address", "redirect_url", "none")


@dataclass
class Stats:
    """Requests per EWS operation (and per mailbox) that were authenticated and reached an operation."""

    operations: Counter[str] = field(default_factory=Counter)
    mailboxes: dict[str, Counter[str]] = field(default_factory=dict)
    # EWS requests answered 401 (a client's anonymous first try, NTLM's type-1 leg): round trips too.
    unauthenticated: int = 0

    def record(self, operation: str, email: str | None) -> None:
        self.operations[operation] += 1
        if email:
            self.mailboxes.setdefault(email, Counter())[operation] += 1

    def to_json(self) -> dict[str, Any]:
        return {
            "operations": dict(self.operations),
            "mailboxes": {email: dict(counts) for email, counts in self.mailboxes.items()},
            "unauthenticated": self.unauthenticated,
        }


class EmulatorState:
    """Everything a running emulator knows; :meth:`reset` restores the seed."""

    def __init__(self, seed: dict, *, ews_version: str = "2016", latency_ms: int = 0) -> None:
        if ews_version not in SERVER_VERSIONS:
            raise ValueError(
                f"unknown EWS version {ews_version!r}; expected one of {sorted(SERVER_VERSIONS)}"
            )
        self.seed = copy.deepcopy(seed)
        self.server_version: ServerVersion = SERVER_VERSIONS[ews_version]
        self._default_latency_ms = latency_ms
        self.reset()

    @classmethod
    def from_seed(cls, seed: dict, *, ews_version: str = "2016", latency_ms: int = 0) -> EmulatorState:
        return cls(seed, ews_version=ews_version, latency_ms=latency_ms)

    def reset(self) -> None:
        """Rebuild directory, store and faults from the seed and zero the statistics."""
        seed = copy.deepcopy(self.seed)
        self.directory = Directory.from_seed(seed)
        self.store = CalendarStore.from_seed(seed, datetime.now(UTC))
        self.faults = FaultSettings.from_json(seed.get("faults"), latency_ms=self._default_latency_ms)
        self.stats = Stats()
        self.impersonation: dict[str, tuple[str, ...]] = {
            k.lower(): tuple(v.lower() for v in targets)
            for k, targets in seed.get("impersonation", {}).items()
        }
        self.autodiscover: dict[str, dict] = {k.lower(): v for k, v in seed.get("autodiscover", {}).items()}
        for domain, config in self.autodiscover.items():
            if config.get("mode", "success") not in AUTODISCOVER_MODES:
                raise ValueError(f"autodiscover mode for {domain}: expected one of {AUTODISCOVER_MODES}")

    def may_impersonate(self, caller: Mailbox, target: Mailbox) -> bool:
        """Whether the seed grants ``caller`` the ApplicationImpersonation role over ``target``."""
        targets = self.impersonation.get(caller.email, ())
        return "*" in targets or target.email in targets

    def may_access(self, caller: Mailbox, target: Mailbox) -> bool:
        """Own mailbox, delegate access granted by the target, or impersonation rights."""
        return (
            caller.email == target.email
            or caller.email in target.delegates
            or self.may_impersonate(caller, target)
        )
