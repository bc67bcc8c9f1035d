"""A one-line in-process DAV request helper over aiohttp's test client.

r = await dav("PROPFIND", "/dav/", PROPFIND_BODY, depth="0")
assert r.status == 207 and r.prop("/dav/", "{DAV:}current-user-principal") is not None
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from aiohttp import encode_basic_auth, web
from aiohttp.test_utils import TestClient
from lxml import etree
from multidict import CIMultiDictProxy

from gateway.caldav.app import setup_caldav

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "dav"
DAV = "{DAV:}"


def fixture(name: str) -> str:
    """A request body recorded from a real client, from tests/fixtures/dav/."""
    return (FIXTURES / name).read_text(encoding="utf-8")


@dataclass
class DavResponse:
    status: int
    headers: CIMultiDictProxy[str]
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode("utf-8")

    @property
    def xml(self) -> etree._Element:
        return etree.fromstring(self.body)

    def responses(self) -> dict[str, etree._Element]:
        """``DAV:response`` elements of a multistatus by href."""
        return {r.findtext(f"{DAV}href"): r for r in self.xml.iter(f"{DAV}response")}

    def prop(self, href: str, name: str) -> etree._Element | None:
        """The value element of a property found (200) for href, or None."""
        for propstat in self.responses()[href].findall(f"{DAV}propstat"):
            if " 200 " in (propstat.findtext(f"{DAV}status") or ""):
                found = propstat.find(f"{DAV}prop/{name}")
                if found is not None:
                    return found
        return None

    def status_of(self, href: str, name: str) -> int | None:
        """The propstat status code of one property for href."""
        for propstat in self.responses()[href].findall(f"{DAV}propstat"):
            if propstat.find(f"{DAV}prop/{name}") is not None:
                return int((propstat.findtext(f"{DAV}status") or "").split()[1])
        return None

    def hrefs(self, name: str) -> list[str]:
        """Texts of DAV:href children of the property, across all responses."""
        return [h.text for r in self.xml.iter(name) for h in r.iter(f"{DAV}href")]


class Dav:
    """Callable: ``await dav(method, path, body=None, depth=None, auth=(user, pw) | False, headers=...)``."""

    def __init__(self, client: TestClient, username: str, password: str) -> None:
        self.client = client
        self.auth = (username, password)

    async def __call__(
        self,
        method: str,
        path: str,
        body: str | bytes | None = None,
        *,
        depth: str | None = None,
        auth: tuple[str, str] | bool = True,
        content_type: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> DavResponse:
        hdrs = dict(headers or {})
        if depth is not None:
            hdrs["Depth"] = depth
        if body is not None:
            hdrs.setdefault("Content-Type", content_type or "application/xml; charset=utf-8")
        chosen = self.auth if auth is True else auth
        if chosen:
            hdrs["Authorization"] = encode_basic_auth(*chosen)
        data = body.encode("utf-8") if isinstance(body, str) else body
        async with self.client.request(method, path, data=data, headers=hdrs, allow_redirects=False) as resp:
            return DavResponse(resp.status, resp.headers, await resp.read())


def build_app(backend: object, authenticator: object, **options: int) -> web.Application:
    """An application with only the CalDAV routes."""
    app = web.Application()
    setup_caldav(app, backend, authenticator, **options)  # type: ignore[arg-type]
    return app
