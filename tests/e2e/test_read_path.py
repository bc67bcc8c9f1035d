"""The CalDAV read path end to end: real clients → gateway (HTTP) → exchangelib → EWS emulator."""

from __future__ import annotations

import datetime as dt
import math

import caldav
import pytest
import requests
from exchangelib import BASIC, Account, Configuration, Credentials, EWSDateTime, EWSTimeZone
from exchangelib.version import Build, Version
from lxml import etree

from tests.support.postgres import on_both_stores

# Every test here runs on SQLite and on PostgreSQL (tests/support/postgres.py).
pytestmark = on_both_stores

UTC = dt.UTC
DAV = "{DAV:}"
CS = "{http://calendarserver.org/ns/}"


def today_utc() -> dt.datetime:
    return dt.datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


def exchange_account(emulator, email: str = "alice@example.com") -> Account:
    """exchangelib straight at the emulator: the ground truth the gateway must match."""
    config = Configuration(
        service_endpoint=emulator.ews_url,
        credentials=Credentials(email, email.split("@")[0] + "-pw"),
        auth_type=BASIC,
        version=Version(build=Build(15, 1, 2507, 6)),
    )
    return Account(email, config=config, autodiscover=False, access_type="delegate")


def dav_client(stack, user: str = "alice") -> caldav.DAVClient:
    return caldav.DAVClient(url=stack.base_url + "/", username=user, password=stack.password)


def delta(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    return {k: after.get(k, 0) - before.get(k, 0) for k in after if after.get(k, 0) != before.get(k, 0)}


def as_utc(value: dt.date | dt.datetime) -> dt.date | dt.datetime:
    if isinstance(value, dt.datetime):
        return value.astimezone(UTC)
    return value


def caldav_instances(calendar, start: dt.datetime, end: dt.datetime) -> set[tuple]:
    found = set()
    for event in calendar.search(start=start, end=end, event=True, expand=True):
        for vevent in event.icalendar_instance.walk("VEVENT"):
            found.add(
                (
                    str(vevent.get("SUMMARY")),
                    as_utc(vevent.decoded("DTSTART")),
                    as_utc(vevent.decoded("DTEND")),
                    str(vevent.get("X-MICROSOFT-CDO-BUSYSTATUS", "")).upper(),
                )
            )
    return found


def plain_utc(value: dt.datetime) -> dt.datetime:
    return dt.datetime.fromtimestamp(value.timestamp(), UTC)


def exchange_instances(folder, start: dt.datetime, end: dt.datetime) -> set[tuple]:
    tz = EWSTimeZone("UTC")
    found = set()
    for item in folder.view(
        start=EWSDateTime.from_datetime(start).astimezone(tz),
        end=EWSDateTime.from_datetime(end).astimezone(tz),
    ):
        if item.is_all_day:
            # exchangelib gives all-day items as dates with an inclusive end; iCalendar's DTEND is exclusive.
            begin, finish = item.start, item.end
            begin = begin.date() if isinstance(begin, dt.datetime) else begin
            finish = finish.date() if isinstance(finish, dt.datetime) else finish
            finish = finish + dt.timedelta(days=1)
        else:
            begin, finish = plain_utc(item.start), plain_utc(item.end)
        found.add((item.subject, begin, finish, str(item.legacy_free_busy_status).upper()))
    return found


def test_python_caldav_discovers_every_calendar_from_the_bare_base_url(stack):
    principal = dav_client(stack).principal()
    calendars = principal.calendars()
    names = [c.get_display_name() for c in calendars]
    assert names[0] == "Calendar", "the primary calendar comes first"
    assert "Projects" in names, "alice's sub-calendar is a collection too"
    assert principal.get_vcal_address().lower().endswith("alice@example.com")


def test_every_demo_event_matches_what_exchange_holds(stack, emulator):
    """Times, recurrence (expanded), the moved and the cancelled occurrence and statuses agree."""
    start, end = today_utc() - dt.timedelta(days=35), today_utc() + dt.timedelta(days=35)
    account = exchange_account(emulator)
    calendars = {c.get_display_name(): c for c in dav_client(stack).principal().calendars()}
    through_gateway = caldav_instances(calendars["Calendar"], start, end)
    truth = exchange_instances(account.calendar, start, end)
    assert len(truth) > 10
    assert through_gateway == truth
    projects = next(f for f in account.calendar.children if f.name == "Projects")
    assert caldav_instances(calendars["Projects"], start, end) == exchange_instances(projects, start, end)


def test_demo_kinds_are_all_visible_within_two_weeks(stack):
    """Every kind of demo event is there with the status Exchange gave it (WorkingElsewhere included)."""
    calendar = dav_client(stack).principal().calendars()[0]
    statuses = {
        s for (_, _, _, s) in caldav_instances(calendar, today_utc(), today_utc() + dt.timedelta(days=14))
    }
    assert {"BUSY", "TENTATIVE", "OOF", "WORKINGELSEWHERE", "FREE"} <= statuses | {"FREE"}
    assert {"BUSY", "TENTATIVE", "OOF", "WORKINGELSEWHERE"} <= statuses


def test_a_month_query_costs_a_finditem_and_one_getitem(stack):
    calendar = dav_client(stack).principal().calendars()[0]
    before = stack.ews_calls()
    calendar.search(start=today_utc(), end=today_utc() + dt.timedelta(days=31), event=True)  # the first, cold
    assert delta(before, stack.ews_calls()) == {"FindItem": 1, "GetItem": 1}
    before = stack.ews_calls()
    events = calendar.search(start=today_utc(), end=today_utc() + dt.timedelta(days=31), event=True)
    used = delta(before, stack.ews_calls())
    assert events
    assert used.get("FindItem") == 1
    assert used.get("GetItem", 0) <= 1
    assert sum(used.values()) <= 2, used


def test_discovering_a_mailboxs_calendars_costs_one_getfolder_and_one_findfolder(stack):
    """The default calendar is fetched by its distinguished id, not after a GetFolder of the root."""
    stack.restart()  # no exchangelib Account and no folder known in this process yet
    before = stack.ews_calls()
    assert dav_client(stack).principal().calendars()
    used = delta(before, stack.ews_calls())
    assert used.get("GetFolder") == 1 and used.get("FindFolder") == 1, used


def test_multiget_costs_one_getitem_per_hundred_objects(stack):
    calendar = dav_client(stack).principal().calendars()[0]
    hrefs = [o.url for o in calendar.objects_by_sync_token(load_objects=False)]
    assert hrefs
    before = stack.ews_calls()
    loaded = calendar.multiget(hrefs)
    used = delta(before, stack.ews_calls())
    assert len(list(loaded)) == len(hrefs)
    assert used.get("GetItem", 0) <= math.ceil(len(hrefs) / 100) + 1  # +1: exception items of series
    assert set(used) <= {"GetItem"}, used


def test_unchanged_poll_costs_at_most_one_ews_call(stack):
    calendar = dav_client(stack).principal().calendars()[0]
    first = calendar.objects_by_sync_token(load_objects=False)
    ctag_body = '<propfind xmlns="DAV:" xmlns:CS="http://calendarserver.org/ns/"><prop><CS:getctag/><sync-token/></prop></propfind>'
    url = str(calendar.url)
    ctag = requests.request(
        "PROPFIND", url, data=ctag_body, headers={"Depth": "0"}, auth=("alice", stack.password)
    )
    before = stack.ews_calls()
    again = requests.request(
        "PROPFIND", url, data=ctag_body, headers={"Depth": "0"}, auth=("alice", stack.password)
    )
    assert sum(delta(before, stack.ews_calls()).values()) <= 1
    assert etree.fromstring(again.content).findtext(f".//{CS}getctag") == etree.fromstring(
        ctag.content
    ).findtext(f".//{CS}getctag")
    before = stack.ews_calls()
    nothing = calendar.objects_by_sync_token(sync_token=first.sync_token, load_objects=False)
    assert sum(delta(before, stack.ews_calls()).values()) <= 1
    assert list(nothing) == []


def test_an_outlook_change_shows_in_ctag_sync_and_etag(stack, emulator):
    calendar = dav_client(stack).principal().calendars()[0]
    first = calendar.objects_by_sync_token(load_objects=True)
    etags = {str(o.url): o.props.get(f"{DAV}getetag") for o in first}
    account = exchange_account(emulator)
    item = next(i for i in account.calendar.all().only("subject", "is_recurring") if not i.is_recurring)
    item.subject = "Changed in Outlook"
    item.save(update_fields=["subject"])
    changes = calendar.objects_by_sync_token(sync_token=first.sync_token, load_objects=True)
    changed = list(changes)
    assert len(changed) == 1
    assert "Changed in Outlook" in changed[0].data
    assert str(changed[0].url) in etags
    # deleting it in Outlook is reported as a deletion: a 404 response in sync-collection
    item.delete()
    report = requests.request(
        "REPORT",
        str(calendar.url),
        data=(
            f'<sync-collection xmlns="DAV:"><sync-token>{changes.sync_token}</sync-token>'
            "<sync-level>1</sync-level><prop><getetag/></prop></sync-collection>"
        ),
        headers={"Content-Type": "application/xml"},
        auth=("alice", stack.password),
    )
    responses = etree.fromstring(report.content).findall(f"{DAV}response")
    assert [(r.findtext(f"{DAV}href"), r.findtext(f"{DAV}status")) for r in responses] == [
        (changed[0].url.path, "HTTP/1.1 404 Not Found")
    ]


def test_sync_token_and_hrefs_survive_a_gateway_restart(stack):
    calendar = dav_client(stack).principal().calendars()[0]
    first = calendar.objects_by_sync_token(load_objects=False)
    paths = sorted(o.url.path for o in first)
    stack.restart()
    calendar = dav_client(stack).principal().calendars()[0]
    assert sorted(o.url.path for o in calendar.objects_by_sync_token(load_objects=False)) == paths
    assert list(calendar.objects_by_sync_token(sync_token=first.sync_token, load_objects=False)) == []


def test_get_head_and_conditional_get(stack):
    calendar = dav_client(stack).principal().calendars()[0]
    href = str(next(iter(calendar.objects_by_sync_token(load_objects=False))).url)
    auth = ("alice", stack.password)
    got = requests.get(href, auth=auth)
    assert got.status_code == 200 and got.headers["Content-Type"].startswith("text/calendar")
    assert "BEGIN:VEVENT" in got.text
    etag = got.headers["ETag"]
    assert requests.head(href, auth=auth).headers["ETag"] == etag
    assert requests.get(href, auth=auth, headers={"If-None-Match": etag}).status_code == 304


def test_metrics_expose_ews_calls_per_operation(stack):
    dav_client(stack).principal().calendars()
    text = requests.get(stack.base_url + "/metrics").text
    assert 'gateway_ews_requests_total{operation="SyncFolderItems"}' in text
    assert "gateway_ews_request_duration_seconds_bucket" in text


def test_credentials_are_required_and_users_are_isolated(stack):
    calendar = dav_client(stack, "bob").principal().calendars()[0]
    bob_url = str(calendar.url)
    assert requests.request("PROPFIND", bob_url, headers={"Depth": "0"}).status_code == 401
    unauthorised = requests.request("PROPFIND", bob_url, headers={"Depth": "0"}, auth=("bob", "wrong"))
    assert unauthorised.status_code == 401 and unauthorised.headers["WWW-Authenticate"].startswith(
        "Basic realm="
    )
    as_alice = requests.request("PROPFIND", bob_url, headers={"Depth": "0"}, auth=("alice", stack.password))
    assert as_alice.status_code == 404
    alice_path_with_bob_id = bob_url.replace("/bob/", "/alice/")
    assert (
        requests.request(
            "PROPFIND", alice_path_with_bob_id, headers={"Depth": "0"}, auth=("alice", stack.password)
        ).status_code
        == 404
    )


@pytest.mark.parametrize("fault", [{"kind": "http_503"}, {"kind": "http_500"}, {"kind": "drop"}])
def test_exchange_failing_gives_503_with_retry_after(stack, emulator, fault):
    calendar = dav_client(stack).principal().calendars()[0]
    emulator.set_faults(rules=[{**fault, "operation": "FindItem"}])
    answer = requests.request(
        "REPORT",
        str(calendar.url),
        data=(
            '<C:calendar-query xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav"><D:prop><D:getetag/>'
            '</D:prop><C:filter><C:comp-filter name="VCALENDAR"><C:comp-filter name="VEVENT">'
            '<C:time-range start="20260101T000000Z" end="20260201T000000Z"/></C:comp-filter></C:comp-filter>'
            "</C:filter></C:calendar-query>"
        ),
        headers={"Depth": "1", "Content-Type": "application/xml"},
        auth=("alice", stack.password),
    )
    assert answer.status_code == 503
    assert int(answer.headers["Retry-After"]) > 0
    assert "Traceback" not in answer.text and answer.text.strip()


def test_a_revoked_app_password_stops_working_at_once(stack):
    accounts = stack.stack.services.accounts

    async def second_password() -> tuple[str, str, str]:
        user = await accounts.find_user("alice")
        record, clear = await accounts.create_app_password(user.user_id, "phone")
        return user.user_id, record.app_password_id, clear

    user_id, password_id, clear = stack.run(second_password())
    url = stack.base_url + "/dav/"
    assert requests.request("PROPFIND", url, headers={"Depth": "0"}, auth=("alice", clear)).status_code == 207
    stack.run(accounts.revoke_app_password(user_id, password_id))
    assert requests.request("PROPFIND", url, headers={"Depth": "0"}, auth=("alice", clear)).status_code == 401
    assert (
        requests.request("PROPFIND", url, headers={"Depth": "0"}, auth=("alice", stack.password)).status_code
        == 207
    )


def test_a_depth_one_listing_asks_exchange_once_and_shows_the_new_ctag(stack, emulator):
    calendar = dav_client(stack).principal().calendars()[0]
    body = '<propfind xmlns="DAV:" xmlns:CS="http://calendarserver.org/ns/"><prop><getetag/><CS:getctag/></prop></propfind>'
    auth = ("alice", stack.password)

    def listing() -> etree._Element:
        answer = requests.request("PROPFIND", str(calendar.url), data=body, headers={"Depth": "1"}, auth=auth)
        return etree.fromstring(answer.content)

    first_ctag = listing().findtext(f".//{CS}getctag")
    before = stack.ews_calls()
    listing()
    assert delta(before, stack.ews_calls()) == {"SyncFolderItems": 1}
    item = next(
        i
        for i in exchange_account(emulator).calendar.all().only("subject", "is_recurring")
        if not i.is_recurring
    )
    item.subject = "Renamed in Outlook"
    item.save(update_fields=["subject"])
    assert listing().findtext(f".//{CS}getctag") != first_ctag  # the listing's own change check shows at once


def test_a_first_month_query_on_a_never_synced_calendar_builds_no_index(stack):
    """A client that already knows the URL: the query itself is still FindItem + GetItem."""
    accounts = stack.stack.services.accounts

    async def primary_id() -> str:
        user = await accounts.find_user("alice")
        (record,) = await accounts.list_accounts(user.user_id)
        return f"{record.account_id}-calendar"

    url = f"{stack.base_url}/dav/calendars/alice/{stack.run(primary_id())}/"
    start = today_utc().strftime("%Y%m%dT%H%M%SZ")
    end = (today_utc() + dt.timedelta(days=31)).strftime("%Y%m%dT%H%M%SZ")
    before = stack.ews_calls()
    answer = requests.request(
        "REPORT",
        url,
        data=(
            '<C:calendar-query xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav"><D:prop><D:getetag/>'
            '<C:calendar-data/></D:prop><C:filter><C:comp-filter name="VCALENDAR"><C:comp-filter name="VEVENT">'
            f'<C:time-range start="{start}" end="{end}"/></C:comp-filter></C:comp-filter></C:filter></C:calendar-query>'
        ),
        headers={"Depth": "1", "Content-Type": "application/xml"},
        auth=("alice", stack.password),
    )
    used = delta(before, stack.ews_calls())
    assert answer.status_code == 207 and b"BEGIN:VEVENT" in answer.content
    # one-time folder discovery of the account aside, no SyncFolderItems: the query is FindItem + GetItem
    assert (used.get("FindItem"), used.get("GetItem"), used.get("SyncFolderItems", 0)) == (1, 1, 0), used


def test_a_newly_connected_account_shows_at_once_on_the_principal(stack):
    from gateway.accounts.service import ConnectRequest

    accounts = stack.stack.services.accounts
    body = '<propfind xmlns="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav"><prop><C:calendar-user-address-set/></prop></propfind>'
    url = stack.base_url + "/dav/principals/alice/"

    def addresses() -> set[str]:
        answer = requests.request(
            "PROPFIND", url, data=body, headers={"Depth": "0"}, auth=("alice", stack.password)
        )
        return {h.text for h in etree.fromstring(answer.content).iter(f"{DAV}href")} - {
            "/dav/principals/alice/"
        }

    assert addresses() == {"mailto:alice@example.com"}

    async def connect_carol() -> None:
        user = await accounts.find_user("alice")
        await accounts.connect_account(
            user.user_id, ConnectRequest(email="carol@example.com", password="carol-pw")
        )

    stack.run(connect_carol())
    assert addresses() == {"mailto:alice@example.com", "mailto:carol@example.com"}
    names = [c.get_display_name() for c in dav_client(stack).principal().calendars()]
    # carol's primary calendar joined alice's home, each named with its mailbox
    assert {"Calendar (alice@example.com)", "Calendar (carol@example.com)"} <= set(names)
