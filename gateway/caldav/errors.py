"""Protocol errors and the mapping of backend exceptions to HTTP answers (RFC 4918 §16, RFC 4791 §1.3)."""

from __future__ import annotations

from aiohttp import web
from lxml import etree

from . import backend as b
from .xml import cal, dav, error_body, href


class DavError(Exception):
    """An answer other than success: status, a readable sentence, optionally a precondition element."""

    def __init__(
        self,
        status: int,
        message: str,
        precondition: str | None = None,
        *,
        children: tuple[etree._Element, ...] = (),
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.precondition = precondition
        self.children = children
        self.headers = headers or {}

    def response(self) -> web.Response:
        """The HTTP response: a ``DAV:error`` body when a precondition applies, else plain text."""
        if self.precondition:
            return web.Response(
                status=self.status,
                body=error_body(self.precondition, self.message, self.children),
                content_type="application/xml",
                charset="utf-8",
                headers=self.headers,
            )
        return web.Response(
            status=self.status, text=self.message + "\n", content_type="text/plain", headers=self.headers
        )


def from_backend(exc: b.BackendError, calendar_url: str = "") -> DavError:
    """Translate a backend exception into the status and precondition a client expects."""
    message = str(exc) or type(exc).__name__
    match exc:
        case b.NotFound():
            return DavError(404, message)
        case b.PreconditionFailed():
            return DavError(412, message)
        case b.Forbidden():
            return DavError(403, message, exc.precondition or dav("need-privileges"))
        case b.InvalidCalendarData():
            return DavError(exc.status, message, exc.precondition)
        case b.UidConflict():
            # RFC 4791 §5.3.2.1: no-uid-conflict names the resource already holding the UID.
            return DavError(
                403, message, cal("no-uid-conflict"), children=(href(calendar_url + exc.existing_name),)
            )
        case b.InvalidSyncToken():
            return DavError(403, message, dav("valid-sync-token"))
        case b.InsufficientStorage():
            return DavError(507, message)
        case b.BackendUnavailable():
            return DavError(503, message, headers={"Retry-After": str(exc.retry_after)})
    return DavError(500, "The calendar store failed.")
