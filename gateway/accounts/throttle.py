"""Failed sign-ins: budgets per user and per client address over a sliding window (web password, CalDAV
app passwords, the admin token).

An attempt counts in every budget it touches from the moment it begins, before its password is checked,
and is taken back only when the password was right. So parallel guesses count while their slow hash is
still running: a burst of 60 wrong guesses gets as many checked as a budget allows, and the rest are
refused at once with :class:`~gateway.caldav.backend.TooManyFailures` (HTTP 429, RFC 6585 §4) without
any password being checked. A budget full of attempts still in flight (not yet failures) asks to retry
in a second rather than after the window.

The budgets, each over the last ``window`` seconds:

- per (kind of sign-in, user, address): a wrong password typed a few times is no problem; a guesser
  is stopped after ``per_user_per_address``. Web and CalDAV count apart, so a phone still sending a
  revoked app password does not keep its owner off the web pages at home;
- per address, whatever the user names: ``per_address`` stops guessing through many names;
- per user, every address together: ``per_user`` bounds an attack from many addresses. Beyond it the
  user is refused only from addresses that never signed in as that user, so an attacker cannot lock
  the real user out of the devices and places they already use.

Addresses are grouped: an IPv6 client is its /64 (one host usually holds a whole /64). Everything is in
memory and bounded (``max_keys``); a restart forgets it.

Several processes on one PostgreSQL database (``serve --workers N``, replicas) share the budgets: each
process tells the others of every failure, and of a success that forgives typos or makes an address
known, as a message on the invalidation channel (gateway/store/notify.py, :data:`SIGN_INS`), and adds
what it hears to its own budgets as if it had happened here at the moment it arrived (milliseconds
after it did: no clock is compared across machines). So the check stays in memory, synchronous, with no
database round trip, and N processes allow what one does, with one bound left: attempts *in flight* (their
hash still running) count only in their own process, so a burst started on all N processes at the same
instant can have up to N x budget passwords checked (once per window: once they are failures they count
everywhere until they leave it). A
process whose listening connection is down counts only its own failures (and those it heard before)
until it is back. A message names the kind of sign-in, the user name as typed (in the database anyway;
a name over :data:`LONG_NAME` characters by its digest) and the address group; never a password. On
SQLite one process serves the database and nothing is sent.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import logging
import math
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass

from gateway.caldav.backend import TooManyFailures

log = logging.getLogger(__name__)

ADMIN = " admin token"  # the "user" of admin-token attempts: no user name has a space
KNOWN_ADDRESS_SECONDS = 30 * 86400  # how long a successful sign-in keeps an address known for a user
# A success at an address known for the user tells the other processes again after this long (so one
# started since hears of it), not on every request (a cached CalDAV sign-in costs no database trip).
RETELL_KNOWN_SECONDS = 3600
LONG_NAME = 128  # a longer user name (no account has one) is counted, and sent, as its digest
FAILED, SIGNED_IN = "failed", "signed_in"  # what a message to the other processes says


def _user_key(user: str) -> str:
    if len(user) <= LONG_NAME:
        return user
    return "#" + hashlib.sha256(user.encode("utf-8", "surrogatepass")).hexdigest()


def address_group(address: str) -> str:
    """The unit budgets count per: the address, or its /64 for IPv6 (an IPv4-mapped one is IPv4)."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


@dataclass(eq=False)
class _Entry:
    """One attempt in one budget: pending while its password is checked, then a failure (or removed)."""

    at: float
    pending: bool = True


@dataclass(eq=False)
class Attempt:
    """One sign-in, counted in every budget while its password is checked.

    Use it as a context manager: :meth:`succeeded` takes it back; leaving the block without it makes it a
    failure; an exception withdraws it (a database outage is no guess).
    """

    _throttle: SignInThrottle
    _keys: tuple[tuple[str, ...], ...]
    _entries: tuple[_Entry, ...]
    _known: tuple[str, str]
    _open: bool = True

    def succeeded(self) -> None:
        if self._open:
            self._open = False
            self._throttle._withdraw(self, forgive=True)

    def __enter__(self) -> Attempt:
        return self

    def __exit__(self, kind: type[BaseException] | None, *_: object) -> None:
        if self._open:
            self._open = False
            if kind is None:
                self._throttle._failed(self)
            else:
                self._throttle._withdraw(self, forgive=False)


class SignInThrottle:
    """Failure budgets over a sliding window (see the module docstring)."""

    def __init__(
        self,
        *,
        window: float = 300.0,
        per_user_per_address: int = 10,
        per_address: int = 30,
        per_user: int = 100,
        max_keys: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.window = window
        self.per_user_per_address = per_user_per_address
        self.per_address = per_address
        self.per_user = per_user
        self._max_keys = max_keys
        self._clock = clock
        self._failures: OrderedDict[tuple[str, ...], deque[float]] = OrderedDict()
        # (user, address) → last success; refreshed (and told to the others) at most hourly while in use
        self._known: OrderedDict[tuple[str, str], float] = OrderedDict()
        self._tell: Callable[[str], None] | None = None  # to the other processes (PostgreSQL)

    def share(self, tell: Callable[[str], None]) -> None:
        """Tell the other processes of failures and forgiving successes through ``tell`` (one line of
        text each), and add theirs, passed to :meth:`heard`, to these budgets."""
        self._tell = tell

    def heard(self, message: str) -> None:
        """Another process's failure (it counts here from now) or success (typos forgiven, the address
        known); a message not understood raises ValueError."""
        what, kind, user, group = _parse(message)
        now = self._clock()
        if what == FAILED:
            for key in ((kind, user, group), ("address", group), ("user", user)):
                entries = self._entry(key)
                while entries and entries[0].at <= now - self.window:
                    entries.popleft()
                entries.append(_Entry(now, pending=False))
        else:
            entries = self._failures.get((kind, user, group))
            if entries is not None:  # attempts in flight here stay counted
                kept = [e for e in entries if e.pending]
                entries.clear()
                entries.extend(kept)
            self._remember(user, group, now)

    def _remember(self, user: str, group: str, now: float) -> None:
        self._known.pop((user, group), None)
        self._known[(user, group)] = now
        if len(self._known) > self._max_keys:
            self._known.popitem(last=False)

    def _announce(self, what: str, attempt: Attempt) -> None:
        if self._tell is not None:
            kind, user, group = attempt._keys[0]
            self._tell(json.dumps([what, kind, user, group]))

    def begin(self, kind: str, user: str, address: str) -> Attempt:
        """Count an attempt for ``user`` from ``address`` now, or raise TooManyFailures without counting.

        ``kind`` separates the per-(user, address) budgets of different passwords ("web", "dav",
        "admin"); the address and user budgets are shared by every kind.
        """
        now = self._clock()
        group, user = address_group(address), _user_key(user)
        pair, by_address, by_user = (kind, user, group), ("address", group), ("user", user)
        self._refuse_if_spent(pair, self.per_user_per_address, now, "for this user from your address")
        self._refuse_if_spent(by_address, self.per_address, now, "from your address")
        if not self._is_known(user, group, now):
            self._refuse_if_spent(by_user, self.per_user, now, "for this user")
        keys = (pair, by_address, by_user)
        entries = tuple(_Entry(now) for _ in keys)
        for key, entry in zip(keys, entries, strict=True):
            self._entry(key).append(entry)
        return Attempt(self, keys, entries, (user, group))

    def failures(self, kind: str, user: str, address: str) -> int:
        """The failures counted now against ``user`` from ``address`` (for operators and tests)."""
        now = self._clock()
        entries = self._failures.get((kind, _user_key(user), address_group(address)), ())
        return sum(1 for e in entries if not e.pending and e.at > now - self.window)

    def _budget(self, key: tuple[str, ...]) -> tuple[str, int]:
        if key[0] == "address":
            return "address", self.per_address
        if key[0] == "user":
            return "user", self.per_user
        return "user and address", self.per_user_per_address

    def _refuse_if_spent(self, key: tuple[str, ...], budget: int, now: float, whose: str) -> None:
        entries = self._failures.get(key)
        if entries is None:
            return
        while entries and entries[0].at <= now - self.window:
            entries.popleft()
        if len(entries) < budget:
            return
        failures = [e for e in entries if not e.pending]
        if len(failures) >= budget:
            # The moment enough failures have left the window for one more attempt.
            retry_after = max(1, math.ceil(failures[len(failures) - budget].at + self.window - now))
            raise TooManyFailures(
                f"Too many failed sign-ins {whose}; try again in {retry_after} seconds.", retry_after
            )
        # Full with attempts still being checked: they end within moments, and if right, make room.
        raise TooManyFailures(f"Too many sign-ins at once {whose}; try again in 1 second.", 1)

    def _entry(self, key: tuple[str, ...]) -> deque[_Entry]:
        entries = self._failures.pop(key, None)
        if entries is None:
            entries = deque()
            if len(self._failures) >= self._max_keys:  # bound memory under a spray of names and addresses
                self._failures.popitem(last=False)
        self._failures[key] = entries  # most recently used last
        return entries

    def _is_known(self, user: str, group: str, now: float) -> bool:
        since = self._known.get((user, group))
        return since is not None and now - since < KNOWN_ADDRESS_SECONDS

    def _failed(self, attempt: Attempt) -> None:
        """A wrong password: the attempt stays, as a failure, for the window (here and, once they hear
        of it, in the other processes)."""
        self._announce(FAILED, attempt)
        for key, entry in zip(attempt._keys, attempt._entries, strict=True):
            entry.pending = False
            entries = self._failures.get(key)
            name, budget = self._budget(key)
            if entries is not None and sum(not e.pending for e in entries) == budget:
                # Once per lock, for the operator (and tools such as fail2ban).
                user, group = attempt._known
                log.warning(
                    "sign-in failures: the budget per %s (%d in %g s) is spent; address %s, user %.64r, %s sign-in",
                    name,
                    budget,
                    self.window,
                    group,
                    user,
                    attempt._keys[0][0],
                )

    def _withdraw(self, attempt: Attempt, *, forgive: bool) -> None:
        """Take the attempt back; ``forgive`` (the password was right) also clears earlier typos of this
        user at this address and makes the address known. The address and user budgets keep their
        failures: an attacker with one account of their own must not reset their address by signing in."""
        for key, entry in zip(attempt._keys, attempt._entries, strict=True):
            entries = self._failures.get(key)
            if entries is not None and entry in entries:
                entries.remove(entry)
        if forgive:
            typos = self._failures.pop(attempt._keys[0], None)
            now, since = self._clock(), self._known.get(attempt._known)
            self._remember(*attempt._known, now)
            if (
                any(not e.pending for e in typos or ())
                or since is None
                or now - since >= RETELL_KNOWN_SECONDS
            ):
                self._announce(SIGNED_IN, attempt)
            else:
                self._known[attempt._known] = since  # told recently: the others know it until then


def _parse(message: str) -> tuple[str, str, str, str]:
    """``[what, kind, user, address group]`` as sent by :meth:`SignInThrottle._announce`."""
    fields = json.loads(message)
    if (
        not isinstance(fields, list)
        or len(fields) != 4
        or fields[0] not in (FAILED, SIGNED_IN)
        or not all(isinstance(f, str) for f in fields)
        or len(fields[2]) > LONG_NAME + 1
    ):
        raise ValueError(f"not a sign-in message: {message[:100]!r}")
    return fields[0], fields[1], fields[2], fields[3]
