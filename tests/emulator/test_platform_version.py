"""Server identity and version negotiation of the EWS emulator."""

from __future__ import annotations

import pytest
import requests
from exchangelib import BASIC, Configuration, Credentials
from exchangelib.protocol import Protocol
from lxml import etree

from gateway.ews.emulator.soap import OPERATIONS
from tests.support.emulator import EmulatorServer
from tests.support.schema import observe_message

SOAP = "{http://schemas.xmlsoap.org/soap/envelope/}"
T = "{http://schemas.microsoft.com/exchange/services/2006/types}"
HEADERS = {"Content-Type": "text/xml; charset=utf-8"}
ALICE = ("alice@example.com", "alice-pw")


def envelope(body: str, version: str | None = "Exchange2016") -> bytes:
    header = f'<t:RequestServerVersion Version="{version}"/>' if version else ""
    return f"""<?xml version="1.0" encoding="utf-8"?>
<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"
  xmlns:t="http://schemas.microsoft.com/exchange/services/2006/types"
  xmlns:m="http://schemas.microsoft.com/exchange/services/2006/messages">
  <s:Header>{header}</s:Header><s:Body>{body}</s:Body></s:Envelope>""".encode()


CONVERT_DUMMY = (
    '<m:ConvertId DestinationFormat="EntryId"><m:SourceIds>'
    '<t:AlternateId Format="EwsId" Id="DUMMY" Mailbox="DUMMY"/></m:SourceIds></m:ConvertId>'
)
RESOLVE = (
    '<m:ResolveNames ReturnFullContactData="false"><m:UnresolvedEntry>{}</m:UnresolvedEntry></m:ResolveNames>'
)
TIMEZONES = (
    '<m:GetServerTimeZones ReturnFullTimeZoneData="false"><m:Ids><t:Id>{}</t:Id></m:Ids>'
    "</m:GetServerTimeZones>"
)


def version_info(response: requests.Response) -> dict[str, str]:
    info = etree.fromstring(response.content).find(f"{SOAP}Header/{T}ServerVersionInfo")
    assert info is not None, response.text
    return dict(info.attrib)


@pytest.fixture(autouse=True)
def fresh_protocols():
    Protocol.clear_cache()
    yield
    Protocol.clear_cache()


def test_version_header_is_identical_on_every_response(emulator):
    valid_requests = [
        envelope(CONVERT_DUMMY),  # error response message
        envelope(RESOLVE.format("bob")),  # success
        envelope(RESOLVE.format("nobody-like-this")),  # ErrorNameResolutionNoResults
        envelope(TIMEZONES.format("No Such Zone")),  # request-level error
        envelope(RESOLVE.format("bob"), version=None),  # no RequestServerVersion: Exchange2007
    ]
    # Requests the schema rejects go to a server outside the session's schema validation.
    invalid_requests = [
        envelope(RESOLVE.format("bob"), version="V2099_01_01"),  # SOAP fault (unknown version)
        envelope("<m:NoSuchOperation/>"),  # SOAP fault (not emulated)
    ]
    seen = []
    with EmulatorServer() as unvalidated:
        for url, bodies in ((emulator.ews_url, valid_requests), (unvalidated.ews_url, invalid_requests)):
            for body in bodies:
                response = requests.post(url, data=body, headers=HEADERS, auth=ALICE)
                assert response.headers["Content-Type"].startswith("text/xml")
                seen.append(version_info(response))
    assert seen[0] == {
        "MajorVersion": "15",
        "MinorVersion": "1",
        "MajorBuildNumber": "2507",
        "MinorBuildNumber": "6",
        "Version": "V2017_07_11",
    }
    assert all(info == seen[0] for info in seen)


def test_exchangelib_detects_exchange_2016(emulator):
    config = Configuration(
        service_endpoint=emulator.ews_url, credentials=Credentials(*ALICE), auth_type=BASIC
    )
    version = Protocol(config=config).version
    assert (version.build.major_version, version.build.minor_version) == (15, 1)
    assert version.api_version == "Exchange2016"


def test_newer_request_version_gets_the_soap_fault():
    with EmulatorServer(ews_version="2013", message_observer=observe_message) as emu:
        response = requests.post(
            emu.ews_url, data=envelope(RESOLVE.format("bob")), headers=HEADERS, auth=ALICE
        )
        assert response.status_code == 500
        fault = etree.fromstring(response.content).find(f"{SOAP}Body/{SOAP}Fault")
        assert fault.findtext("faultcode").endswith(":ErrorInvalidServerVersion")
        assert version_info(response)["MinorVersion"] == "0"
        older = requests.post(
            emu.ews_url, data=envelope(RESOLVE.format("bob"), "Exchange2010_SP2"), headers=HEADERS, auth=ALICE
        )
        assert older.status_code == 200


def test_exchangelib_negotiates_down_to_exchange_2013():
    # Not schema-validated: exchangelib's probing sends RequestServerVersion values (Exchange2015_SP1)
    # that the 2016-era schema does not list; refusing them is the point of this test.
    with EmulatorServer(ews_version="2013") as emu:
        config = Configuration(service_endpoint=emu.ews_url, credentials=Credentials(*ALICE), auth_type=BASIC)
        protocol = Protocol(config=config)
        version = protocol.version  # Exchange2016 and Exchange2015* are refused, Exchange2013_SP1 works
        assert (version.build.major_version, version.build.minor_version) == (15, 0)
        assert version.api_version.startswith("Exchange2013")
        assert [m.email_address for m in protocol.resolve_names(["carol"])] == ["carol@example.com"]
        assert emu.stats()["operations"]["ConvertId"] >= 3  # one try per refused version, then success


@pytest.mark.parametrize(("name", "minor"), [("2016", "1"), ("2019", "2")])
def test_ews_version_option_sets_the_build(name, minor):
    with EmulatorServer(ews_version=name, message_observer=observe_message) as emu:
        response = requests.post(
            emu.ews_url, data=envelope(RESOLVE.format("bob")), headers=HEADERS, auth=ALICE
        )
        assert version_info(response)["MinorVersion"] == minor


def test_ews_path_is_case_insensitive(emulator):
    url = emulator.ews_url.replace("/EWS/Exchange.asmx", "/ews/EXCHANGE.ASMX")
    response = requests.post(url, data=envelope(RESOLVE.format("bob")), headers=HEADERS, auth=ALICE)
    assert response.status_code == 200


@pytest.mark.parametrize(
    "body", [b"<not-closed", b'<!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><x>&e;</x>', b"<x/>"]
)
def test_malformed_or_hostile_xml_is_refused(emulator, body):
    response = requests.post(emulator.ews_url, data=body, headers=HEADERS, auth=ALICE)
    assert response.status_code == 400
    assert b"root:" not in response.content


def test_a_failing_handler_answers_a_fault_with_the_version_header(emulator, monkeypatch):
    def broken(ctx, request):
        raise RuntimeError("bug")

    monkeypatch.setitem(OPERATIONS, "ResolveNames", broken)
    response = requests.post(
        emulator.ews_url, data=envelope(RESOLVE.format("bob")), headers=HEADERS, auth=ALICE
    )
    assert response.status_code == 500
    assert b"ErrorInternalServerError" in response.content and b"bug" not in response.content
    assert version_info(response)["MajorBuildNumber"] == "2507"
