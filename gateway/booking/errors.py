"""The booking API's answers other than success: JSON ``{"error": sentence}`` with the status.

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


class ApiError(Exception):
    """An answer with ``status`` and a sentence a person can act on."""

    def __init__(self, status: int, message: str, *, retry_after: int | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = {"Retry-After": str(retry_after)} if retry_after else {}

    def response(self) -> web.Response:
        return web.json_response({"error": self.message}, status=self.status, headers=self.headers)


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
        return web.json_response({"error": message}, status=exc.status, headers=_kept(exc.headers))
    except DavError as exc:
        return web.json_response({"error": exc.message}, status=exc.status, headers=exc.headers)
    except BackendError as exc:
        dav = from_backend(exc)
        return web.json_response({"error": dav.message}, status=dav.status, headers=dav.headers)
    except Exception:
        rid = uuid.uuid4().hex[:12]
        log.exception("booking API request %s %s failed (request id %s)", request.method, request.path, rid)
        return web.json_response({"error": f"Internal server error (request id {rid})."}, status=500)


def _kept(headers: object) -> dict[str, str]:
    names = ("WWW-Authenticate", "Retry-After")
    return {name: headers[name] for name in names if name in headers}  # type: ignore[index,operator]
