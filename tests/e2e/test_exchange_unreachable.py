"""When Exchange cannot be reached, the CalDAV client's 503 says so in words, not in EWS response codes."""

from __future__ import annotations

import re

import caldav
import pytest
import requests

QUERY = (
    '<C:calendar-query xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav"><D:prop><D:getetag/>'
    '</D:prop><C:filter><C:comp-filter name="VCALENDAR"><C:comp-filter name="VEVENT">'
    '<C:time-range start="20260101T000000Z" end="20260201T000000Z"/></C:comp-filter></C:comp-filter>'
    "</C:filter></C:calendar-query>"
)


@pytest.mark.parametrize("fault", [{"kind": "drop"}, {"kind": "http_503"}])
def test_the_503_says_exchange_could_not_be_reached_without_ews_jargon(stack, emulator, fault):
    client = caldav.DAVClient(url=stack.base_url + "/", username="alice", password=stack.password)
    calendar = client.principal().calendars()[0]
    emulator.set_faults(rules=[{**fault, "operation": "FindItem"}])
    answer = requests.request(
        "REPORT",
        str(calendar.url),
        data=QUERY,
        headers={"Depth": "1", "Content-Type": "application/xml"},
        auth=("alice", stack.password),
        timeout=60,
    )
    assert answer.status_code == 503
    assert re.search(r"could not be reached|did not answer in time|busy", answer.text), answer.text
    assert not re.search(r"\bError[A-Z]\w*|TransportError|ConnectionError|\(\w+Error\)", answer.text), (
        answer.text
    )
