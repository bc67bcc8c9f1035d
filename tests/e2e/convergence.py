"""What a CalDAV client sees of a calendar (PROPFIND Depth 1, sync-collection, GET) and what Exchange (the
emulator's own store) holds: the two sides the convergence and fault tests compare."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlparse

import requests
from lxml import etree

DAV = "{DAV:}"
ICS = {"Content-Type": "text/calendar; charset=utf-8"}
LISTING = '<propfind xmlns="DAV:"><prop><getetag/></prop></propfind>'
NAME_PROPERTY = "CalDAVResourceName"  # the gateway's extended property (gateway.ews.exchange)


def event(uid: str, summary: str = "Planning", extra: str = "", start: str = "20261125T100000") -> str:
    """A one-hour event in Europe/Berlin."""
    end = f"{start[:9]}{int(start[9:11]) + 1:02d}{start[11:]}"
    return (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//tests//EN\r\nBEGIN:VEVENT\r\n"
        f"UID:{uid}\r\nDTSTAMP:20261120T100000Z\r\nDTSTART;TZID=Europe/Berlin:{start}\r\n"
        f"DTEND;TZID=Europe/Berlin:{end}\r\nSUMMARY:{summary}\r\n{extra}END:VEVENT\r\nEND:VCALENDAR\r\n"
    )


def series(
    uid: str, summary: str = "Weekly", exdates: tuple[str, ...] = (), moved: tuple[str, ...] = ()
) -> str:
    """A weekly series of six from 2026-11-25 10:00 Berlin with EXDATEs and occurrences moved to 14:00
    (both given as local start times such as ``20261202T100000``)."""
    master = (
        f"BEGIN:VEVENT\r\nUID:{uid}\r\nDTSTAMP:20261120T100000Z\r\nDTSTART;TZID=Europe/Berlin:20261125T100000\r\n"
        "DTEND;TZID=Europe/Berlin:20261125T110000\r\nRRULE:FREQ=WEEKLY;COUNT=6\r\n"
        + (f"EXDATE;TZID=Europe/Berlin:{','.join(exdates)}\r\n" if exdates else "")
        + f"SUMMARY:{summary}\r\nEND:VEVENT\r\n"
    )
    overrides = "".join(
        f"BEGIN:VEVENT\r\nUID:{uid}\r\nDTSTAMP:20261120T100000Z\r\nRECURRENCE-ID;TZID=Europe/Berlin:{rid}\r\n"
        f"DTSTART;TZID=Europe/Berlin:{rid[:9]}140000\r\nDTEND;TZID=Europe/Berlin:{rid[:9]}150000\r\n"
        f"SUMMARY:{summary} (moved)\r\nEND:VEVENT\r\n"
        for rid in moved
    )
    return f"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//tests//EN\r\n{master}{overrides}END:VCALENDAR\r\n"


@dataclass
class Client:
    """A CalDAV client of one user's calendar collection, over real HTTP."""

    stack: object
    calendar_url: str
    user: str = "alice"

    @property
    def auth(self) -> tuple[str, str]:
        return (self.user, self.stack.password)

    def url(self, name: str) -> str:
        return self.calendar_url + name

    def put(
        self, name: str, body: str, headers: dict | None = None, timeout: float = 60
    ) -> requests.Response:
        return requests.put(
            self.url(name),
            data=body.encode(),
            headers={**ICS, **(headers or {})},
            auth=self.auth,
            timeout=timeout,
        )

    def delete(self, name: str, headers: dict | None = None, timeout: float = 60) -> requests.Response:
        return requests.delete(self.url(name), headers=headers or {}, auth=self.auth, timeout=timeout)

    def get(self, name: str) -> requests.Response:
        return requests.get(self.url(name), auth=self.auth, timeout=60)

    def listing(self) -> dict[str, str]:
        """PROPFIND Depth 1: resource name → ETag."""
        answer = requests.request(
            "PROPFIND", self.calendar_url, data=LISTING, headers={"Depth": "1"}, auth=self.auth, timeout=60
        )
        assert answer.status_code == 207, answer.text
        found = {}
        base = urlparse(self.calendar_url).path
        for response in etree.fromstring(answer.content).iter(f"{DAV}response"):
            path = response.findtext(f"{DAV}href")
            if path.rstrip("/") != base.rstrip("/"):
                found[path[len(base) :]] = response.findtext(f".//{DAV}getetag")
        return found

    def sync(self, token: str | None) -> tuple[str, dict[str, str], set[str]]:
        """RFC 6578 sync-collection: (new token, changed name → ETag, deleted names)."""
        body = (
            '<sync-collection xmlns="DAV:">'
            + (f"<sync-token>{token}</sync-token>" if token else "<sync-token/>")
            + "<sync-level>1</sync-level><prop><getetag/></prop></sync-collection>"
        )
        answer = requests.request(
            "REPORT", self.calendar_url, data=body, headers={"Depth": "1"}, auth=self.auth, timeout=60
        )
        assert answer.status_code == 207, answer.text
        tree = etree.fromstring(answer.content)
        base = urlparse(self.calendar_url).path
        changed, deleted = {}, set()
        for response in tree.iter(f"{DAV}response"):
            name = response.findtext(f"{DAV}href")[len(base) :]
            if "404" in (response.findtext(f"{DAV}status") or ""):
                deleted.add(name)
            else:
                changed[name] = response.findtext(f".//{DAV}getetag")
        return tree.findtext(f"{DAV}sync-token"), changed, deleted


def exchange_names(
    emulator, email: str = "alice@example.com", folder_name: str = "Calendar"
) -> dict[str, str]:
    """What Exchange holds (the emulator's store, read directly): resource name → UID of every item of
    the folder that carries a CalDAV resource name (the events the gateway wrote)."""
    box = emulator.state.store.mailboxes[email]
    folder = next(f for f in list(box.folders.values()) if f.name == folder_name)
    names = {}
    for item in list(folder.items.values()):
        for value in list(item.extended.values()):
            if ("PropertyName", NAME_PROPERTY) in value.uri:
                names[value.values[0]] = item.uid
    return names


def exchange_item(emulator, name: str, email: str = "alice@example.com", folder_name: str = "Calendar"):
    """The emulator's stored item (model.CalendarItem) carrying resource name ``name``, or None."""
    box = emulator.state.store.mailboxes[email]
    folder = next(f for f in list(box.folders.values()) if f.name == folder_name)
    for item in list(folder.items.values()):
        for value in list(item.extended.values()):
            if ("PropertyName", NAME_PROPERTY) in value.uri and value.values[0] == name:
                return item
    return None
