"""One authenticated DAV request: who asks, for which resource, and helpers to read it."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field

from aiohttp import web
from lxml import etree

from .backend import Backend, Principal
from .context import DavConfig
from .errors import DavError
from .inbox import InboxRouting
from .resources import Resource
from .xml import MAX_XML_BODY, Multistatus, XmlError, parse

# From this many responses on, a multistatus is built and serialised in a worker thread: a month view's
# 115 objects are tens of milliseconds of CPU that would otherwise hold the event loop, and so every
# other client's request, meanwhile (docs/PERFORMANCE.md). Smaller answers are not worth a thread hop.
OFF_LOOP_RESPONSES = 16
# The same for fewer but large objects: filtering or expanding them parses every one, ~0.1 s for 800 KB.
OFF_LOOP_BYTES = 131_072


@dataclass
class Call:
    request: web.Request
    config: DavConfig
    principal: Principal
    resource: Resource
    _routed: InboxRouting | None = field(default=None, init=False, repr=False)

    @property
    def backend(self) -> Backend:
        """The backend, with the scheduling inbox answered as the calendar ``inbox`` (:mod:`.inbox`)."""
        if self._routed is None:
            self._routed = InboxRouting(self.config.backend)
        return self._routed  # type: ignore[return-value]  # a Backend through delegation

    async def body(self, limit: int = MAX_XML_BODY) -> bytes:
        """The request body, refusing more than ``limit`` bytes with 413 before reading it all."""
        return await read_limited(self.request, limit)

    async def xml(self, required: bool = False) -> etree._Element | None:
        """The parsed XML body, or None when empty and not required; bad XML is a 400."""
        data = await self.body()
        if not data.strip():
            if required:
                raise DavError(400, f"{self.request.method} needs an XML request body.")
            return None
        try:
            return parse(data)
        except XmlError as exc:
            raise DavError(400, str(exc)) from None

    def multistatus(self, ms: Multistatus) -> web.Response:
        """A 207 answer; says when ``return=minimal`` shaped it (RFC 7240 §3)."""
        return self._multistatus_response(ms.to_bytes())

    async def built_multistatus(
        self, build: Callable[[], Multistatus], responses: int, data_bytes: int = 0
    ) -> web.Response:
        """:meth:`multistatus` of what ``build`` returns, in a worker thread when it holds ``responses``
        of at least :data:`OFF_LOOP_RESPONSES` or objects of :data:`OFF_LOOP_BYTES` of iCalendar text
        (``build`` must only read the request)."""
        if responses < OFF_LOOP_RESPONSES and data_bytes < OFF_LOOP_BYTES:
            return self.multistatus(build())
        return self._multistatus_response(await asyncio.to_thread(lambda: build().to_bytes()))

    def _multistatus_response(self, body: bytes) -> web.Response:
        headers = {"Preference-Applied": "return=minimal"} if self.minimal else {}
        return web.Response(
            status=207, body=body, content_type="application/xml", charset="utf-8", headers=headers
        )

    @property
    def minimal(self) -> bool:
        """RFC 7240 ``Prefer: return-minimal`` or the older ``Brief: t``: omit 404 propstats."""
        prefer = self.request.headers.get("Prefer", "").replace(" ", "").lower()
        return "return=minimal" in prefer or self.request.headers.get("Brief", "").lower() == "t"


async def read_limited(request: web.Request, limit: int, precondition: str | None = None) -> bytes:
    """Read at most ``limit`` bytes of body; a larger one is a 413."""
    too_large = DavError(413, f"The request body is larger than the {limit} bytes accepted.", precondition)
    if request.content_length is not None and request.content_length > limit:
        raise too_large
    chunks: list[bytes] = []
    size = 0
    while chunk := await request.content.read(65536):
        size += len(chunk)
        if size > limit:
            raise too_large
        chunks.append(chunk)
    return b"".join(chunks)


def strip_etag(value: str) -> str:
    """An ETag from a header, without ``W/`` and quotes (backend ETags carry none)."""
    value = value.strip()
    value = value.removeprefix("W/")
    return value[1:-1] if len(value) >= 2 and value[0] == value[-1] == '"' else value
