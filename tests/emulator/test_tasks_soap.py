"""Task behaviour exchangelib does not reach, over raw SOAP (every message schema-validated)."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta

from lxml import etree

from tests.emulator.test_calendar_soap import M, T, codes, soap
from tests.support.emulator import EmulatorServer

NAME = 'PropertySetId="c11ff724-aa03-4555-9952-8fa248a11c3e" PropertyName="CalDAVResourceName" PropertyType="String"'
TASKS = '<t:DistinguishedFolderId Id="tasks"/>'


def create_task(emulator: EmulatorServer, task_xml: str, folder: str = TASKS) -> etree._Element:
    return soap(
        emulator,
        f"""<m:CreateItem><m:SavedItemFolderId>{folder}</m:SavedItemFolderId>
      <m:Items>{task_xml}</m:Items></m:CreateItem>""",
    )


def new_task(emulator: EmulatorServer, task_xml: str) -> str:
    response = create_task(emulator, task_xml)
    assert codes(response) == ["NoError"]
    return response.find(f".//{T}ItemId").get("Id")


def get_task(
    emulator: EmulatorServer, item_id: str, extra: str = "", base: str = "AllProperties"
) -> etree._Element:
    additional = f"<t:AdditionalProperties>{extra}</t:AdditionalProperties>" if extra else ""
    response = soap(
        emulator,
        f"""<m:GetItem><m:ItemShape><t:BaseShape>{base}</t:BaseShape>{additional}</m:ItemShape>
      <m:ItemIds><t:ItemId Id="{item_id}"/></m:ItemIds></m:GetItem>""",
    )
    assert codes(response) == ["NoError"]
    return response.find(f".//{T}Task")


def update(emulator: EmulatorServer, item_id: str, updates: str) -> etree._Element:
    return soap(
        emulator,
        f"""<m:UpdateItem ConflictResolution="AlwaysOverwrite"><m:ItemChanges><t:ItemChange>
      <t:ItemId Id="{item_id}"/><t:Updates>{updates}</t:Updates></t:ItemChange></m:ItemChanges></m:UpdateItem>""",
    )


def set_field(uri: str, element: str) -> str:
    return f'<t:SetItemField><t:FieldURI FieldURI="{uri}"/><t:Task>{element}</t:Task></t:SetItemField>'


def test_yearly_regeneration_with_an_end_date_round_trips_as_written(emulator: EmulatorServer) -> None:
    item_id = new_task(
        emulator,
        """<t:Task><t:Subject>Service the boiler</t:Subject>
        <t:DueDate>2026-10-01T00:00:00+02:00</t:DueDate>
        <t:Recurrence><t:YearlyRegeneration><t:Interval>1</t:Interval></t:YearlyRegeneration>
        <t:EndDateRecurrence><t:StartDate>2026-10-01</t:StartDate><t:EndDate>2030-10-01</t:EndDate>
        </t:EndDateRecurrence></t:Recurrence></t:Task>""",
    )
    task = get_task(emulator, item_id)
    assert task.findtext(f"{T}DueDate") == "2026-10-01T00:00:00+02:00"  # the date the client meant
    assert task.find(f"{T}Recurrence/{T}YearlyRegeneration/{T}Interval").text == "1"
    assert task.findtext(f"{T}Recurrence/{T}EndDateRecurrence/{T}EndDate") == "2030-10-01Z"
    assert task.findtext(f"{T}IsRecurring") == "true"
    assert task.findtext(f"{T}ItemClass") == "IPM.Task"


def test_extended_properties_are_kept_and_deleted_as_on_calendar_items(emulator: EmulatorServer) -> None:
    item_id = new_task(
        emulator,
        f"""<t:Task><t:Subject>Pay rent</t:Subject>
        <t:ExtendedProperty><t:ExtendedFieldURI {NAME}/><t:Value>rent.ics</t:Value></t:ExtendedProperty></t:Task>""",
    )
    task = get_task(emulator, item_id, f"<t:ExtendedFieldURI {NAME}/>")
    assert task.findtext(f"{T}ExtendedProperty/{T}Value") == "rent.ics"
    response = update(
        emulator, item_id, f"<t:DeleteItemField><t:ExtendedFieldURI {NAME}/></t:DeleteItemField>"
    )
    assert codes(response) == ["NoError"]
    assert get_task(emulator, item_id, f"<t:ExtendedFieldURI {NAME}/>").find(f"{T}ExtendedProperty") is None


def test_delete_item_field_clears_task_fields_and_refuses_a_required_one(emulator: EmulatorServer) -> None:
    """DeleteItemField by FieldURI resets a task field and bumps the ChangeKey; deleting ItemClass is
    refused (ErrorInvalidPropertyDelete) with nothing of the change written; a calendar-only FieldURI has
    nothing to reset on a task (exchangelib deletes every empty field)."""
    created = create_task(
        emulator,
        """<t:Task><t:Subject>File taxes</t:Subject><t:DueDate>2026-10-01T00:00:00Z</t:DueDate>
        <t:StartDate>2026-09-01T00:00:00+02:00</t:StartDate></t:Task>""",
    )
    first_key = created.find(f".//{T}ItemId").get("ChangeKey")
    item_id = created.find(f".//{T}ItemId").get("Id")
    cleared = update(
        emulator,
        item_id,
        """<t:DeleteItemField><t:FieldURI FieldURI="task:DueDate"/></t:DeleteItemField>
        <t:DeleteItemField><t:FieldURI FieldURI="calendar:Location"/></t:DeleteItemField>""",
    )
    assert codes(cleared) == ["NoError"]
    assert cleared.find(f".//{T}ItemId").get("ChangeKey") != first_key
    task = get_task(emulator, item_id)
    assert task.find(f"{T}DueDate") is None
    assert task.findtext(f"{T}StartDate") == "2026-09-01T00:00:00+02:00"
    refused = update(
        emulator,
        item_id,
        """<t:DeleteItemField><t:FieldURI FieldURI="task:StartDate"/></t:DeleteItemField>
        <t:DeleteItemField><t:FieldURI FieldURI="item:ItemClass"/></t:DeleteItemField>""",
    )
    assert codes(refused) == ["ErrorInvalidPropertyDelete"]
    kept = get_task(emulator, item_id)
    assert kept.findtext(f"{T}StartDate") == "2026-09-01T00:00:00+02:00"  # nothing half-written
    assert kept.find(f"{T}ItemId").get("ChangeKey") == task.find(f"{T}ItemId").get("ChangeKey")


def test_percent_complete_100_completes_and_a_bad_percentage_is_refused(emulator: EmulatorServer) -> None:
    item_id = new_task(emulator, "<t:Task><t:Subject>Read the contract</t:Subject></t:Task>")
    refused = update(
        emulator, item_id, set_field("task:PercentComplete", "<t:PercentComplete>150</t:PercentComplete>")
    )
    assert codes(refused) == ["ErrorInvalidValueForProperty"]
    assert get_task(emulator, item_id).findtext(f"{T}PercentComplete") == "0"  # nothing half-written
    done = update(
        emulator, item_id, set_field("task:PercentComplete", "<t:PercentComplete>100</t:PercentComplete>")
    )
    assert codes(done) == ["NoError"]
    task = get_task(emulator, item_id)
    assert (task.findtext(f"{T}Status"), task.findtext(f"{T}IsComplete")) == ("Completed", "true")
    assert task.findtext(f"{T}StatusDescription") == "Completed"
    completed = datetime.fromisoformat(task.findtext(f"{T}CompleteDate"))
    assert abs(completed - datetime.now(UTC)) < timedelta(minutes=5)


def test_a_written_complete_date_is_kept(emulator: EmulatorServer) -> None:
    item_id = new_task(
        emulator,
        "<t:Task><t:Subject>Archived</t:Subject><t:CompleteDate>2026-01-05T10:00:00Z</t:CompleteDate></t:Task>",
    )
    task = get_task(emulator, item_id)
    assert task.findtext(f"{T}CompleteDate") == "2026-01-05T10:00:00Z"
    assert (task.findtext(f"{T}Status"), task.findtext(f"{T}PercentComplete")) == ("Completed", "100")


def test_deleting_a_task_needs_affected_task_occurrences(emulator: EmulatorServer) -> None:
    item_id = new_task(emulator, "<t:Task><t:Subject>Delete me</t:Subject></t:Task>")
    ids = f'<m:ItemIds><t:ItemId Id="{item_id}"/></m:ItemIds>'
    refused = soap(emulator, f'<m:DeleteItem DeleteType="HardDelete">{ids}</m:DeleteItem>')
    assert codes(refused) == ["ErrorAffectedTaskOccurrencesRequired"]
    deleted = soap(
        emulator,
        f'<m:DeleteItem DeleteType="HardDelete" AffectedTaskOccurrences="AllOccurrences">{ids}</m:DeleteItem>',
    )
    assert codes(deleted) == ["NoError"]


def test_deleting_the_current_occurrence_moves_a_recurring_task_on(emulator: EmulatorServer) -> None:
    item_id = new_task(
        emulator,
        """<t:Task><t:Subject>Daily stretch</t:Subject><t:DueDate>2026-06-01T00:00:00Z</t:DueDate>
        <t:Recurrence><t:DailyRecurrence><t:Interval>2</t:Interval></t:DailyRecurrence>
        <t:NumberedRecurrence><t:StartDate>2026-06-01</t:StartDate><t:NumberOfOccurrences>2</t:NumberOfOccurrences>
        </t:NumberedRecurrence></t:Recurrence></t:Task>""",
    )
    ids = f'<m:ItemIds><t:ItemId Id="{item_id}"/></m:ItemIds>'
    skip = f'<m:DeleteItem DeleteType="HardDelete" AffectedTaskOccurrences="SpecifiedOccurrenceOnly">{ids}</m:DeleteItem>'
    assert codes(soap(emulator, skip)) == ["NoError"]
    task = get_task(emulator, item_id)
    assert task.findtext(f"{T}DueDate").startswith("2026-06-03")
    assert task.findtext(f"{T}Recurrence/{T}NumberedRecurrence/{T}NumberOfOccurrences") == "1"
    assert task.findtext(f"{T}Status") == "NotStarted"
    assert codes(soap(emulator, skip)) == ["NoError"]  # the last occurrence: the task goes
    gone = soap(
        emulator, f"<m:GetItem><m:ItemShape><t:BaseShape>IdOnly</t:BaseShape></m:ItemShape>{ids}</m:GetItem>"
    )
    assert codes(gone) == ["ErrorItemNotFound"]


def test_completing_a_monthly_regenerating_task_keeps_the_month_end(emulator: EmulatorServer) -> None:
    item_id = new_task(
        emulator,
        """<t:Task><t:Subject>Pay the invoice</t:Subject>
        <t:ReminderDueBy>2026-01-30T08:00:00Z</t:ReminderDueBy><t:ReminderIsSet>true</t:ReminderIsSet>
        <t:DueDate>2026-01-31T00:00:00Z</t:DueDate>
        <t:Recurrence><t:MonthlyRegeneration><t:Interval>1</t:Interval></t:MonthlyRegeneration>
        <t:NoEndRecurrence><t:StartDate>2026-01-31</t:StartDate></t:NoEndRecurrence></t:Recurrence>
        <t:StartDate>2026-01-25T00:00:00Z</t:StartDate></t:Task>""",
    )
    response = update(emulator, item_id, set_field("task:Status", "<t:Status>Completed</t:Status>"))
    assert codes(response) == ["NoError"]
    task = get_task(emulator, item_id)
    completed_on = datetime.now(UTC).date()
    due = datetime.fromisoformat(task.findtext(f"{T}DueDate")).date()
    start = datetime.fromisoformat(task.findtext(f"{T}StartDate")).date()
    assert (due.month - completed_on.month) % 12 == 1 and due > completed_on
    assert due - start == timedelta(days=6)  # StartDate keeps its distance to DueDate
    reminder = datetime.fromisoformat(task.findtext(f"{T}ReminderDueBy"))
    assert reminder.date() == due - timedelta(days=1)  # the reminder moves with the task
    assert task.findtext(f"{T}Status") == "NotStarted" and task.find(f"{T}CompleteDate") is None


def test_tasks_only_in_task_folders_and_no_calendar_view_of_them(emulator: EmulatorServer) -> None:
    refused = create_task(
        emulator,
        "<t:Task><t:Subject>Misplaced</t:Subject></t:Task>",
        '<t:DistinguishedFolderId Id="calendar"/>',
    )
    assert codes(refused) == ["ErrorCannotCreateTaskInNonTaskFolder"]
    view = soap(
        emulator,
        f"""<m:FindItem Traversal="Shallow"><m:ItemShape><t:BaseShape>IdOnly</t:BaseShape></m:ItemShape>
      <m:CalendarView StartDate="2026-01-01T00:00:00Z" EndDate="2026-02-01T00:00:00Z"/>
      <m:ParentFolderIds>{TASKS}</m:ParentFolderIds></m:FindItem>""",
    )
    assert codes(view) == ["ErrorCalendarFolderIsInvalidForCalendarView"]


def test_find_tasks_with_a_restriction_on_task_fields(emulator: EmulatorServer) -> None:
    new_task(
        emulator, "<t:Task><t:Subject>Early</t:Subject><t:DueDate>2026-02-01T00:00:00Z</t:DueDate></t:Task>"
    )
    new_task(
        emulator, "<t:Task><t:Subject>Late</t:Subject><t:DueDate>2026-09-01T00:00:00Z</t:DueDate></t:Task>"
    )
    response = soap(
        emulator,
        f"""<m:FindItem Traversal="Shallow"><m:ItemShape><t:BaseShape>Default</t:BaseShape></m:ItemShape>
      <m:Restriction><t:And>
        <t:IsLessThan><t:FieldURI FieldURI="task:DueDate"/><t:FieldURIOrConstant>
          <t:Constant Value="2026-03-01T00:00:00Z"/></t:FieldURIOrConstant></t:IsLessThan>
        <t:IsEqualTo><t:FieldURI FieldURI="task:IsComplete"/><t:FieldURIOrConstant>
          <t:Constant Value="false"/></t:FieldURIOrConstant></t:IsEqualTo>
        <t:Not><t:Exists><t:FieldURI FieldURI="calendar:Start"/></t:Exists></t:Not>
      </t:And></m:Restriction>
      <m:ParentFolderIds>{TASKS}</m:ParentFolderIds></m:FindItem>""",
    )
    tasks = response.findall(f".//{T}Task")
    assert [t.findtext(f"{T}Subject") for t in tasks] == ["Early"]
    assert tasks[0].findtext(f"{T}Status") == "NotStarted"  # a task's Default shape has its status


def test_mime_content_is_a_vtodo(emulator: EmulatorServer) -> None:
    item_id = new_task(
        emulator,
        """<t:Task><t:Subject>Plan the party</t:Subject><t:Categories><t:String>Home</t:String></t:Categories>
        <t:DueDate>2026-07-04T00:00:00Z</t:DueDate>
        <t:Recurrence><t:AbsoluteYearlyRecurrence><t:DayOfMonth>4</t:DayOfMonth><t:Month>July</t:Month>
        </t:AbsoluteYearlyRecurrence><t:NoEndRecurrence><t:StartDate>2026-07-04</t:StartDate></t:NoEndRecurrence>
        </t:Recurrence></t:Task>""",
    )
    task = get_task(emulator, item_id, '<t:FieldURI FieldURI="item:MimeContent"/>', base="IdOnly")
    text = base64.b64decode(task.findtext(f"{T}MimeContent")).decode()
    assert "BEGIN:VTODO" in text and "SUMMARY:Plan the party" in text
    assert "DUE;VALUE=DATE:20260704" in text and "CATEGORIES:Home" in text
    assert "RRULE:FREQ=YEARLY;BYMONTHDAY=4;BYMONTH=7" in text


def test_task_folders_sync_and_count(emulator: EmulatorServer) -> None:
    response = soap(
        emulator,
        f"""<m:FindFolder Traversal="Shallow"><m:FolderShape><t:BaseShape>Default</t:BaseShape></m:FolderShape>
      <m:ParentFolderIds>{TASKS}</m:ParentFolderIds></m:FindFolder>""",
    )
    folders = response.findall(f".//{T}TasksFolder")
    assert [f.findtext(f"{T}DisplayName") for f in folders] == ["Errands"]
    assert folders[0].findtext(f"{T}FolderClass") == "IPF.Task"
    errands = folders[0].find(f"{T}FolderId").get("Id")
    sync = soap(
        emulator,
        f"""<m:SyncFolderItems><m:ItemShape><t:BaseShape>Default</t:BaseShape></m:ItemShape>
      <m:SyncFolderId><t:FolderId Id="{errands}"/></m:SyncFolderId><m:MaxChangesReturned>10</m:MaxChangesReturned>
      </m:SyncFolderItems>""",
    )
    created = sync.findall(f".//{M}Changes/{T}Create/{T}Task")
    assert len(created) == 2


def test_a_recurring_task_created_completed_is_stored_as_written(emulator: EmulatorServer) -> None:
    item_id = new_task(
        emulator,
        """<t:Task><t:Subject>Imported</t:Subject><t:DueDate>2026-06-01T00:00:00Z</t:DueDate>
        <t:Recurrence><t:WeeklyRegeneration><t:Interval>1</t:Interval></t:WeeklyRegeneration>
        <t:NoEndRecurrence><t:StartDate>2026-06-01</t:StartDate></t:NoEndRecurrence></t:Recurrence>
        <t:Status>Completed</t:Status></t:Task>""",
    )
    task = get_task(emulator, item_id)
    assert (task.findtext(f"{T}Status"), task.findtext(f"{T}IsRecurring")) == ("Completed", "true")
    assert task.findtext(f"{T}DueDate").startswith("2026-06-01")


def test_mapi_properties_of_a_task(emulator: EmulatorServer) -> None:
    item_id = new_task(emulator, "<t:Task><t:Subject>Mapi view</t:Subject></t:Task>")
    uris = '<t:ExtendedFieldURI PropertyTag="0x1a" PropertyType="String"/>'
    uris += '<t:ExtendedFieldURI PropertyTag="0x37" PropertyType="String"/>'
    task = get_task(emulator, item_id, uris, base="IdOnly")
    assert [p.findtext(f"{T}Value") for p in task.findall(f"{T}ExtendedProperty")] == [
        "IPM.Task",
        "Mapi view",
    ]
