"""The booking API's answers other than success: JSON ``{"error": code, "message": sentence}`` (the
admin API's shape), the code derived from the status unless a finer one is given.

Backend errors get the status the CalDAV layer gives them (:func:`gateway.caldav.errors.from_backend`,
the one mapping); 401/429 from authentication keep their challenge headers; anything unexpected is a
bare 500 with a request id, logged.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable

from aiohttp import web

from gateway.caldav.backend import BackendError
from gateway.caldav.errors import DavError, from_backend

from .slots import BadQuestion

log = logging.getLogger(__name__)


CODES = {
    400: "invalid_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    409: "conflict",
    412: "conflict",
    422: "unprocessable",
    429: "too_many_failures",
    500: "internal_error",
    503: "exchange_unavailable",
    507: "insufficient_storage",
}


def error(
    status: int, message: str, code: str | None = None, headers: dict[str, str] | None = None
) -> web.Response:
    """The JSON error answer."""
    body = {"error": code or CODES.get(status, "error"), "message": message}
    return web.json_response(body, status=status, headers=headers)


class ApiError(Exception):
    """An answer with ``status``, a code for programs and a sentence a person can act on."""

    def __init__(
        self, status: int, message: str, code: str | None = None, *, retry_after: int | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.headers = {"Retry-After": str(retry_after)} if retry_after else {}

    def response(self) -> web.Response:
        return error(self.status, self.message, self.code, self.headers)


async def answering(
    request: web.Request, handler: Callable[[], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Run ``handler``; every error becomes a JSON answer."""
    try:
        return await handler()
    except ApiError as exc:
        return exc.response()
    except BadQuestion as exc:
        return ApiError(exc.status, str(exc)).response()
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        message = (exc.text or exc.reason or "").strip()
        return error(exc.status, message, headers=_kept(exc.headers))
    except DavError as exc:
        return error(exc.status, exc.message, headers=exc.headers)
    except BackendError as exc:
        dav = from_backend(exc)
        return error(dav.status, dav.message, headers=dav.headers)
    except Exception:
        rid = uuid.uuid4().hex[:12]
        log.exception("booking API request %s %s failed (request id %s)", request.method, request.path, rid)
        return error(500, f"Internal server error (request id {rid}).")


def _kept(headers: object) -> dict[str, str]:
    names = ("WWW-Authenticate", "Retry-After")
    return {name: headers[name] for name in names if name in headers}  # type: ignore[index,operator]
