"""SOAP Autodiscover (``GetUserSettings``, MS-OXWSADISC) with per-domain behaviour from the seed.

The seed's ``autodiscover`` object maps an e-mail domain to what the server answers for it::

    {"example.com": {"mode": "success"},                       # the default for any domain
     "old.example": {"mode": "redirect_address", "target": "example.com"},   # or a full address
     "moved.example": {"mode": "redirect_url", "url": "https://mail.example.com/autodiscover/autodiscover.svc"},
     "nowhere.example": {"mode": "none"}}                       # HTTP 404: no Autodiscover here

``success`` may carry ``ews_url`` to advertise another EWS URL than the emulator's own. An
address without a mailbox gets the ``InvalidUser`` user error.
"""

from __future__ import annotations

from dataclasses import dataclass

from lxml import etree
from lxml.builder import ElementMaker

from gateway.ews.emulator.directory import Mailbox
from gateway.ews.emulator.soap import SOAP_NS, XSI_NS, BadRequest
from gateway.ews.emulator.state import EmulatorState

A_NS = "http://schemas.microsoft.com/exchange/2010/Autodiscover"
WSA_NS = "http://www.w3.org/2005/08/addressing"
_A = ElementMaker(namespace=A_NS, nsmap={None: A_NS, "i": XSI_NS})
_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False, load_dtd=False)

# What an Exchange 2013+ server lists in EwsSupportedSchemas (exchangelib picks the newest).
_SUPPORTED_SCHEMAS = {
    "2013": "Exchange2007, Exchange2007_SP1, Exchange2010, Exchange2010_SP1, Exchange2010_SP2, "
    "Exchange2013, Exchange2013_SP1",
}
_SUPPORTED_SCHEMAS["2016"] = _SUPPORTED_SCHEMAS["2013"] + ", Exchange2016"
_SUPPORTED_SCHEMAS["2019"] = _SUPPORTED_SCHEMAS["2016"]


@dataclass(frozen=True)
class AutodiscoverQuery:
    users: list[str]
    settings: list[str]

    @property
    def domain(self) -> str:
        return self.users[0].rpartition("@")[2].lower() if self.users else ""


def parse_request(data: bytes) -> AutodiscoverQuery:
    """Read the users and requested settings of a ``GetUserSettingsRequestMessage``."""
    try:
        root = etree.fromstring(data, _PARSER)
    except etree.XMLSyntaxError as exc:
        raise BadRequest(f"malformed XML: {exc}") from None
    message = root.find(f"{{{SOAP_NS}}}Body/{{{A_NS}}}GetUserSettingsRequestMessage")
    if message is None:
        raise BadRequest("expected a SOAP GetUserSettingsRequestMessage")
    users = [
        (m.text or "").strip()
        for m in message.iterfind(f".//{{{A_NS}}}Users/{{{A_NS}}}User/{{{A_NS}}}Mailbox")
    ]
    settings = [
        (s.text or "").strip() for s in message.iterfind(f".//{{{A_NS}}}RequestedSettings/{{{A_NS}}}Setting")
    ]
    if not users:
        raise BadRequest("GetUserSettings without a user")
    return AutodiscoverQuery(users=users, settings=settings)


def mode_for(state: EmulatorState, query: AutodiscoverQuery) -> str:
    """How the server behaves for the query's domain (``success`` unless the seed says otherwise)."""
    return state.autodiscover.get(query.domain, {}).get("mode", "success")  # checked by EmulatorState


def respond(state: EmulatorState, query: AutodiscoverQuery, ews_url: str) -> bytes:
    """The ``GetUserSettingsResponseMessage`` envelope for ``query``."""
    config = state.autodiscover.get(query.domain, {})
    responses = _A.UserResponses()
    for user in query.users:
        responses.append(_user_response(state, config, user, query.settings, config.get("ews_url", ews_url)))
    message = _A.GetUserSettingsResponseMessage(
        _A.Response(_A.ErrorCode("NoError"), _A.ErrorMessage(), responses)
    )
    return _envelope(state, message)


def _user_response(
    state: EmulatorState, config: dict, user: str, wanted: list[str], ews_url: str
) -> etree._Element:
    mode = config.get("mode", "success")
    if mode == "redirect_address":
        target = config["target"]
        address = target if "@" in target else f"{user.partition('@')[0]}@{target}"
        return _redirect("RedirectAddress", "Redirection address.", address)
    if mode == "redirect_url":
        return _redirect("RedirectUrl", "Redirection URL.", config["url"])
    mailbox = state.directory.get(user)
    if mailbox is None:
        return _A.UserResponse(
            _A.ErrorCode("InvalidUser"),
            _A.ErrorMessage(f"Invalid user: '{user}'"),
            _A.UserSettingErrors(),
            _A.UserSettings(),
        )
    values = _settings(state, mailbox, ews_url)
    settings = _A.UserSettings()
    errors = _A.UserSettingErrors()
    for name in wanted:
        if name in values:
            setting = _A.UserSetting(_A.Name(name), _A.Value(values[name]))
            setting.set(f"{{{XSI_NS}}}type", "StringSetting")
            settings.append(setting)
        else:
            errors.append(
                _A.UserSettingError(
                    _A.ErrorCode("SettingIsNotAvailable"),
                    _A.ErrorMessage(f"User setting '{name}' is not available."),
                    _A.SettingName(name),
                )
            )
    return _A.UserResponse(_A.ErrorCode("NoError"), _A.ErrorMessage("No error."), errors, settings)


def _settings(state: EmulatorState, mailbox: Mailbox, ews_url: str) -> dict[str, str]:
    version = state.server_version
    return {
        "UserDisplayName": mailbox.display_name,
        "UserDN": mailbox.legacy_dn,
        "UserDeploymentId": "2b1a3c6e-0000-4000-8000-656d756c6174",
        "AutoDiscoverSMTPAddress": mailbox.email,
        "InternalEwsUrl": ews_url,
        "ExternalEwsUrl": ews_url,
        "EwsSupportedSchemas": _SUPPORTED_SCHEMAS[version.name],
        "CasVersion": f"{version.major}.{version.minor}.{version.major_build}.{version.minor_build}",
    }


def _redirect(code: str, text: str, target: str) -> etree._Element:
    return _A.UserResponse(
        _A.ErrorCode(code),
        _A.ErrorMessage(text),
        _A.RedirectTarget(target),
        _A.UserSettingErrors(),
        _A.UserSettings(),
    )


def _envelope(state: EmulatorState, message: etree._Element) -> bytes:
    version = state.server_version
    envelope = etree.Element(f"{{{SOAP_NS}}}Envelope", nsmap={"s": SOAP_NS, "a": WSA_NS})
    header = etree.SubElement(envelope, f"{{{SOAP_NS}}}Header")
    action = etree.SubElement(header, f"{{{WSA_NS}}}Action")
    action.set(f"{{{SOAP_NS}}}mustUnderstand", "1")
    action.text = (
        "http://schemas.microsoft.com/exchange/2010/Autodiscover/Autodiscover/GetUserSettingsResponse"
    )
    info = etree.SubElement(header, f"{{{A_NS}}}ServerVersionInfo", nsmap={"h": A_NS})
    for name, value in (
        ("MajorVersion", version.major),
        ("MinorVersion", version.minor),
        ("MajorBuildNumber", version.major_build),
        ("MinorBuildNumber", version.minor_build),
        ("Version", version.version),
    ):
        etree.SubElement(info, f"{{{A_NS}}}{name}").text = str(value)
    etree.SubElement(envelope, f"{{{SOAP_NS}}}Body").append(message)
    return etree.tostring(envelope, xml_declaration=True, encoding="utf-8")
