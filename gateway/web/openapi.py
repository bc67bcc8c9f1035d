"""``GET /api/v1/openapi.json``: the OpenAPI 3.1 description of the JSON API and the free/busy URLs.

The document is ``openapi.json`` beside this module, written by hand; ``tests/web/test_openapi.py``
checks it is valid OpenAPI, that it names exactly the routes served under ``/api/`` and
``/freebusy/``, and that real answers match its schemas. Served without credentials: it holds
nothing about any user.
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any

from aiohttp import web

from gateway.web.services import SERVICES_KEY

PATH = "/api/v1/openapi.json"


@cache
def document() -> dict[str, Any]:
    """The description as shipped in the package."""
    return json.loads(resources.files("gateway.web").joinpath("openapi.json").read_text(encoding="utf-8"))


async def openapi(request: web.Request) -> web.Response:
    """The description, its ``servers`` set to the URL clients use (the configured public one, else
    the one this request came by)."""
    origin = f"{request.scheme}://{request.host}"
    server = request.app[SERVICES_KEY].config.server.public_base_url(origin)
    return web.json_response({**document(), "servers": [{"url": server}]})


def setup_openapi(app: web.Application) -> None:
    app.router.add_get(PATH, openapi)
