"""Calendar operations exchangelib does not exercise, over raw SOAP (every message schema-validated)."""

from __future__ import annotations

import requests
from lxml import etree

from tests.support.emulator import EmulatorServer

M_NS = "http://schemas.microsoft.com/exchange/services/2006/messages"
T_NS = "http://schemas.microsoft.com/exchange/services/2006/types"
T = f"{{{T_NS}}}"
M = f"{{{M_NS}}}"
HREF = 'PropertySetId="c11ff724-aa03-4555-9952-8fa248a11c3e" PropertyName="Href" PropertyType="String"'


def soap(emulator: EmulatorServer, body: str, user: str = "alice", headers: str = "") -> etree._Element:
    """POST one EWS request as ``user`` and return the operation's response element."""
    envelope = f"""<?xml version="1.0" encoding="utf-8"?>
<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/" xmlns:m="{M_NS}" xmlns:t="{T_NS}">
 <s:Header><t:RequestServerVersion Version="Exchange2016"/>{headers}</s:Header><s:Body>{body}</s:Body></s:Envelope>"""
    response = requests.post(
        emulator.ews_url,
        data=envelope.encode(),
        auth=(f"{user}@example.com", f"{user}-pw"),
        headers={"Content-Type": "text/xml; charset=utf-8"},
        timeout=10,
    )
    assert response.status_code == 200, response.text
    return etree.fromstring(response.content).find("{http://schemas.xmlsoap.org/soap/envelope/}Body")[0]


def codes(response: etree._Element) -> list[str]:
    return [m.findtext(f"{M}ResponseCode") for m in response.find(f"{M}ResponseMessages")]


def create(
    emulator: EmulatorServer, item_xml: str, folder: str = '<t:DistinguishedFolderId Id="calendar"/>'
) -> str:
    response = soap(
        emulator,
        f"""<m:CreateItem SendMeetingInvitations="SendToNone">
      <m:SavedItemFolderId>{folder}</m:SavedItemFolderId><m:Items>{item_xml}</m:Items></m:CreateItem>""",
    )
    assert codes(response) == ["NoError"]
    return response.find(f".//{T}ItemId").get("Id")


def get(emulator: EmulatorServer, item_id: str, extra: str = "") -> etree._Element:
    additional = f"<t:AdditionalProperties>{extra}</t:AdditionalProperties>" if extra else ""
    response = soap(
        emulator,
        f"""<m:GetItem><m:ItemShape><t:BaseShape>AllProperties</t:BaseShape>
      {additional}</m:ItemShape>
      <m:ItemIds><t:ItemId Id="{item_id}"/></m:ItemIds></m:GetItem>""",
    )
    return response.find(f".//{T}CalendarItem")


def update(emulator: EmulatorServer, item_id: str, updates: str, send: str = "SendToNone") -> etree._Element:
    """UpdateItem of one item (AlwaysOverwrite) with the given ``t:Updates`` children."""
    return soap(
        emulator,
        f"""<m:UpdateItem ConflictResolution="AlwaysOverwrite"
        SendMeetingInvitationsOrCancellations="{send}"><m:ItemChanges><t:ItemChange>
      <t:ItemId Id="{item_id}"/><t:Updates>{updates}</t:Updates></t:ItemChange></m:ItemChanges></m:UpdateItem>""",
    )


MEETING = f"""<t:CalendarItem><t:Subject>Plan</t:Subject>
  <t:ExtendedProperty><t:ExtendedFieldURI {HREF}/><t:Value>plan.ics</t:Value></t:ExtendedProperty>
  <t:Start>2026-09-01T08:00:00Z</t:Start><t:End>2026-09-01T09:00:00Z</t:End>
  <t:RequiredAttendees><t:Attendee><t:Mailbox><t:EmailAddress>bob@example.com</t:EmailAddress></t:Mailbox>
  </t:Attendee></t:RequiredAttendees></t:CalendarItem>"""


def test_append_and_delete_fields(emulator: EmulatorServer) -> None:
    item_id = create(emulator, MEETING)
    response = update(
        emulator,
        item_id,
        f"""<t:AppendToItemField><t:FieldURI FieldURI="calendar:RequiredAttendees"/><t:CalendarItem>
        <t:RequiredAttendees><t:Attendee><t:Mailbox><t:EmailAddress>carol@example.com</t:EmailAddress>
        </t:Mailbox></t:Attendee></t:RequiredAttendees></t:CalendarItem></t:AppendToItemField>
       <t:DeleteItemField><t:ExtendedFieldURI {HREF}/></t:DeleteItemField>
       <t:SetItemField><t:FieldURI FieldURI="calendar:Location"/><t:CalendarItem><t:Location>Room 9</t:Location>
       </t:CalendarItem></t:SetItemField>""",
        send="SendToAllAndSaveCopy",
    )
    assert codes(response) == ["NoError"]
    item = get(emulator, item_id, f"<t:ExtendedFieldURI {HREF}/>")
    emails = [e.text for e in item.iterfind(f"{T}RequiredAttendees/{T}Attendee/{T}Mailbox/{T}EmailAddress")]
    assert emails == ["bob@example.com", "carol@example.com"]
    assert item.findtext(f"{T}Location") == "Room 9"
    assert item.find(f"{T}ExtendedProperty") is None
    assert item.findtext(f"{T}AppointmentSequenceNumber") == "1"
    sent = emulator.state.store.stats()["alice@example.com"]["sent"]
    assert [(m["kind"], m["recipients"]) for m in sent] == [
        ("Update", ["bob@example.com", "carol@example.com"])
    ]


def test_deleting_a_required_field_is_refused_and_nothing_is_written(emulator: EmulatorServer) -> None:
    """DeleteItemField of calendar:Start is ErrorInvalidPropertyDelete; the change's earlier SetItemField
    is not kept and the ChangeKey stays."""
    item_id = create(emulator, MEETING)
    before = get(emulator, item_id)
    response = update(
        emulator,
        item_id,
        """<t:SetItemField><t:FieldURI FieldURI="calendar:Location"/><t:CalendarItem><t:Location>Room 9</t:Location>
       </t:CalendarItem></t:SetItemField>
       <t:DeleteItemField><t:FieldURI FieldURI="calendar:Start"/></t:DeleteItemField>""",
    )
    assert codes(response) == ["ErrorInvalidPropertyDelete"]
    item = get(emulator, item_id)
    assert item.find(f"{T}Location") is None
    assert item.find(f"{T}ItemId").get("ChangeKey") == before.find(f"{T}ItemId").get("ChangeKey")


def test_extended_property_echoed_as_requested(emulator: EmulatorServer) -> None:
    item_id = create(emulator, MEETING)
    upper = HREF.replace("c11ff724-aa03-4555-9952-8fa248a11c3e", "C11FF724-AA03-4555-9952-8FA248A11C3E")
    item = get(emulator, item_id, f"<t:ExtendedFieldURI {upper}/>")
    uri = item.find(f"{T}ExtendedProperty/{T}ExtendedFieldURI")
    assert uri.get("PropertySetId") == "C11FF724-AA03-4555-9952-8FA248A11C3E"
    assert item.findtext(f"{T}ExtendedProperty/{T}Value") == "plan.ics"


def test_calendar_view_refuses_restrictions_and_end_before_start(emulator: EmulatorServer) -> None:
    restricted = soap(
        emulator,
        """<m:FindItem Traversal="Shallow"><m:ItemShape><t:BaseShape>IdOnly</t:BaseShape>
      </m:ItemShape><m:CalendarView StartDate="2026-01-01T00:00:00Z" EndDate="2026-02-01T00:00:00Z"/>
      <m:Restriction><t:Exists><t:FieldURI FieldURI="item:Subject"/></t:Exists></m:Restriction>
      <m:ParentFolderIds><t:DistinguishedFolderId Id="calendar"/></m:ParentFolderIds></m:FindItem>""",
    )
    assert codes(restricted) == ["ErrorInvalidRestriction"]
    backwards = soap(
        emulator,
        """<m:FindItem Traversal="Shallow"><m:ItemShape><t:BaseShape>IdOnly</t:BaseShape>
      </m:ItemShape><m:CalendarView StartDate="2026-02-01T00:00:00Z" EndDate="2026-01-01T00:00:00Z"/>
      <m:ParentFolderIds><t:DistinguishedFolderId Id="calendar"/></m:ParentFolderIds></m:FindItem>""",
    )
    assert codes(backwards) == ["ErrorCalendarEndDateIsEarlierThanStartDate"]


def test_default_shape_and_paging_from_the_end(emulator: EmulatorServer) -> None:
    response = soap(
        emulator,
        """<m:FindItem Traversal="Shallow"><m:ItemShape><t:BaseShape>Default</t:BaseShape>
      </m:ItemShape><m:IndexedPageItemView MaxEntriesReturned="2" Offset="0" BasePoint="End"/>
      <m:SortOrder><t:FieldOrder Order="Ascending"><t:FieldURI FieldURI="calendar:Start"/></t:FieldOrder></m:SortOrder>
      <m:ParentFolderIds><t:DistinguishedFolderId Id="calendar"/></m:ParentFolderIds></m:FindItem>""",
    )
    root = response.find(f".//{M}RootFolder")
    items = root.findall(f"{T}Items/{T}CalendarItem")
    total = int(root.get("TotalItemsInView"))
    assert len(items) == 2 and total > 2 and root.get("IncludesLastItemInRange") == "true"
    starts = [i.findtext(f"{T}Start") for i in items]
    assert starts == sorted(starts)
    assert {etree.QName(c).localname for c in items[0]} >= {
        "ItemId",
        "Subject",
        "Start",
        "End",
        "CalendarItemType",
    }
    assert items[0].find(f"{T}Body") is None  # not part of the Default shape


def test_sub_calendar_items_stay_in_their_folder(emulator: EmulatorServer) -> None:
    folders = soap(
        emulator,
        """<m:FindFolder Traversal="Shallow"><m:FolderShape><t:BaseShape>Default</t:BaseShape>
      </m:FolderShape><m:ParentFolderIds><t:DistinguishedFolderId Id="calendar"/></m:ParentFolderIds></m:FindFolder>""",
    )
    (projects,) = folders.findall(f".//{T}CalendarFolder")
    assert projects.findtext(f"{T}DisplayName") == "Projects"
    assert projects.findtext(f"{T}FolderClass") == "IPF.Appointment"
    folder_id = projects.find(f"{T}FolderId").get("Id")
    create(emulator, MEETING.replace("Plan", "In projects"), f'<t:FolderId Id="{folder_id}"/>')

    def subjects(parent: str) -> list[str]:
        found = soap(
            emulator,
            f"""<m:FindItem Traversal="Shallow"><m:ItemShape><t:BaseShape>Default</t:BaseShape>
          </m:ItemShape><m:CalendarView StartDate="2026-08-31T00:00:00Z" EndDate="2026-09-02T00:00:00Z"/>
          <m:ParentFolderIds>{parent}</m:ParentFolderIds></m:FindItem>""",
        )
        return [s.text for s in found.iter(f"{T}Subject")]

    assert subjects(f'<t:FolderId Id="{folder_id}"/>') == ["In projects"]
    assert "In projects" not in subjects('<t:DistinguishedFolderId Id="calendar"/>')


def test_unknown_folder_and_duplicate_folder_names(emulator: EmulatorServer) -> None:
    # The demo mailboxes have no archive mailbox.
    missing = soap(
        emulator,
        """<m:GetFolder><m:FolderShape><t:BaseShape>IdOnly</t:BaseShape></m:FolderShape>
      <m:FolderIds><t:DistinguishedFolderId Id="archivemsgfolderroot"/><t:DistinguishedFolderId Id="calendar"/>
      </m:FolderIds>
      </m:GetFolder>""",
    )
    assert codes(missing) == ["ErrorFolderNotFound", "NoError"]
    duplicate = soap(
        emulator,
        """<m:CreateFolder><m:ParentFolderId><t:DistinguishedFolderId Id="calendar"/>
      </m:ParentFolderId><m:Folders><t:CalendarFolder><t:DisplayName>projects</t:DisplayName></t:CalendarFolder>
      </m:Folders></m:CreateFolder>""",
    )
    assert codes(duplicate) == ["ErrorFolderExists"]
    created = soap(
        emulator,
        """<m:CreateFolder><m:ParentFolderId><t:DistinguishedFolderId Id="calendar"/>
      </m:ParentFolderId><m:Folders><t:CalendarFolder><t:DisplayName>Offsite</t:DisplayName></t:CalendarFolder>
      </m:Folders></m:CreateFolder>""",
    )
    offsite = created.find(f".//{T}FolderId").get("Id")

    def rename(name: str) -> list[str]:
        return codes(
            soap(
                emulator,
                f"""<m:UpdateFolder><m:FolderChanges><t:FolderChange><t:FolderId Id="{offsite}"/><t:Updates>
              <t:SetFolderField><t:FieldURI FieldURI="folder:DisplayName"/><t:CalendarFolder>
              <t:DisplayName>{name}</t:DisplayName></t:CalendarFolder></t:SetFolderField></t:Updates>
              </t:FolderChange></m:FolderChanges></m:UpdateFolder>""",
            )
        )

    # a rename to a sibling's name is refused too; to its own name (another case) it is not
    assert rename("PROJECTS") == ["ErrorFolderExists"]
    assert rename("OFFSITE") == ["NoError"]


def test_time_zone_context_applies_when_the_item_names_no_zone(emulator: EmulatorServer) -> None:
    context = '<t:TimeZoneContext><t:TimeZoneDefinition Id="Pacific Standard Time"/></t:TimeZoneContext>'
    response = soap(
        emulator,
        """<m:CreateItem SendMeetingInvitations="SendToNone"><m:Items><t:CalendarItem>
      <t:Subject>Holiday</t:Subject><t:Start>2026-07-03T00:00:00-07:00</t:Start><t:End>2026-07-04T00:00:00-07:00</t:End>
      <t:IsAllDayEvent>true</t:IsAllDayEvent></t:CalendarItem></m:Items></m:CreateItem>""",
        headers=context,
    )
    item = get(emulator, response.find(f".//{T}ItemId").get("Id"))
    assert (item.findtext(f"{T}Start"), item.findtext(f"{T}End")) == (
        "2026-07-03T07:00:00Z",
        "2026-07-04T07:00:00Z",
    )
    assert item.find(f"{T}StartTimeZone").get("Id") == "Pacific Standard Time"


def test_unknown_time_zone_is_refused(emulator: EmulatorServer) -> None:
    response = soap(
        emulator,
        """<m:CreateItem SendMeetingInvitations="SendToNone"><m:Items><t:CalendarItem>
      <t:Start>2026-07-03T09:00:00Z</t:Start><t:End>2026-07-03T10:00:00Z</t:End>
      <t:StartTimeZone Id="Mars Standard Time"/></t:CalendarItem></m:Items></m:CreateItem>""",
    )
    assert codes(response) == ["ErrorTimeZone"]


def test_property_tag_extended_property(emulator: EmulatorServer) -> None:
    tagged = '<t:ExtendedFieldURI PropertyTag="0x10F3" PropertyType="String"/>'
    item_id = create(
        emulator,
        f"""<t:CalendarItem><t:Subject>Tagged</t:Subject>
      <t:ExtendedProperty>{tagged}<t:Value>tagged.ics</t:Value></t:ExtendedProperty>
      <t:Start>2026-09-02T08:00:00Z</t:Start><t:End>2026-09-02T09:00:00Z</t:End></t:CalendarItem>""",
    )
    item = get(emulator, item_id, tagged.replace("0x10F3", "0x10f3"))
    assert item.find(f"{T}ExtendedProperty/{T}ExtendedFieldURI").get("PropertyTag") == "0x10f3"
    assert item.findtext(f"{T}ExtendedProperty/{T}Value") == "tagged.ics"
    found = soap(
        emulator,
        f"""<m:FindItem Traversal="Shallow"><m:ItemShape><t:BaseShape>IdOnly</t:BaseShape>
      </m:ItemShape><m:Restriction><t:IsEqualTo>{tagged}<t:FieldURIOrConstant><t:Constant Value="tagged.ics"/>
      </t:FieldURIOrConstant></t:IsEqualTo></m:Restriction>
      <m:ParentFolderIds><t:DistinguishedFolderId Id="calendar"/></m:ParentFolderIds></m:FindItem>""",
    )
    assert [i.get("Id") for i in found.iter(f"{T}ItemId")] == [item_id]


def _create_response(emulator: EmulatorServer, item: str) -> list[str]:
    return codes(
        soap(
            emulator,
            f"""<m:CreateItem SendMeetingInvitations="SendToNone"><m:Items>{item}</m:Items>
      </m:CreateItem>""",
        )
    )


def test_refused_creations_use_exchange_codes(emulator: EmulatorServer) -> None:
    times = "<t:Start>2026-03-02T09:00:00Z</t:Start><t:End>2026-03-02T10:00:00Z</t:End>"
    zero = f"""<t:CalendarItem>{times}<t:Recurrence><t:DailyRecurrence><t:Interval>0</t:Interval>
      </t:DailyRecurrence><t:NoEndRecurrence><t:StartDate>2026-03-02</t:StartDate></t:NoEndRecurrence>
      </t:Recurrence></t:CalendarItem>"""
    assert _create_response(emulator, zero) == ["ErrorCalendarInvalidRecurrence"]
    empty = f"""<t:CalendarItem>{times}<t:Recurrence><t:WeeklyRecurrence><t:Interval>1</t:Interval>
      <t:DaysOfWeek>Sunday</t:DaysOfWeek></t:WeeklyRecurrence><t:EndDateRecurrence><t:StartDate>2026-03-02</t:StartDate>
      <t:EndDate>2026-03-04</t:EndDate></t:EndDateRecurrence></t:Recurrence></t:CalendarItem>"""
    assert _create_response(emulator, empty) == ["ErrorRecurrenceHasNoOccurrence"]
    backwards = "<t:CalendarItem><t:Start>2026-03-02T09:00:00Z</t:Start><t:End>2026-03-02T08:00:00Z</t:End></t:CalendarItem>"
    assert _create_response(emulator, backwards) == ["ErrorCalendarEndDateIsEarlierThanStartDate"]
    assert _create_response(emulator, "<t:Message><t:Subject>hi</t:Subject></t:Message>") == [
        "ErrorInvalidItemForOperationCreateItem"
    ]
