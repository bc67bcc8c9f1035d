"""Free/busy end to end (issue 6): real clients → gateway (HTTP) → exchangelib → EWS emulator.

Every answer is compared with the emulator's own truth for the demo seed
(``store.busy_events`` for a primary calendar, the expanded folder for a sub-calendar),
mapped here independently of the gateway: Busy → BUSY, Tentative → BUSY-TENTATIVE,
OOF → BUSY-UNAVAILABLE, WorkingElsewhere → nothing (or the account's chosen FBTYPE), Free → nothing.
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import pytest
import requests
from exchangelib import EWSDateTime, EWSTimeZone
from exchangelib.items import CalendarItem
from icalendar import Calendar
from lxml import etree

from gateway.accounts.settings import UserSettings
from gateway.ews.calendar_ids import primary_calendar_id
from tests.e2e.test_read_path import dav_client, delta, exchange_account

UTC = dt.UTC
DAV = "{DAV:}"
CALDAV = "{urn:ietf:params:xml:ns:caldav}"
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "dav"
ICS = {"Content-Type": "text/calendar; charset=utf-8"}
TRUTH_FBTYPES = {"Busy": "BUSY", "Tentative": "BUSY-TENTATIVE", "OOF": "BUSY-UNAVAILABLE"}

Span = tuple[dt.datetime, dt.datetime, str]


# --------------------------------------------------------------------------- the emulator's truth


def today_utc() -> dt.datetime:
    return dt.datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


def merged(spans: list[Span]) -> set[Span]:
    """Overlapping or touching spans of one FBTYPE become one (as RFC 5545 §3.2.9 allows)."""
    result: set[Span] = set()
    for fbtype in {s[2] for s in spans}:
        ordered = sorted((s, e) for s, e, t in spans if t == fbtype)
        begin, finish = ordered[0]
        for s, e in ordered[1:]:
            if s <= finish:
                finish = max(finish, e)
            else:
                result.add((begin, finish, fbtype))
                begin, finish = s, e
        result.add((begin, finish, fbtype))
    return result


def _clipped(items, start: dt.datetime, end: dt.datetime, working_elsewhere: str) -> set[Span]:
    mapping = dict(TRUTH_FBTYPES)
    if working_elsewhere != "FREE":
        mapping["WorkingElsewhere"] = working_elsewhere
    return merged([(max(s, start), min(e, end), mapping[kind]) for s, e, kind in items if kind in mapping])


def truth(
    emulator, email: str, start: dt.datetime, end: dt.datetime, working_elsewhere: str = "FREE"
) -> set[Span]:
    """What Exchange holds for a mailbox's primary calendar over [start, end)."""
    events = emulator.state.store.busy_events(email, start, end)
    return _clipped([(e.start, e.end, e.busy_type) for e in events], start, end, working_elsewhere)


def folder_truth(emulator, email: str, folder: str, start: dt.datetime, end: dt.datetime) -> set[Span]:
    """What Exchange holds in one named calendar folder (a sub-calendar) over [start, end)."""
    box = emulator.state.store.mailboxes[email]
    folder_id = next(f.folder_id for f in box.folders.values() if f.name == folder)
    items = [(i.start, i.end, i.free_busy) for i in box.expand(folder_id, start, end) if not i.is_cancelled]
    return _clipped(items, start, end, "FREE")


# --------------------------------------------------------------------------- reading answers


def _moment(text: str) -> dt.datetime:
    return dt.datetime.strptime(text, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)


def _duration(text: str) -> dt.timedelta:
    match = re.fullmatch(r"P(?:(\d+)W)?(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+)S)?)?", text)
    assert match, text
    weeks, days, hours, minutes, seconds = (int(g or 0) for g in match.groups())
    return dt.timedelta(weeks=weeks, days=days, hours=hours, minutes=minutes, seconds=seconds)


def busy_spans(ical_text: str) -> set[Span]:
    """Every FREEBUSY period of a VCALENDAR text (RFC 5545 §3.8.2.6), read straight from the lines."""
    unfolded = re.sub(r"\r?\n[ \t]", "", ical_text)
    spans: set[Span] = set()
    for line in unfolded.splitlines():
        name, _, value = line.partition(":")
        if name.split(";")[0].upper() != "FREEBUSY":
            continue
        params = dict(p.split("=", 1) for p in name.split(";")[1:])
        for period in value.split(","):
            first, second = period.split("/")
            begin = _moment(first)
            finish = begin + _duration(second) if second.startswith("P") else _moment(second)
            spans.add((begin, finish, params.get("FBTYPE", "BUSY").upper()))
    return spans


def schedule_responses(body: bytes) -> dict[str, etree._Element]:
    """The CALDAV:response elements of a schedule-response, by recipient (lower-case)."""
    root = etree.fromstring(body)
    assert root.tag == f"{CALDAV}schedule-response"
    return {r.findtext(f"{CALDAV}recipient/{DAV}href").lower(): r for r in root.findall(f"{CALDAV}response")}


def reply_spans(response: etree._Element) -> set[Span]:
    """Check a recipient's answer is a METHOD:REPLY VFREEBUSY (what clients accept) and read its busy time."""
    assert response.findtext(f"{CALDAV}request-status").startswith("2.0")
    text = response.findtext(f"{CALDAV}calendar-data")
    parsed = Calendar.from_ical(text)
    assert str(parsed["METHOD"]) == "REPLY"
    assert len(parsed.walk("VFREEBUSY")) == 1
    return busy_spans(text)


# --------------------------------------------------------------------------- requests


def fb_request(
    start: dt.datetime, end: dt.datetime, attendees: list[str], organizer: str = "alice@example.com"
) -> str:
    lines = [
        "BEGIN:VCALENDAR",
        "VERSION:2.0",
        "PRODID:-//tests//EN",
        "METHOD:REQUEST",
        "BEGIN:VFREEBUSY",
        "UID:e2e-freebusy",
        "DTSTAMP:20261101T000000Z",
        f"ORGANIZER:mailto:{organizer}",
        f"DTSTART:{start:%Y%m%dT%H%M%SZ}",
        f"DTEND:{end:%Y%m%dT%H%M%SZ}",
        *(f"ATTENDEE:mailto:{a}" for a in attendees),
        "END:VFREEBUSY",
        "END:VCALENDAR",
        "",
    ]
    return "\r\n".join(lines)


def outbox_url(stack, user: str = "alice") -> str:
    """The schedule-outbox-URL the principal advertises (RFC 6638 §2.1)."""
    principal = dav_client(stack, user).principal()
    answer = requests.request(
        "PROPFIND",
        str(principal.url),
        auth=(user, stack.password),
        headers={"Depth": "0"},
        data='<propfind xmlns="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav"><prop><C:schedule-outbox-URL/>'
        "<C:schedule-inbox-URL/></prop></propfind>",
    )
    assert answer.status_code == 207
    found = etree.fromstring(answer.content).findtext(f".//{CALDAV}schedule-outbox-URL/{DAV}href")
    assert found and found.endswith("/outbox/")
    return stack.base_url + found if found.startswith("/") else found


def post(stack, url: str, body: str, user: str = "alice", headers: dict | None = None) -> requests.Response:
    return requests.post(
        url, data=body.encode(), headers={**ICS, **(headers or {})}, auth=(user, stack.password)
    )


def alice_ids(stack) -> tuple[str, str]:
    """(user_id, account_id) of the demo user alice."""
    accounts = stack.stack.services.accounts
    user = stack.run(accounts.find_user("alice"))
    [account] = stack.run(accounts.list_accounts(user.user_id))
    return user.user_id, account.account_id


def two_weeks() -> tuple[dt.datetime, dt.datetime]:
    return today_utc(), today_utc() + dt.timedelta(days=14)


def free_busy_query(
    stack, calendar_url: str, start: dt.datetime, end: dt.datetime, user: str = "alice"
) -> requests.Response:
    """The RFC 4791 §7.10 REPORT as clients send it."""
    return requests.request(
        "REPORT",
        calendar_url,
        auth=(user, stack.password),
        headers={"Depth": "1"},
        data=f'<C:free-busy-query xmlns:C="urn:ietf:params:xml:ns:caldav"><C:time-range start="{start:%Y%m%dT%H%M%SZ}"'
        f' end="{end:%Y%m%dT%H%M%SZ}"/></C:free-busy-query>',
    )


def json_spans(attendee: dict) -> set[Span]:
    """The busy periods of one attendee of the /api/v1/freebusy answer."""
    return {
        (dt.datetime.fromisoformat(b["start"]), dt.datetime.fromisoformat(b["end"]), b["type"])
        for b in attendee["busy"]
    }


def check_projects_for_conflicts(stack, checked: bool) -> None:
    """alice's conflict calendars: her primary, and "Projects" too when ``checked`` (as the settings page stores it)."""
    accounts = stack.stack.services.accounts
    user_id, account_id = alice_ids(stack)
    chosen = [primary_calendar_id(account_id)]
    if checked:
        principal = stack.run(accounts.principal(user_id))
        chosen += [
            c.calendar_id
            for c in stack.run(stack.backend.calendars(principal))
            if c.display_name == "Projects"
        ]
    stack.run(accounts.save_settings(user_id, UserSettings(conflict_calendar_ids=tuple(chosen))))


# --------------------------------------------------------------------------- tests


def test_free_busy_query_report_matches_exchange(stack, emulator):
    """RFC 4791 §7.10 on alice's calendars: every busy period and FBTYPE as Exchange has them."""
    start, end = two_weeks()
    calendars = {c.get_display_name(): str(c.url) for c in dav_client(stack).principal().calendars()}
    answer = free_busy_query(stack, calendars["Calendar"], start, end)
    assert answer.status_code == 200
    assert answer.headers["Content-Type"].startswith("text/calendar")
    expected = truth(emulator, "alice@example.com", start, end)
    assert {t for _, _, t in expected} == {"BUSY", "BUSY-TENTATIVE", "BUSY-UNAVAILABLE"}
    assert busy_spans(answer.text) == expected
    projects = free_busy_query(stack, calendars["Projects"], start, end)
    assert busy_spans(projects.text) == folder_truth(emulator, "alice@example.com", "Projects", start, end)


def test_python_caldav_calendar_freebusy_request(stack, emulator):
    start, end = two_weeks()
    calendar = dav_client(stack).principal().calendars()[0]
    answer = calendar.freebusy_request(start, end)
    assert busy_spans(answer.data) == truth(emulator, "alice@example.com", start, end)


def test_outbox_post_for_four_recipients_is_one_getuseravailability(stack, emulator):
    """bob, carol, room-1 and an unknown address: one EWS call, 2.0 ×3 with Exchange's truth, 3.7 for the stranger."""
    start, end = two_weeks()
    url = outbox_url(stack)
    people = ["bob@example.com", "carol@example.com", "room-1@example.com", "nobody@example.com"]
    before = stack.ews_calls()
    answer = post(stack, url, fb_request(start, end, people))
    used = delta(before, stack.ews_calls())
    assert answer.status_code == 200, answer.text
    assert used == {"GetUserAvailability": 1}, used  # no GetServerTimeZones, nothing else
    responses = schedule_responses(answer.content)
    assert list(responses) == [f"mailto:{p}" for p in people]
    for person in people[:3]:
        assert reply_spans(responses[f"mailto:{person}"]) == truth(emulator, person, start, end), person
    stranger = responses["mailto:nobody@example.com"]
    status = stranger.findtext(f"{CALDAV}request-status")
    assert status.startswith("3.7;") and "calendar user" in status.split(";", 2)[2]  # the reason, for a human
    assert stranger.find(f"{CALDAV}calendar-data") is None


def test_oof_tentative_and_busy_keep_their_fbtypes(stack, emulator):
    """bob's public holiday is BUSY-UNAVAILABLE, the maybe-demo BUSY-TENTATIVE, his focus time BUSY."""
    start, end = two_weeks()
    answer = post(stack, outbox_url(stack), fb_request(start, end, ["bob@example.com"]))
    spans = reply_spans(schedule_responses(answer.content)["mailto:bob@example.com"])
    by_subject = {e.subject: e for e in emulator.state.store.busy_events("bob@example.com", start, end)}
    for subject, fbtype in (
        ("Public holiday", "BUSY-UNAVAILABLE"),
        ("Maybe: vendor demo", "BUSY-TENTATIVE"),
        ("Bob: focus time", "BUSY"),
    ):
        event = by_subject[subject]
        assert any(s <= event.start and event.end <= e and t == fbtype for s, e, t in spans), subject


def test_a_90_day_window_is_three_requests_merged_across_the_seams(stack, emulator):
    """GetUserAvailability allows 42 days: three requests, and an event across a seam stays one period."""
    start = today_utc()
    end = start + dt.timedelta(days=90)
    seam = start + dt.timedelta(days=42)
    tz = EWSTimeZone("UTC")
    carol = exchange_account(emulator, "carol@example.com")
    CalendarItem(
        account=carol,
        folder=carol.calendar,
        subject="Across the seam",
        legacy_free_busy_status="Busy",
        start=EWSDateTime.from_datetime(seam - dt.timedelta(hours=2)).astimezone(tz),
        end=EWSDateTime.from_datetime(seam + dt.timedelta(hours=2)).astimezone(tz),
    ).save()
    before = stack.ews_calls()
    answer = post(stack, outbox_url(stack), fb_request(start, end, ["carol@example.com", "bob@example.com"]))
    used = delta(before, stack.ews_calls())
    assert answer.status_code == 200
    assert used.get("GetUserAvailability") == 3 and "GetServerTimeZones" not in used, used
    responses = schedule_responses(answer.content)
    carol_spans = reply_spans(responses["mailto:carol@example.com"])
    assert (seam - dt.timedelta(hours=2), seam + dt.timedelta(hours=2), "BUSY") in carol_spans
    assert carol_spans == truth(emulator, "carol@example.com", start, end)
    assert reply_spans(responses["mailto:bob@example.com"]) == truth(emulator, "bob@example.com", start, end)


def test_working_elsewhere_is_free_unless_the_account_says_otherwise(stack, emulator):
    start, end = two_weeks()
    url = outbox_url(stack)
    lyon = next(
        e
        for e in emulator.state.store.busy_events("bob@example.com", start, end)
        if e.busy_type == "WorkingElsewhere"
    )

    def bob_spans() -> set[Span]:
        answer = post(stack, url, fb_request(start, end, ["bob@example.com"]))
        return reply_spans(schedule_responses(answer.content)["mailto:bob@example.com"])

    def covered(spans: set[Span], fbtype: str) -> bool:
        return any(s <= lyon.start and lyon.end <= e and t == fbtype for s, e, t in spans)

    default = bob_spans()
    assert default == truth(emulator, "bob@example.com", start, end)
    assert not any(covered(default, t) for t in ("BUSY", "BUSY-TENTATIVE")), (
        "WorkingElsewhere is free by default"
    )
    user_id, account_id = alice_ids(stack)
    calendar_url = str(dav_client(stack).principal().calendars()[0].url)
    for choice in ("BUSY-TENTATIVE", "BUSY"):
        stack.run(
            stack.stack.services.accounts.set_account_options(user_id, account_id, working_elsewhere=choice)
        )
        spans = bob_spans()
        assert covered(spans, choice), choice
        assert spans == truth(emulator, "bob@example.com", start, end, working_elsewhere=choice)
        # alice's own calendar, through the free-busy-query REPORT, follows the same option
        own = busy_spans(free_busy_query(stack, calendar_url, start, end).text)
        assert own == truth(emulator, "alice@example.com", start, end, working_elsewhere=choice)


def test_python_caldav_principal_freebusy_request(stack, emulator):
    """python-caldav's RFC 6638 request parses, the stranger included (it refuses unknown elements)."""
    start, end = two_weeks()
    principal = dav_client(stack).principal()
    principal.schedule_outbox()  # discovery first: only the request itself is counted
    people = ["bob@example.com", "carol@example.com", "nobody@example.com"]
    before = stack.ews_calls()
    answers = principal.freebusy_request(start, end, [f"mailto:{p}" for p in people])
    assert delta(before, stack.ews_calls()) == {"GetUserAvailability": 1}
    assert list(answers["errors"]) == ["mailto:nobody@example.com"]
    assert answers["errors"]["mailto:nobody@example.com"].startswith("3.7")
    for person in people[:2]:
        assert busy_spans(answers[f"mailto:{person}"].data) == truth(emulator, person, start, end), person


def _client_body(fixture: str, start: dt.datetime, end: dt.datetime) -> str:
    """A recorded client request moved to the current demo weeks."""
    text = (FIXTURES / fixture).read_text()
    text = re.sub(r"DTSTART:\d{8}T\d{6}Z", f"DTSTART:{start:%Y%m%dT%H%M%SZ}", text)
    return re.sub(r"DTEND:\d{8}T\d{6}Z", f"DTEND:{end:%Y%m%dT%H%M%SZ}", text).replace("\n", "\r\n")


@pytest.mark.parametrize(
    ("fixture", "headers"),
    [
        # Thunderbird also names originator and recipient in headers (the CalDAV scheduling drafts' way)
        (
            "thunderbird-freebusy-post.ics",
            {"Originator": "mailto:alice@example.com", "Recipient": "mailto:bob@example.com"},
        ),
        ("apple-freebusy-post.ics", {}),  # ORGANIZER with CN, X-CALENDARSERVER-MASK-UID
    ],
)
def test_recorded_client_outbox_posts_get_answers_they_accept(stack, emulator, fixture, headers):
    start, end = two_weeks()
    answer = post(stack, outbox_url(stack), _client_body(fixture, start, end), headers=headers)
    assert answer.status_code == 200
    assert answer.headers["Content-Type"].startswith(("application/xml", "text/xml"))
    [(recipient, response)] = schedule_responses(answer.content).items()
    assert recipient == "mailto:bob@example.com"
    assert reply_spans(response) == truth(emulator, "bob@example.com", start, end)


def test_evolution_outbox_post_with_a_stranger_and_herself(stack, emulator):
    """Evolution spells MAILTO: in capitals and asks about the organizer herself too."""
    start, end = two_weeks()
    url = outbox_url(stack)
    before = stack.ews_calls()
    answer = post(stack, url, _client_body("evolution-freebusy-post.ics", start, end))
    used = delta(before, stack.ews_calls())
    assert answer.status_code == 200
    assert used.get("GetUserAvailability") == 1 and "GetServerTimeZones" not in used, used  # herself included
    responses = schedule_responses(answer.content)
    assert list(responses) == [
        "mailto:bob@example.com",
        "mailto:nobody@example.com",
        "mailto:alice@example.com",
    ]
    assert reply_spans(responses["mailto:bob@example.com"]) == truth(emulator, "bob@example.com", start, end)
    assert responses["mailto:nobody@example.com"].findtext(f"{CALDAV}request-status").startswith("3.7")
    assert reply_spans(responses["mailto:alice@example.com"]) == truth(
        emulator, "alice@example.com", start, end
    )


def test_own_free_busy_follows_the_conflict_calendar_choice(stack, emulator):
    """A busy event only in alice's "Projects" counts exactly when Projects is checked for conflicts."""
    start, end = two_weeks()
    url = outbox_url(stack)
    primary = truth(emulator, "alice@example.com", start, end)
    projects = folder_truth(emulator, "alice@example.com", "Projects", start, end)
    assert projects and not projects <= primary  # "Sprint planning" is busy time only Projects knows

    def alice_spans() -> set[Span]:
        answer = post(stack, url, fb_request(start, end, ["alice@example.com"]))
        return reply_spans(schedule_responses(answer.content)["mailto:alice@example.com"])

    assert alice_spans() == primary
    check_projects_for_conflicts(stack, True)
    assert alice_spans() == merged(list(primary | projects))
    before = stack.ews_calls()
    alice_spans()
    assert delta(before, stack.ews_calls()) == {
        "GetUserAvailability": 1,
        "FindItem": 1,
    }  # primary + Projects' view
    check_projects_for_conflicts(stack, False)
    assert alice_spans() == primary


def test_two_checked_sub_calendars_of_one_account_are_one_finditem(stack, emulator):
    """Projects and a second sub-calendar both checked: alice's own free/busy is one GetUserAvailability
    (the primary) and one FindItem CalendarView naming both folders, and shows both calendars' busy time."""
    start, end = two_weeks()
    side = dav_client(stack).principal().make_calendar(name="Side")
    when = start + dt.timedelta(days=3, hours=9)
    side.save_event(
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\nBEGIN:VEVENT\r\nUID:side-busy\r\n"
        f"DTSTAMP:20260101T000000Z\r\nDTSTART:{when:%Y%m%dT%H%M%SZ}\r\n"
        f"DTEND:{when + dt.timedelta(hours=1):%Y%m%dT%H%M%SZ}\r\nSUMMARY:Side work\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
    )
    check_projects_for_conflicts(stack, True)
    accounts = stack.stack.services.accounts
    user_id, _ = alice_ids(stack)
    chosen = stack.run(accounts.settings(user_id)).conflict_calendar_ids
    side_id = side.url.path.rstrip("/").rsplit("/", 1)[-1]
    stack.run(accounts.save_settings(user_id, UserSettings(conflict_calendar_ids=(*chosen, side_id))))
    primary = truth(emulator, "alice@example.com", start, end)
    projects = folder_truth(emulator, "alice@example.com", "Projects", start, end)
    side_busy = folder_truth(emulator, "alice@example.com", "Side", start, end)
    assert side_busy == {(when, when + dt.timedelta(hours=1), "BUSY")}

    before = stack.ews_calls()
    answer = post(stack, outbox_url(stack), fb_request(start, end, ["alice@example.com"]))
    assert delta(before, stack.ews_calls()) == {"GetUserAvailability": 1, "FindItem": 1}
    spans = reply_spans(schedule_responses(answer.content)["mailto:alice@example.com"])
    assert spans == merged(list(primary | projects | side_busy))


def test_vfb_url_and_json_api_match_exchange(stack, emulator):
    start, end = two_weeks()
    auth = ("alice", stack.password)
    query = {"start": f"{start:%Y%m%dT%H%M%SZ}", "end": f"{end:%Y%m%dT%H%M%SZ}"}
    vfb = stack.base_url + "/freebusy/alice@example.com.vfb"
    assert requests.get(vfb, params=query).status_code == 401
    answer = requests.get(vfb, params=query, auth=auth)
    assert answer.status_code == 200 and answer.headers["Content-Type"].startswith("text/calendar")
    assert busy_spans(answer.text) == truth(emulator, "alice@example.com", start, end)
    bob = requests.get(stack.base_url + "/freebusy/bob@example.com.ifb", params=query, auth=auth)
    assert busy_spans(bob.text) == truth(emulator, "bob@example.com", start, end)
    assert requests.get(stack.base_url + "/freebusy/nobody@example.com.vfb", auth=auth).status_code == 404
    api = requests.get(
        stack.base_url + "/api/v1/freebusy",
        auth=auth,
        params={**query, "attendee": ["bob@example.com", "nobody@example.com"]},
    )
    assert api.status_code == 200
    bob, nobody = api.json()["attendees"]
    assert (bob["attendee"], bob["status"], nobody["status"]) == ("bob@example.com", "2.0", "3.7")
    assert json_spans(bob) == truth(emulator, "bob@example.com", start, end)


def test_missing_inverted_and_too_long_ranges_are_refused(stack):
    auth = ("alice", stack.password)
    start = today_utc()
    inverted = {"start": f"{start:%Y%m%dT%H%M%SZ}", "end": f"{start - dt.timedelta(days=1):%Y%m%dT%H%M%SZ}"}
    too_long = {"start": f"{start:%Y%m%dT%H%M%SZ}", "end": f"{start + dt.timedelta(days=400):%Y%m%dT%H%M%SZ}"}
    vfb = stack.base_url + "/freebusy/alice@example.com.vfb"
    api = stack.base_url + "/api/v1/freebusy"
    for url, extra in ((vfb, {}), (api, {"attendee": "bob@example.com"})):
        assert requests.get(url, params={**inverted, **extra}, auth=auth).status_code == 400
        assert requests.get(url, params={"start": "yesterday-ish", **extra}, auth=auth).status_code == 400
        refused = requests.get(url, params={**too_long, **extra}, auth=auth)
        assert refused.status_code == 403 and "366 days" in refused.text
    calendar_url = str(dav_client(stack).principal().calendars()[0].url)

    def report(time_range: str) -> requests.Response:
        return requests.request(
            "REPORT",
            calendar_url,
            auth=auth,
            headers={"Depth": "1"},
            data=f'<C:free-busy-query xmlns:C="urn:ietf:params:xml:ns:caldav">{time_range}'
            "</C:free-busy-query>",
        )

    assert report("").status_code == 400
    assert report(f'<C:time-range start="{inverted["start"]}" end="{inverted["end"]}"/>').status_code == 400
    refused = report(f'<C:time-range start="{too_long["start"]}" end="{too_long["end"]}"/>')
    assert refused.status_code == 403 and "366 days" in refused.text
    outbox = outbox_url(stack)
    no_end = fb_request(start, start + dt.timedelta(days=1), ["bob@example.com"])
    no_end = re.sub(r"DTEND:[^\r]*\r\n", "", no_end)
    assert post(stack, outbox, no_end).status_code == 400
    assert (
        post(stack, outbox, fb_request(start, start - dt.timedelta(days=1), ["bob@example.com"])).status_code
        == 400
    )
    refused = post(stack, outbox, fb_request(start, start + dt.timedelta(days=400), ["bob@example.com"]))
    assert refused.status_code == 403 and "366 days" in refused.text


def test_scheduling_is_advertised(stack):
    """RFC 6638 §2: the DAV header names calendar-schedule / calendar-auto-schedule; the principal an outbox."""
    auth = ("alice", stack.password)
    principal = dav_client(stack).principal()
    options = requests.options(str(principal.calendars()[0].url), auth=auth)
    classes = {c.strip() for c in options.headers["DAV"].split(",")}
    assert {"calendar-access", "calendar-schedule", "calendar-auto-schedule"} <= classes
    found = etree.fromstring(
        requests.request(
            "PROPFIND",
            str(principal.url),
            auth=auth,
            headers={"Depth": "0"},
            data='<propfind xmlns="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav"><prop><C:schedule-outbox-URL/>'
            "<C:schedule-inbox-URL/><C:calendar-user-address-set/></prop></propfind>",
        ).content
    )
    assert found.findtext(f".//{CALDAV}schedule-inbox-URL/{DAV}href").endswith("/inbox/")
    addresses = [h.text.lower() for h in found.iterfind(f".//{CALDAV}calendar-user-address-set/{DAV}href")]
    assert "mailto:alice@example.com" in addresses
    outbox = requests.options(outbox_url(stack), auth=auth)
    assert "POST" in {m.strip() for m in outbox.headers["Allow"].split(",")}


def test_a_cancelled_meeting_frees_the_attendees_time(stack, emulator):
    """Exchange keeps a cancelled meeting in bob's calendar; neither answer may count it busy."""
    start, end = two_weeks()
    alice = exchange_account(emulator)
    review = next(
        i
        for i in alice.calendar.view(
            start=EWSDateTime.from_datetime(start), end=EWSDateTime.from_datetime(end)
        )
        if i.subject == "Design review"
    )
    review.delete(send_meeting_cancellations="SendToAllAndSaveCopy")
    kept = [
        i
        for i in exchange_account(emulator, "bob@example.com").calendar.all()
        if i.subject.endswith("Design review")
    ]
    assert kept and all(i.is_cancelled for i in kept)
    expected = truth(emulator, "bob@example.com", start, end)
    bob_calendar = str(dav_client(stack, "bob").principal().calendars()[0].url)
    report = free_busy_query(stack, bob_calendar, start, end, user="bob")
    assert busy_spans(report.text) == expected
    answer = post(stack, outbox_url(stack), fb_request(start, end, ["bob@example.com"]))
    assert reply_spans(schedule_responses(answer.content)["mailto:bob@example.com"]) == expected


def test_a_window_starting_inside_an_event_is_clipped_to_it(stack, emulator):
    """An odd start (seconds and microseconds, mid-event) still matches Exchange, clipped at the edges."""
    focus = next(
        e
        for e in emulator.state.store.busy_events("bob@example.com", *two_weeks())
        if e.subject == "Bob: focus time"
    )
    start = focus.start + dt.timedelta(minutes=17, seconds=3, microseconds=250_000)
    end = start + dt.timedelta(days=3)
    api = requests.get(
        stack.base_url + "/api/v1/freebusy",
        auth=("alice", stack.password),
        params={"attendee": "bob@example.com", "start": start.isoformat(), "end": end.isoformat()},
    )
    assert api.status_code == 200, api.text
    [bob] = api.json()["attendees"]
    spans = json_spans(bob)
    whole = (
        start.replace(microsecond=0),
        end.replace(microsecond=0),
    )  # iCalendar and the JSON API count in seconds
    assert spans == truth(emulator, "bob@example.com", *whole)
    assert min(s for s, _, _ in spans) == whole[0]


def test_exchange_failing_is_a_per_recipient_5_x_never_free(stack, emulator):
    """When GetUserAvailability fails, every recipient gets 5.1 without calendar data; the .vfb URL a 503."""
    start, end = two_weeks()
    url = outbox_url(stack)
    emulator.set_faults(rules=[{"kind": "http_500", "operation": "GetUserAvailability"}])
    answer = post(
        stack, url, fb_request(start, end, ["bob@example.com", "carol@example.com", "alice@example.com"])
    )
    assert answer.status_code == 200
    responses = schedule_responses(answer.content)
    assert len(responses) == 3
    for response in responses.values():
        assert response.findtext(f"{CALDAV}request-status").startswith("5.")
        assert response.find(f"{CALDAV}calendar-data") is None
    vfb = requests.get(stack.base_url + "/freebusy/bob@example.com.vfb", auth=("alice", stack.password))
    assert vfb.status_code == 503 and vfb.headers.get("Retry-After")


def test_default_and_one_sided_windows(stack, emulator):
    """The .vfb URL without a range covers 7 days back to 60 ahead; one bound alone gives a window of that length."""
    auth = ("alice", stack.password)
    today = today_utc()
    plain = requests.get(stack.base_url + "/freebusy/bob@example.com.vfb", auth=auth)
    assert plain.status_code == 200
    default = (today - dt.timedelta(days=7), today + dt.timedelta(days=60))
    assert busy_spans(plain.text) == truth(emulator, "bob@example.com", *default)
    later = today + dt.timedelta(days=100)
    for params, expected in (
        ({"start": f"{later:%Y%m%d}"}, (later, later + dt.timedelta(days=67))),
        ({"end": f"{later:%Y%m%d}"}, (later - dt.timedelta(days=67), later)),
    ):
        api = requests.get(
            stack.base_url + "/api/v1/freebusy", auth=auth, params={"attendee": "bob@example.com", **params}
        )
        assert api.status_code == 200, api.text
        body = api.json()
        assert (body["start"], body["end"]) == tuple(f"{m:%Y-%m-%dT%H:%M:%SZ}" for m in expected)
        assert json_spans(body["attendees"][0]) == truth(emulator, "bob@example.com", *expected)


def test_more_than_a_hundred_recipients_are_split_in_hundreds(stack, emulator):
    """GetUserAvailability takes at most 100 mailboxes: 150 recipients are two requests, every one answered."""
    start, end = two_weeks()
    people = ["bob@example.com"] + [f"guest{n}@example.com" for n in range(149)]
    url = outbox_url(stack)
    before = stack.ews_calls()
    answer = post(stack, url, fb_request(start, end, people))
    used = delta(before, stack.ews_calls())
    assert answer.status_code == 200
    assert used == {"GetUserAvailability": 2}, used
    responses = schedule_responses(answer.content)
    assert list(responses) == [f"mailto:{p}" for p in people]
    assert reply_spans(responses["mailto:bob@example.com"]) == truth(emulator, "bob@example.com", start, end)
    assert all(r.findtext(f"{CALDAV}request-status").startswith("3.7") for r in list(responses.values())[1:])


def test_a_failing_sub_calendar_fails_only_her_own_answer(stack, emulator):
    """Projects unreadable (FindItem failing): alice's own answer is 5.x, bob's still arrives."""
    start, end = two_weeks()
    url = outbox_url(stack)
    check_projects_for_conflicts(stack, True)
    emulator.set_faults(rules=[{"kind": "http_500", "operation": "FindItem"}])
    answer = post(stack, url, fb_request(start, end, ["bob@example.com", "alice@example.com"]))
    assert answer.status_code == 200, answer.text
    responses = schedule_responses(answer.content)
    assert reply_spans(responses["mailto:bob@example.com"]) == truth(emulator, "bob@example.com", start, end)
    own = responses["mailto:alice@example.com"]
    assert own.findtext(f"{CALDAV}request-status").startswith("5.")
    assert own.find(f"{CALDAV}calendar-data") is None  # never a partial answer that looks free


def test_json_api_never_lets_an_unknown_attendee_read_as_free(stack, emulator):
    """Unknown recipients and failed lookups carry no busy list at all (``busy: null``, ``no_data: true``),
    so a client that only reads ``busy`` cannot mistake them for free; the HTTP status stays 200."""
    start, end = two_weeks()
    auth = ("alice", stack.password)
    params = {"start": f"{start:%Y%m%dT%H%M%SZ}", "end": f"{end:%Y%m%dT%H%M%SZ}"}
    api = stack.base_url + "/api/v1/freebusy"
    answer = requests.get(
        api, auth=auth, params={**params, "attendee": ["bob@example.com", "nobody@example.com"]}
    )
    assert answer.status_code == 200
    bob, nobody = answer.json()["attendees"]
    assert (bob["no_data"], bob["status"]) == (False, "2.0")
    assert json_spans(bob) == truth(emulator, "bob@example.com", start, end) != set()
    assert (nobody["attendee"], nobody["status"], nobody["no_data"]) == ("nobody@example.com", "3.7", True)
    assert nobody["busy"] is None and nobody["status_text"] == "Invalid calendar user"

    emulator.set_faults(rules=[{"kind": "http_500", "operation": "GetUserAvailability"}])
    failed = requests.get(api, auth=auth, params={**params, "attendee": "bob@example.com"})
    assert failed.status_code == 200
    [bob] = failed.json()["attendees"]
    assert bob["status"].startswith("5.") and bob["no_data"] is True and bob["busy"] is None
