"""Discovery as clients do it: well-known, OPTIONS, current-user-principal, principal and home."""

from __future__ import annotations

from tests.support.dav import fixture

CAL = "/dav/calendars/alice/calendar/"

PRINCIPAL = "/dav/principals/alice/"
HOME = "/dav/calendars/alice/"
CUP = """<d:propfind xmlns:d="DAV:"><d:prop><d:current-user-principal/></d:prop></d:propfind>"""


async def test_well_known_redirects_get_and_propfind(dav):
    for method in ("GET", "PROPFIND"):
        r = await dav(method, "/.well-known/caldav", auth=False)
        assert r.status == 301 and r.headers["Location"] == "/dav/"


async def test_options_advertises_caldav_scheduling_and_sync(dav):
    r = await dav("OPTIONS", HOME)
    classes = [c.strip() for c in r.headers["DAV"].split(",")]
    for needed in (
        "1",
        "3",
        "access-control",
        "calendar-access",
        "calendar-schedule",
        "calendar-auto-schedule",
        "sync-collection",
        "extended-mkcol",
        "calendarserver-principal-search",
    ):
        assert needed in classes
    assert r.status == 200
    allow = r.headers["Allow"]
    assert "PROPFIND" in allow and "MKCALENDAR" not in allow


async def test_options_on_calendar_allows_writes_for_evolution(dav):
    allow = {m.strip() for m in (await dav("OPTIONS", CAL)).headers["Allow"].split(",")}
    assert {"PROPFIND", "PROPPATCH", "REPORT", "DELETE", "MKCALENDAR"} <= allow
    obj_allow = {m.strip() for m in (await dav("OPTIONS", CAL + "x.ics")).headers["Allow"].split(",")}
    assert {"GET", "PUT", "DELETE"} <= obj_allow


async def test_base_answers_current_user_principal(dav):
    r = await dav("PROPFIND", "/dav/", CUP, depth="0")
    assert r.status == 207
    assert r.hrefs("{DAV:}current-user-principal") == [PRINCIPAL]


async def test_unauthenticated_gets_basic_challenge(dav):
    r = await dav("PROPFIND", "/dav/", CUP, depth="0", auth=False)
    assert r.status == 401
    assert r.headers["WWW-Authenticate"].startswith('Basic realm="')


async def test_wrong_password_is_401_and_never_echoed(dav):
    r = await dav("PROPFIND", "/dav/", CUP, depth="0", auth=("alice", "s3cret-guess"))
    assert r.status == 401 and "s3cret-guess" not in r.text


async def test_apple_principal_propfind(dav):
    r = await dav(
        "PROPFIND", PRINCIPAL, fixture("apple-propfind-principal.xml"), depth="0", headers={"Brief": "t"}
    )
    assert r.status == 207
    assert r.hrefs("{urn:ietf:params:xml:ns:caldav}calendar-home-set") == [HOME]
    assert r.hrefs("{urn:ietf:params:xml:ns:caldav}schedule-outbox-URL") == [HOME + "outbox/"]
    assert r.hrefs("{urn:ietf:params:xml:ns:caldav}schedule-inbox-URL") == [HOME + "inbox/"]
    assert r.hrefs("{DAV:}principal-URL") == [PRINCIPAL]
    addresses = r.hrefs("{urn:ietf:params:xml:ns:caldav}calendar-user-address-set")
    assert addresses[:2] == ["mailto:alice@example.com", "mailto:alice@other.example"]
    emails = [e.text for e in r.prop(PRINCIPAL, "{http://calendarserver.org/ns/}email-address-set")]
    assert emails == ["alice@example.com", "alice@other.example"]
    assert r.prop(PRINCIPAL, "{DAV:}displayname").text == "Alice Adams"
    # Brief: t drops the 404 propstat of the unknown properties.
    assert " 404 " not in r.text
    assert r.headers["Preference-Applied"] == "return=minimal"


async def test_unknown_properties_are_404_propstat(dav):
    r = await dav("PROPFIND", PRINCIPAL, fixture("apple-propfind-principal.xml"), depth="0")
    assert r.status_of(PRINCIPAL, "{http://calendarserver.org/ns/}dropbox-home-URL") == 404
    assert r.status_of(PRINCIPAL, "{DAV:}displayname") == 200
    body = """<propfind xmlns="DAV:"><prop><calendar-user-type xmlns="urn:ietf:params:xml:ns:caldav"/>
        <resourcetype/></prop></propfind>"""
    r = await dav("PROPFIND", PRINCIPAL, body, depth="0")
    assert r.prop(PRINCIPAL, "{urn:ietf:params:xml:ns:caldav}calendar-user-type").text == "INDIVIDUAL"
    assert r.prop(PRINCIPAL, "{DAV:}resourcetype").find("{DAV:}principal") is not None


async def test_home_depth1_lists_calendars_for_davx5(dav, backend):
    backend.homes["alice"]["projects"].info = backend.homes["alice"]["projects"].info.__class__(
        **{**backend.homes["alice"]["projects"].info.__dict__, "color": "#FF0000FF", "writable": False}
    )
    r = await dav("PROPFIND", HOME, fixture("davx5-propfind-home.xml"), depth="1")
    assert r.status == 207
    responses = r.responses()
    assert set(responses) == {HOME, CAL, HOME + "projects/", HOME + "inbox/", HOME + "outbox/"}
    rtype = r.prop(CAL, "{DAV:}resourcetype")
    assert {c.tag for c in rtype} == {"{DAV:}collection", "{urn:ietf:params:xml:ns:caldav}calendar"}
    comps = r.prop(CAL, "{urn:ietf:params:xml:ns:caldav}supported-calendar-component-set")
    assert [c.get("name") for c in comps] == ["VEVENT"]
    assert r.prop(HOME + "projects/", "{http://apple.com/ns/ical/}calendar-color").text == "#FF0000FF"
    privs = lambda href: {p[0].tag for p in r.prop(href, "{DAV:}current-user-privilege-set")}  # noqa: E731
    assert "{DAV:}write-content" in privs(CAL)
    assert "{DAV:}write" not in privs(HOME + "projects/")
    assert "{urn:ietf:params:xml:ns:caldav}schedule-send" in privs(HOME + "outbox/")


async def test_thunderbird_calendar_propfind(dav):
    r = await dav("PROPFIND", CAL, fixture("thunderbird-propfind-calendar.xml"), depth="0")
    reports = {el[0][0].tag for el in r.prop(CAL, "{DAV:}supported-report-set")}
    assert reports == {
        "{urn:ietf:params:xml:ns:caldav}calendar-query",
        "{urn:ietf:params:xml:ns:caldav}calendar-multiget",
        "{urn:ietf:params:xml:ns:caldav}free-busy-query",
        "{DAV:}sync-collection",
    }
    assert r.hrefs("{DAV:}owner") == [PRINCIPAL]
    assert r.prop(CAL, "{http://calendarserver.org/ns/}getctag").text


async def test_davx5_sync_props(dav):
    r = await dav("PROPFIND", CAL, fixture("davx5-propfind-sync.xml"), depth="0")
    assert r.prop(CAL, "{urn:ietf:params:xml:ns:caldav}max-resource-size").text == "20000"
    assert r.prop(CAL, "{DAV:}sync-token").text.startswith("urn:")


async def test_depth_infinity_refused(dav):
    r = await dav("PROPFIND", HOME, CUP, depth="infinity")
    assert r.status == 403 and "propfind-finite-depth" in r.text


async def test_propname_and_allprop(dav):
    r = await dav("PROPFIND", CAL, '<propfind xmlns="DAV:"><propname/></propfind>', depth="0")
    names = {el.tag for el in r.prop(CAL, "{DAV:}resourcetype").getparent()}
    assert "{DAV:}sync-token" in names and "{http://calendarserver.org/ns/}getctag" in names
    assert all(len(el) == 0 and not el.text for el in r.prop(CAL, "{DAV:}resourcetype").getparent())
    r = await dav("PROPFIND", CAL, '<propfind xmlns="DAV:"><allprop/></propfind>', depth="0")
    assert r.prop(CAL, "{DAV:}displayname").text == "Calendar"


async def test_other_users_paths_are_invisible(dav):
    for path in ("/dav/calendars/bob/", "/dav/calendars/bob/calendar/", "/dav/principals/bob/"):
        assert (await dav("PROPFIND", path, CUP, depth="0")).status == 404


async def test_bad_xml_is_400_with_a_sentence(dav):
    r = await dav("PROPFIND", CAL, "<propfind xmlns='DAV:'><prop>", depth="0")
    assert r.status == 400 and "XML" in r.text
    evil = '<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><x>&e;</x>'
    r = await dav("PROPFIND", CAL, evil, depth="0")
    assert r.status == 400 and "root:" not in r.text


async def test_unknown_method_is_405_with_allow(dav):
    r = await dav("LOCK", CAL)
    assert r.status == 405 and "PROPFIND" in r.headers["Allow"]


async def test_server_root_answers_current_user_principal(dav):
    r = await dav("PROPFIND", "/", CUP, depth="0")
    assert r.status == 207 and r.hrefs("{DAV:}current-user-principal") == [PRINCIPAL]


async def test_inbox_answers_queries_and_sync_as_empty(dav):
    inbox = "/dav/calendars/alice/inbox/"
    body = (
        '<D:sync-collection xmlns:D="DAV:"><D:sync-token/><D:prop><D:getetag/></D:prop></D:sync-collection>'
    )
    r = await dav("REPORT", inbox, body, depth="1")
    assert r.status == 207 and r.responses() == {} and r.xml.findtext("{DAV:}sync-token")
    query = (
        '<C:calendar-query xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav"><D:prop><D:getetag/></D:prop>'
        '<C:filter><C:comp-filter name="VCALENDAR"/></C:filter></C:calendar-query>'
    )
    r = await dav("REPORT", inbox, query, depth="1")
    assert r.status == 207 and r.responses() == {}


async def test_oversized_xml_body_is_413(dav):
    body = '<propfind xmlns="DAV:"><prop>' + "<displayname/>" * 80_000 + "</prop></propfind>"
    r = await dav("PROPFIND", CAL, body, depth="0")
    assert r.status == 413


async def test_options_without_credentials_still_advertises(dav):
    r = await dav("OPTIONS", "/dav/principals/alice/", auth=False)
    assert r.status == 200 and "calendar-access" in r.headers["DAV"]
