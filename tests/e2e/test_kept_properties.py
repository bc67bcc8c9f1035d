"""Every property a client stores survives the round trip (through HTTP, into the emulator and back).

What Exchange has no field for is kept with the item (gateway/ews/mapping/residual.py) and merged
back on read; a change made in Outlook (here: exchangelib straight at the emulator) wins for the
fields it changed, by the rules of gateway/ews/mapping/merge.py.
"""

from __future__ import annotations

import uuid
from datetime import timedelta

import requests
from icalendar import Calendar

from gateway.ews.exchange import occurrence_id
from tests.e2e.test_read_path import delta, exchange_account
from tests.e2e.test_write_path import primary_url, put, writes

THUNDERBIRD = """BEGIN:VCALENDAR\r
PRODID:-//Mozilla.org/NONSGML Mozilla Calendar V1.1//EN\r
VERSION:2.0\r
X-WR-CALNAME:Work\r
BEGIN:VEVENT\r
CREATED:20261101T080000Z\r
LAST-MODIFIED:20261101T081500Z\r
DTSTAMP:20261101T081500Z\r
UID:{uid}\r
SUMMARY:Standup\r
DTSTART;TZID=Europe/Berlin:20261125T100000\r
DTEND;TZID=Europe/Berlin:20261125T101500\r
SEQUENCE:2\r
RELATED-TO;RELTYPE=PARENT:project-kickoff\r
URL:https://example.com/standup\r
X-MOZ-GENERATION:5\r
X-MOZ-LASTACK:20261125T085000Z\r
X-MOZ-SNOOZE-TIME:20261125T091000Z\r
BEGIN:VALARM\r
ACTION:DISPLAY\r
TRIGGER;VALUE=DURATION:-PT15M\r
DESCRIPTION:Mozilla Standardbeschreibung\r
END:VALARM\r
BEGIN:VALARM\r
ACTION:EMAIL\r
TRIGGER:PT5M\r
DESCRIPTION:After it started\r
SUMMARY:Standup\r
ATTENDEE:mailto:alice@example.com\r
END:VALARM\r
END:VEVENT\r
END:VCALENDAR\r
"""


def _get(stack, url: str) -> Calendar:
    answer = requests.get(url, auth=("alice", stack.password))
    assert answer.status_code == 200, answer.text
    return Calendar.from_ical(answer.text)


def _event(calendar: Calendar):
    (event,) = calendar.walk("VEVENT")
    return event


def _in_outlook(emulator, uid: str, fields: tuple[str, ...]):
    """The item as Outlook holds it (exchangelib against the emulator, no gateway)."""
    account = exchange_account(emulator)
    return next(i for i in account.calendar.all().only("uid", *fields) if i.uid == uid)


def _stored(stack) -> tuple[str, str]:
    uid = str(uuid.uuid4())
    url = primary_url(stack) + f"{uid}.ics"
    assert put(stack, url, THUNDERBIRD.format(uid=uid)).status_code == 201
    return uid, url


def test_a_dismissed_reminder_stays_dismissed_across_an_outlook_subject_change(stack, emulator):
    uid, url = _stored(stack)
    event = _event(_get(stack, url))
    assert str(event["X-MOZ-LASTACK"]) == "20261125T085000Z"
    assert str(event["RELATED-TO"]) == "project-kickoff" and int(event["SEQUENCE"]) == 2
    assert len(event.walk("VALARM")) == 2

    item = _in_outlook(emulator, uid, ("subject",))
    item.subject = "Standup (moved to room 2)"
    item.save(update_fields=["subject"])

    calendar = _get(stack, url)
    event = _event(calendar)
    assert str(event["SUMMARY"]) == "Standup (moved to room 2)"
    assert str(event["X-MOZ-LASTACK"]) == "20261125T085000Z"  # Thunderbird does not remind again
    assert str(event["X-MOZ-SNOOZE-TIME"]) == "20261125T091000Z"
    assert str(event["URL"]) == "https://example.com/standup" and str(calendar["X-WR-CALNAME"]) == "Work"
    assert sorted(str(a["ACTION"]) for a in event.walk("VALARM")) == ["DISPLAY", "EMAIL"]
    assert int(event["SEQUENCE"]) == 2  # a new subject is not a significant change (RFC 5546 §2.1.4)


def test_an_outlook_move_counts_sequence_up(stack, emulator):
    uid, url = _stored(stack)
    item = _in_outlook(emulator, uid, ("start", "end"))
    item.start += timedelta(hours=2)
    item.end += timedelta(hours=2)
    item.save(update_fields=["start", "end"])
    event = _event(_get(stack, url))
    assert int(event["SEQUENCE"]) == 3
    assert event["DTSTART"].dt.hour == 12
    assert "X-MOZ-LASTACK" in event and "RELATED-TO" in event


def test_a_reminder_switched_off_in_outlook_drops_the_alarms_and_their_acknowledgement(stack, emulator):
    uid, url = _stored(stack)
    item = _in_outlook(emulator, uid, ("reminder_is_set",))
    item.reminder_is_set = False
    item.save(update_fields=["reminder_is_set"])
    event = _event(_get(stack, url))
    assert event.walk("VALARM") == []
    assert "X-MOZ-LASTACK" not in event and "X-MOZ-SNOOZE-TIME" not in event
    assert "X-MOZ-GENERATION" in event and "URL" in event


def test_a_new_put_replaces_what_was_kept_at_the_cost_of_a_plain_update(stack, emulator):
    uid, url = _stored(stack)
    body = THUNDERBIRD.format(uid=uid).replace("URL:https://example.com/standup\r\n", "COLOR:tomato\r\n")
    before = stack.ews_calls()
    assert put(stack, url, body).status_code == 204
    used = delta(before, stack.ews_calls())
    # the residual travels in the UpdateItem and the GetItem a PUT makes anyway (the SyncFolderItems
    # is the index's, when the create was not indexed yet)
    assert used.get("GetItem") == 1 and used.get("UpdateItem") == 1, used
    assert set(used) <= {"GetItem", "UpdateItem", "SyncFolderItems"}, used
    event = _event(_get(stack, url))
    assert "URL" not in event and str(event["COLOR"]) == "tomato"


def test_an_override_whose_occurrence_outlook_deleted_is_dropped(stack, emulator):
    uid = str(uuid.uuid4())
    url = primary_url(stack) + f"{uid}.ics"
    series = (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//tests//EN\r\nBEGIN:VEVENT\r\n"
        f"UID:{uid}\r\nDTSTAMP:20261120T100000Z\r\nDTSTART;TZID=Europe/Berlin:20261125T100000\r\n"
        "DTEND;TZID=Europe/Berlin:20261125T110000\r\nRRULE:FREQ=WEEKLY;COUNT=4\r\nSUMMARY:Weekly\r\n"
        "X-KEPT:master\r\nEND:VEVENT\r\nBEGIN:VEVENT\r\n"
        f"UID:{uid}\r\nDTSTAMP:20261120T100000Z\r\nRECURRENCE-ID;TZID=Europe/Berlin:20261202T100000\r\n"
        "DTSTART;TZID=Europe/Berlin:20261202T140000\r\nDTEND;TZID=Europe/Berlin:20261202T150000\r\n"
        "SUMMARY:Moved\r\nX-KEPT:override\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
    )
    assert put(stack, url, series).status_code == 201
    events = _get(stack, url).walk("VEVENT")
    assert sorted(str(e["X-KEPT"]) for e in events) == ["master", "override"]

    master = _in_outlook(emulator, uid, ("changekey", "type"))
    account = exchange_account(emulator)
    account.bulk_delete([occurrence_id(master, 2)])  # the moved occurrence, deleted in Outlook

    (event,) = _get(stack, url).walk("VEVENT")
    assert str(event["X-KEPT"]) == "master" and "EXDATE" in event
    assert int(event.get("SEQUENCE", 0)) == 1  # an occurrence fewer: the recurrence changed


def test_more_than_exchange_can_keep_is_refused_with_a_sentence_and_nothing_is_written(stack, emulator):
    uid = str(uuid.uuid4())
    blob = "X-THUMBNAIL;ENCODING=BASE64;VALUE=BINARY:" + "QUJD" * 20_000 + "\r\n"
    body = THUNDERBIRD.format(uid=uid).replace("URL:https://example.com/standup\r\n", blob)
    before = stack.ews_calls()
    answer = put(stack, primary_url(stack) + f"{uid}.ics", body)
    assert answer.status_code == 403
    assert "valid-calendar-object-resource" in answer.text
    assert "X-THUMBNAIL" in answer.text and "at most 64 KB" in answer.text
    assert writes(delta(before, stack.ews_calls())) == 0
