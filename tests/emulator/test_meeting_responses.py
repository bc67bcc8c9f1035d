"""Meeting responses as EWS takes them: CreateItem of AcceptItem, TentativelyAcceptItem or DeclineItem
(Microsoft's "CreateItem operation (meeting request)" samples), its MessageDisposition, its Body."""

from __future__ import annotations

from tests.emulator.test_calendar_soap import MEETING, T, codes, soap
from tests.support.emulator import EmulatorServer


def _invite_bob(emulator: EmulatorServer) -> str:
    """Alice sends MEETING to Bob; the id of Bob's copy."""
    response = soap(
        emulator,
        f"""<m:CreateItem SendMeetingInvitations="SendToAllAndSaveCopy">
      <m:SavedItemFolderId><t:DistinguishedFolderId Id="calendar"/></m:SavedItemFolderId>
      <m:Items>{MEETING}</m:Items></m:CreateItem>""",
    )
    assert codes(response) == ["NoError"]
    box = emulator.state.store.mailboxes["bob@example.com"]
    (copy,) = [i for i in box.calendar.items.values() if i.subject == "Plan"]
    return copy.item_id


def _respond(
    emulator: EmulatorServer, item_id: str, kind: str, disposition: str | None, body: str = ""
) -> list[str]:
    attribute = f' MessageDisposition="{disposition}"' if disposition else ""
    text = f'<t:Body BodyType="Text">{body}</t:Body>' if body else ""
    return codes(
        soap(
            emulator,
            f"""<m:CreateItem{attribute}><m:Items><t:{kind}>{text}
      <t:ReferenceItemId Id="{item_id}"/></t:{kind}></m:Items></m:CreateItem>""",
            user="bob",
        )
    )


def _alices_record(emulator: EmulatorServer) -> str:
    box = emulator.state.store.mailboxes["alice@example.com"]
    (item,) = [i for i in box.calendar.items.values() if i.subject == "Plan"]
    return next(a.response_type for a in item.attendees() if a.email == "bob@example.com")


def test_a_response_without_message_disposition_is_refused(emulator: EmulatorServer) -> None:
    copy = _invite_bob(emulator)
    assert _respond(emulator, copy, "AcceptItem", None) == ["ErrorMessageDispositionRequired"]
    assert (
        emulator.state.store.mailboxes["bob@example.com"].get(copy).my_response_type == "NoResponseReceived"
    )


def test_a_sent_response_carries_its_text_to_the_organizer(emulator: EmulatorServer) -> None:
    copy = _invite_bob(emulator)
    assert _respond(emulator, copy, "DeclineItem", "SendOnly", body="Travelling that day") == ["NoError"]
    (message,) = [m for m in emulator.state.store.mailboxes["bob@example.com"].sent if m.subject == "Plan"]
    assert (message.kind, message.recipients, message.body) == (
        "Decline",
        ["alice@example.com"],
        "Travelling that day",
    )
    assert _alices_record(emulator) == "Decline"
    # Declined, the meeting leaves Bob's calendar.
    assert not [
        i
        for i in emulator.state.store.mailboxes["bob@example.com"].calendar.items.values()
        if i.subject == "Plan"
    ]


def test_a_response_saved_only_changes_the_calendar_but_tells_nobody(emulator: EmulatorServer) -> None:
    copy = _invite_bob(emulator)
    assert _respond(emulator, copy, "TentativelyAcceptItem", "SaveOnly") == ["NoError"]
    assert emulator.state.store.mailboxes["bob@example.com"].get(copy).my_response_type == "Tentative"
    assert not [m for m in emulator.state.store.mailboxes["bob@example.com"].sent if m.subject == "Plan"]
    assert _alices_record(emulator) != "Tentative"
    found = soap(
        emulator,
        f"""<m:GetItem><m:ItemShape><t:BaseShape>IdOnly</t:BaseShape><t:AdditionalProperties>
      <t:FieldURI FieldURI="calendar:MyResponseType"/></t:AdditionalProperties></m:ItemShape>
      <m:ItemIds><t:ItemId Id="{copy}"/></m:ItemIds></m:GetItem>""",
        user="bob",
    )
    assert found.findtext(f".//{T}MyResponseType") == "Tentative"


WEEKLY = """<t:CalendarItem><t:Subject>Plan</t:Subject>
  <t:Start>2026-09-01T08:00:00Z</t:Start><t:End>2026-09-01T09:00:00Z</t:End>
  <t:RequiredAttendees><t:Attendee><t:Mailbox><t:EmailAddress>bob@example.com</t:EmailAddress></t:Mailbox>
  </t:Attendee></t:RequiredAttendees>
  <t:Recurrence><t:WeeklyRecurrence><t:Interval>1</t:Interval><t:DaysOfWeek>Tuesday</t:DaysOfWeek>
  </t:WeeklyRecurrence><t:NumberedRecurrence><t:StartDate>2026-09-01</t:StartDate>
  <t:NumberOfOccurrences>4</t:NumberOfOccurrences></t:NumberedRecurrence></t:Recurrence></t:CalendarItem>"""


def test_an_answer_to_one_occurrence_answers_only_that_occurrence(emulator: EmulatorServer) -> None:
    """Exchange keeps an answer per occurrence: the invitee's series gets an exception (or, declined, a
    deleted occurrence), the organizer's series records the answer on that occurrence."""
    response = soap(
        emulator,
        f"""<m:CreateItem SendMeetingInvitations="SendToAllAndSaveCopy">
      <m:SavedItemFolderId><t:DistinguishedFolderId Id="calendar"/></m:SavedItemFolderId>
      <m:Items>{WEEKLY}</m:Items></m:CreateItem>""",
    )
    assert codes(response) == ["NoError"]
    bob = emulator.state.store.mailboxes["bob@example.com"]
    (copy,) = [i for i in bob.calendar.items.values() if i.subject == "Plan"]
    second = bob.occurrence(copy, 2).item_id
    third = bob.occurrence(copy, 3).item_id
    assert _respond(emulator, second, "AcceptItem", "SendAndSaveCopy") == ["NoError"]
    assert _respond(emulator, third, "DeclineItem", "SendAndSaveCopy") == ["NoError"]
    assert copy.my_response_type == "NoResponseReceived"
    assert copy.exceptions[2].my_response_type == "Accept" and set(copy.deleted) == {3}
    alice = emulator.state.store.mailboxes["alice@example.com"]
    (series,) = [i for i in alice.calendar.items.values() if i.subject == "Plan"]
    answers = {
        index: next(a.response_type for a in item.attendees() if a.email == "bob@example.com")
        for index, item in [(None, series), *series.exceptions.items()]
    }
    assert (answers[2], answers[3]) == ("Accept", "Decline")
    assert answers[None] not in ("Accept", "Decline")  # the series itself is not answered
    # Answering the series answers every occurrence, the exceptions included (each a new version).
    version = copy.exceptions[2].change_key
    assert _respond(emulator, copy.item_id, "TentativelyAcceptItem", "SendAndSaveCopy") == ["NoError"]
    assert copy.exceptions[2].change_key != version
    assert {copy.my_response_type, *(e.my_response_type for e in copy.exceptions.values())} == {"Tentative"}
