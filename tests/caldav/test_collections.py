"""MKCALENDAR (RFC 4791 §5.3.1), extended MKCOL (RFC 5689), PROPPATCH and DELETE of calendars."""

from __future__ import annotations

from gateway.caldav.properties import writable
from gateway.caldav.resources import Kind
from tests.support.dav import fixture

HOME = "/dav/calendars/alice/"
ICAL = "{http://apple.com/ns/ical/}"

MKCALENDAR = """<?xml version="1.0" encoding="utf-8" ?>
<C:mkcalendar xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav" xmlns:A="http://apple.com/ns/ical/">
  <D:set><D:prop>
    <D:displayname>Team Trips</D:displayname>
    <C:calendar-description>Where we go</C:calendar-description>
    <A:calendar-color>#00FF00FF</A:calendar-color>
    <C:supported-calendar-component-set><C:comp name="VEVENT"/></C:supported-calendar-component-set>
  </D:prop></D:set>
</C:mkcalendar>"""

PROPPATCH = """<?xml version="1.0" encoding="utf-8" ?>
<D:propertyupdate xmlns:D="DAV:" xmlns:A="http://apple.com/ns/ical/">
  <D:set><D:prop><D:displayname>Renamed</D:displayname><A:calendar-order>3</A:calendar-order></D:prop></D:set>
</D:propertyupdate>"""

PROPS = """<propfind xmlns="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav" xmlns:A="http://apple.com/ns/ical/">
<prop><displayname/><A:calendar-color/><A:calendar-order/><C:calendar-description/></prop></propfind>"""


async def test_mkcalendar_with_properties(dav, backend):
    r = await dav("MKCALENDAR", HOME + "trips/", MKCALENDAR)
    assert r.status == 201
    r = await dav("PROPFIND", HOME + "trips/", PROPS, depth="0")
    url = HOME + "trips/"
    assert r.prop(url, "{DAV:}displayname").text == "Team Trips"
    assert r.prop(url, f"{ICAL}calendar-color").text == "#00FF00FF"
    assert r.prop(url, "{urn:ietf:params:xml:ns:caldav}calendar-description").text == "Where we go"
    assert (await dav("MKCALENDAR", HOME + "trips/", MKCALENDAR)).status == 405


TODO = (
    "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//EN\r\nBEGIN:VTODO\r\nUID:todo-1\r\n"
    "DTSTAMP:20260101T000000Z\r\nSUMMARY:Buy milk\r\nEND:VTODO\r\nEND:VCALENDAR\r\n"
)
EVENT = TODO.replace("VTODO", "VEVENT").replace("SUMMARY", "DTSTART:20260101T100000Z\r\nSUMMARY")
COMPONENTS = """<propfind xmlns="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav">
<prop><C:supported-calendar-component-set/></prop></propfind>"""


async def test_mkcalendar_of_vtodo_alone_makes_a_task_list_that_takes_tasks_only(dav, backend):
    body = MKCALENDAR.replace('name="VEVENT"', 'name="VTODO"')
    r = await dav("MKCALENDAR", HOME + "chores/", body)
    assert r.status == 201
    assert backend.homes["alice"]["chores"].info.components == ("VTODO",)
    r = await dav("PROPFIND", HOME + "chores/", COMPONENTS, depth="0")
    comps = r.prop(HOME + "chores/", "{urn:ietf:params:xml:ns:caldav}supported-calendar-component-set")
    assert [c.get("name") for c in comps] == ["VTODO"]
    ics = "text/calendar; charset=utf-8"
    assert (await dav("PUT", HOME + "chores/milk.ics", TODO, content_type=ics)).status == 201
    r = await dav("GET", HOME + "chores/milk.ics")
    assert r.status == 200 and "component=VTODO" in r.headers["Content-Type"]
    r = await dav("PUT", HOME + "chores/meeting.ics", EVENT, content_type=ics)
    assert r.status == 403 and "supported-calendar-component" in r.text and "task list" in r.text
    r = await dav("PUT", HOME + "calendar/milk.ics", TODO, content_type=ics)
    assert r.status == 403 and "supported-calendar-component" in r.text and "task list" in r.text


async def test_mkcalendar_of_events_and_tasks_makes_an_event_calendar(dav, backend):
    body = MKCALENDAR.replace('<C:comp name="VEVENT"/>', '<C:comp name="VEVENT"/><C:comp name="VTODO"/>')
    assert (await dav("MKCALENDAR", HOME + "both/", body)).status == 201
    assert backend.homes["alice"]["both"].info.components == ("VEVENT",)


async def test_mkcalendar_of_journals_is_refused(dav):
    body = MKCALENDAR.replace('name="VEVENT"', 'name="VJOURNAL"')
    r = await dav("MKCALENDAR", HOME + "notes/", body)
    assert r.status == 403
    assert "supported-calendar-component-set" in r.text and " 424 " in r.text


async def test_vdirsyncer_extended_mkcol_then_proppatch(dav, backend):
    r = await dav("MKCOL", HOME + "synced/", fixture("vdirsyncer-mkcol.xml"))
    assert r.status == 201
    assert "synced" in backend.homes["alice"]
    r = await dav("PROPPATCH", HOME + "synced/", PROPPATCH)
    assert r.status == 207 and r.status_of(HOME + "synced/", "{DAV:}displayname") == 200
    info = backend.homes["alice"]["synced"].info
    assert (info.display_name, info.order) == ("Renamed", 3)


async def test_plain_mkcol_is_refused(dav):
    r = await dav("MKCOL", HOME + "plain/")
    assert r.status == 403 and "valid-resourcetype" in r.text


async def test_proppatch_is_all_or_nothing(dav, backend):
    body = PROPPATCH.replace(
        "<D:displayname>Renamed</D:displayname>",
        "<D:displayname>Renamed</D:displayname><D:getetag>x</D:getetag>",
    )
    r = await dav("PROPPATCH", HOME + "calendar/", body)
    assert r.status == 207
    assert r.status_of(HOME + "calendar/", "{DAV:}getetag") == 403
    assert r.status_of(HOME + "calendar/", "{DAV:}displayname") == 424
    assert backend.homes["alice"]["calendar"].info.display_name == "Calendar"


async def test_delete_calendar_but_not_primary(dav, backend):
    assert (await dav("DELETE", HOME + "projects/")).status == 204
    assert "projects" not in backend.homes["alice"]
    r = await dav("DELETE", HOME + "calendar/")
    assert r.status == 403 and "cannot be deleted" in r.text


async def test_bad_calendar_name_is_refused(dav):
    assert (await dav("MKCALENDAR", HOME + "%20bad%20name/", MKCALENDAR)).status == 403


def test_the_writable_collection_properties_come_from_the_registry():
    assert writable(Kind.CALENDAR) == {
        "{DAV:}displayname",
        f"{ICAL}calendar-color",
        f"{ICAL}calendar-order",
        "{urn:ietf:params:xml:ns:caldav}calendar-description",
    }


async def test_the_backend_is_handed_only_writable_properties(dav, backend, monkeypatch):
    handed: list[dict[str, str]] = []
    create = backend.create_calendar

    async def recording(principal, calendar_id, display_name, properties, **options):
        handed.append(dict(properties))
        return await create(principal, calendar_id, display_name, properties, **options)

    monkeypatch.setattr(backend, "create_calendar", recording)
    timezone = "<C:calendar-timezone>BEGIN:VCALENDAR\r\nEND:VCALENDAR\r\n</C:calendar-timezone>"
    body = MKCALENDAR.replace("<D:displayname>", timezone + "<D:displayname>")
    assert (await dav("MKCALENDAR", HOME + "zoned/", body)).status == 201
    assert handed == [
        {
            "{urn:ietf:params:xml:ns:caldav}calendar-description": "Where we go",
            f"{ICAL}calendar-color": "#00FF00FF",
        }
    ]
