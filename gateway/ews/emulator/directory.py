"""The emulator's directory: mailboxes, their credentials, delegates and working hours.

Built from the ``mailboxes`` list of the seed (see docs/EMULATOR.md). Secrets (passwords,
tokens) are kept out of every repr.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import time

AUTH_SCHEMES = ("basic", "ntlm", "negotiate", "bearer")
DEFAULT_AUTH = ("basic", "ntlm")
ALL_DAYS = ("Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday")


@dataclass(frozen=True)
class WorkingHours:
    """Working days and hours in the mailbox's time zone (EWS ``t:WorkingHours``)."""

    days: tuple[str, ...] = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday")
    start: time = time(9, 0)
    end: time = time(17, 0)

    @classmethod
    def from_seed(cls, data: dict | None) -> WorkingHours:
        if not data:
            return cls()
        days = tuple(data.get("days", cls.days))
        unknown = [d for d in days if d not in ALL_DAYS]
        if unknown:
            raise ValueError(f"unknown working days: {unknown}")
        return cls(
            days=days,
            start=time.fromisoformat(data.get("start", "09:00")),
            end=time.fromisoformat(data.get("end", "17:00")),
        )


@dataclass(frozen=True)
class Mailbox:
    """One mailbox of the emulated organisation."""

    email: str
    display_name: str
    password: str = field(default="", repr=False)
    auth: tuple[str, ...] = DEFAULT_AUTH
    tokens: tuple[str, ...] = field(default=(), repr=False)
    delegates: tuple[str, ...] = ()
    time_zone: str = "UTC"
    working_hours: WorkingHours = WorkingHours()
    kind: str = "user"  # "user" | "room"

    @property
    def local_part(self) -> str:
        return self.email.split("@", 1)[0]

    @property
    def legacy_dn(self) -> str:
        """An Exchange-style legacyExchangeDN (Autodiscover ``UserDN``, ResolveNames routing)."""
        return f"/o=Emulator/ou=Exchange Administrative Group/cn=Recipients/cn={self.local_part}"

    def check_password(self, password: str) -> bool:
        """Constant-time password comparison."""
        return bool(self.password) and hmac.compare_digest(self.password.encode(), password.encode())

    def accepts_token(self, token: str) -> bool:
        return any(hmac.compare_digest(t.encode(), token.encode()) for t in self.tokens)

    @classmethod
    def from_seed(cls, data: dict) -> Mailbox:
        email = data["email"].strip().lower()
        if "@" not in email:
            raise ValueError(f"mailbox address without a domain: {email!r}")
        auth = tuple(a.lower() for a in data.get("auth", DEFAULT_AUTH))
        unknown = [a for a in auth if a not in AUTH_SCHEMES]
        if unknown:
            raise ValueError(f"{email}: unknown auth schemes {unknown}")
        return cls(
            email=email,
            display_name=data.get("display_name") or email,
            password=data.get("password", ""),
            auth=auth,
            tokens=tuple(data.get("tokens", ())),
            delegates=tuple(d.strip().lower() for d in data.get("delegates", ())),
            time_zone=data.get("time_zone", "UTC"),
            working_hours=WorkingHours.from_seed(data.get("working_hours")),
            kind=data.get("kind", "user"),
        )


class Directory:
    """All mailboxes, looked up by address (case-insensitive) or by the forms NTLM sends."""

    def __init__(self, mailboxes: list[Mailbox]) -> None:
        self._by_email = {m.email: m for m in mailboxes}

    @classmethod
    def from_seed(cls, seed: dict) -> Directory:
        return cls([Mailbox.from_seed(m) for m in seed.get("mailboxes", [])])

    def __iter__(self) -> Iterator[Mailbox]:
        return iter(self._by_email.values())

    def get(self, email: str | None) -> Mailbox | None:
        if not email:
            return None
        return self._by_email.get(email.strip().lower())

    def for_login(self, username: str) -> Mailbox | None:
        """Map a login name to its mailbox.

        Accepts ``user@domain``, ``DOMAIN\\user``, ``\\user@domain`` (how exchangelib sends an
        e-mail-form NTLM user) and a bare ``user`` when exactly one mailbox has that local part.
        """
        name = username.strip().lower()
        if "\\" in name:
            name = name.rsplit("\\", 1)[1]
        if "@" in name:
            return self.get(name)
        matches = [m for m in self if m.local_part == name]
        return matches[0] if len(matches) == 1 else None

    def for_token(self, token: str) -> Mailbox | None:
        return next((m for m in self if m.accepts_token(token)), None)

    def search(self, text: str) -> list[Mailbox]:
        """Mailboxes whose address, local part or display name starts with ``text`` (ResolveNames)."""
        needle = text.strip().lower()
        if needle.startswith("smtp:"):
            needle = needle[5:]
        if not needle:
            return []
        exact = self.get(needle)
        if exact is not None:
            return [exact]
        return [
            m
            for m in self
            if m.email.startswith(needle)
            or any(word.lower().startswith(needle) for word in m.display_name.split())
            or m.display_name.lower().startswith(needle)
        ]
