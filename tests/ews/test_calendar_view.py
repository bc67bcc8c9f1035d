"""The month view's FindItem answer is read with lxml: the same entries exchangelib's model gives."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from exchangelib import BASIC, DELEGATE, Account, CalendarItem, Configuration, Credentials
from exchangelib.ewsdatetime import UTC as EWS_UTC
from exchangelib.ewsdatetime import EWSDateTime
from exchangelib.fields import FieldPath
from exchangelib.items import ID_ONLY, SHALLOW
from exchangelib.properties import CalendarView
from exchangelib.services import FindItem
from exchangelib.version import Build, Version

from gateway.ews.exchange import ViewEntry, calendar_view


def test_calendar_view_entries_match_exchangelibs_reading(emulator):
    config = Configuration(
        service_endpoint=emulator.ews_url,
        credentials=Credentials("alice@example.com", "alice-pw"),
        auth_type=BASIC,
        version=Version(build=Build(15, 1, 2507, 6)),
    )
    account = Account("alice@example.com", config=config, autodiscover=False, access_type=DELEGATE)
    start = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=40)
    end = start + timedelta(days=80)
    ours = calendar_view(account, account.calendar, start, end)
    theirs = FindItem(account=account).call(
        folders=[account.calendar],
        additional_fields={FieldPath(field=CalendarItem.get_field_by_fieldname(n)) for n in ("uid", "type")},
        restriction=None,
        order_fields=None,
        shape=ID_ONLY,
        query_string=None,
        depth=SHALLOW,
        calendar_view=CalendarView(
            start=EWSDateTime.from_datetime(start).astimezone(EWS_UTC),
            end=EWSDateTime.from_datetime(end).astimezone(EWS_UTC),
        ),
        max_items=None,
        offset=0,
    )
    assert ours == [ViewEntry(i.id, i.changekey, i.uid, i.type) for i in theirs]
    assert {e.type for e in ours} >= {"Single", "Occurrence", "Exception"}  # the demo has every kind
    assert all(e.id and e.changekey and e.uid for e in ours)
