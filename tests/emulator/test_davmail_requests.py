"""The EWS requests DavMail 6 sends, replayed from tests/fixtures/ews/davmail/ (schema-validated both ways).

Each fixture is a request body as DavMail writes it (its namespace prefixes, its attribute order, its
PropertyTag spelling such as ``0x670a``); ``${name}`` placeholders stand for ids of this run. The
answers are what Exchange gives (Microsoft's EWS reference for each operation); tests/e2e/test_davmail.py
runs DavMail itself against the emulator.
"""

from __future__ import annotations

import string
from pathlib import Path

import requests
from lxml import etree

from tests.support.emulator import EmulatorServer

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "ews" / "davmail"
SOAP = "{http://schemas.xmlsoap.org/soap/envelope/}"
M = "{http://schemas.microsoft.com/exchange/services/2006/messages}"
T = "{http://schemas.microsoft.com/exchange/services/2006/types}"


def replay(emulator: EmulatorServer, fixture: str, user: str = "alice", **values: str) -> etree._Element:
    """POST one DavMail request (placeholders filled in) as ``user``; the operation's response element."""
    body = string.Template((FIXTURES / f"{fixture}.xml").read_text(encoding="utf-8")).substitute(values)
    response = requests.post(
        emulator.ews_url,
        data=body.encode(),
        auth=(f"{user}@example.com", f"{user}-pw"),
        headers={"Content-Type": "text/xml; charset=utf-8"},
        timeout=10,
    )
    assert response.status_code == 200, response.text
    return etree.fromstring(response.content).find(f"{SOAP}Body")[0]


def codes(response: etree._Element) -> list[str]:
    return [m.findtext(f"{M}ResponseCode") for m in response.find(f"{M}ResponseMessages")]


def mapi(folder_or_item: etree._Element) -> dict[str, str]:
    """The extended properties of an answer by PropertyTag (or PropertyName / PropertyId)."""
    found = {}
    for prop in folder_or_item.iterfind(f"{T}ExtendedProperty"):
        uri = prop.find(f"{T}ExtendedFieldURI")
        key = uri.get("PropertyTag") or uri.get("PropertyName") or uri.get("PropertyId")
        found[key] = prop.findtext(f"{T}Value")
    return found


def get_folder(emulator: EmulatorServer, folder: str, user: str = "alice") -> etree._Element:
    response = replay(emulator, "GetFolder-distinguished-with-mapi-properties", user, folder=folder)
    assert codes(response) == ["NoError"], etree.tostring(response)
    return response.find(f".//{M}Folders")[0]


def folder_id(emulator: EmulatorServer, folder: str, user: str = "alice") -> str:
    return get_folder(emulator, folder, user).find(f"{T}FolderId").get("Id")


# --- sign-in: ConvertId, the distinguished folders, the folder properties -----------------------------


def test_convert_id_answers_the_owner_of_the_id_whatever_mailbox_the_request_names(emulator):
    """DavMail learns the signed-in address by converting the root folder id with Mailbox="blah@blah.com"."""
    root = folder_id(emulator, "root")
    response = replay(emulator, "ConvertId-root-folder", root_id=root)
    assert codes(response) == ["NoError"]
    alternate = response.find(f".//{M}AlternateId")
    assert (alternate.get("Mailbox"), alternate.get("Id"), alternate.get("Format")) == (
        "alice@example.com",
        root,
        "EwsId",
    )
    # Converted by bob, an id of alice's mailbox still names alice.
    alices_calendar = folder_id(emulator, "calendar")
    response = replay(emulator, "ConvertId-root-folder", user="bob", root_id=alices_calendar)
    assert response.find(f".//{M}AlternateId").get("Mailbox") == "alice@example.com"


def test_every_distinguished_folder_davmail_opens_exists_with_its_folder_type(emulator):
    expected = {
        "inbox": ("Folder", "IPF.Note"),
        "calendar": ("CalendarFolder", "IPF.Appointment"),
        "contacts": ("ContactsFolder", "IPF.Contact"),
        "sentitems": ("Folder", "IPF.Note"),
        "drafts": ("Folder", "IPF.Note"),
        "deleteditems": ("Folder", "IPF.Note"),
        "junkemail": ("Folder", "IPF.Note"),
        "outbox": ("Folder", "IPF.Note"),
        "tasks": ("TasksFolder", "IPF.Task"),
    }
    seen = {}
    for name in expected:
        folder = get_folder(emulator, name)
        seen[name] = (etree.QName(folder).localname, mapi(folder)["0x3613"])
    assert seen == expected
    assert len({folder_id(emulator, name) for name in expected}) == len(expected)


def test_folder_mapi_properties_and_a_ctag_that_moves_with_every_change(emulator):
    calendar = get_folder(emulator, "calendar")
    props = mapi(calendar)
    assert calendar.findtext(f"{T}DisplayName") == "Calendar"
    items = len(emulator.state.store.mailboxes["alice@example.com"].calendar.items)
    assert int(props["0x3602"]) == items > 0  # PR_CONTENT_COUNT
    assert props["0x3603"] == "0"  # PR_CONTENT_UNREAD
    assert props["0x360a"] == "true"  # PR_SUBFOLDERS: the Projects sub-calendar
    assert props["0x10f3"] == "Calendar"  # PR_URL_COMP_NAME
    assert int(props["0x6751"]) > int(props["0x6752"]) > 0  # next article number > the last one
    assert mapi(get_folder(emulator, "tasks"))["0x360a"] == "false"

    ctags = [props["0x670a"]]
    for _ in range(2):  # two changes within the same second still give two new ctags
        replay(emulator, "FindFolder-davmailtemp-by-name")  # reading changes nothing
        emulator.state.store.mailboxes["alice@example.com"].calendar.bump()
        ctags.append(mapi(get_folder(emulator, "calendar"))["0x670a"])
    assert len(set(ctags)) == 3 and ctags == sorted(ctags)
    assert mapi(get_folder(emulator, "calendar"))["0x3008"] == ctags[-1]  # last modification


def test_find_folder_applies_its_restriction(emulator):
    """DavMail deletes "davmailtemp" before creating it: an unfiltered answer made it delete the Calendar."""
    response = replay(emulator, "FindFolder-davmailtemp-by-name")
    assert codes(response) == ["NoError"]
    root = response.find(f".//{M}RootFolder")
    assert (root.get("TotalItemsInView"), len(root.find(f"{T}Folders"))) == ("0", 0)

    box = emulator.state.store.mailboxes["alice@example.com"]
    top = box.distinguished_folder("msgfolderroot")
    box.create_folder(top.folder_id, "davmailtemp", "IPF.Appointment")
    found = replay(emulator, "FindFolder-davmailtemp-by-name").find(f".//{T}Folders")
    assert [f.findtext(f"{T}DisplayName") for f in found] == ["davmailtemp"]


def test_owa_user_options_name_the_mailbox_time_zone(emulator):
    """GetUserConfiguration of OWA.UserOptions on root: DavMail reads ``timezone`` from the dictionary."""
    response = replay(emulator, "GetUserConfiguration-owa-user-options", user="carol")
    assert codes(response) == ["NoError"]
    entries = {}
    for entry in response.iter(f"{T}DictionaryEntry"):
        key, value = (e.findtext(f"{T}Value") for e in entry)
        entries[key] = value
    assert entries["timezone"] == "Pacific Standard Time"


def test_unauthenticated_ews_requests_are_counted_apart(emulator):
    """A client's 401 legs (its first anonymous request, NTLM's type-1) are round trips too."""
    body = (FIXTURES / "GetUserConfiguration-owa-user-options.xml").read_bytes()
    answer = requests.post(emulator.ews_url, data=body, headers={"Content-Type": "text/xml"}, timeout=10)
    assert answer.status_code == 401
    stats = emulator.stats()
    assert stats["unauthenticated"] == 1 and stats["operations"] == {}
