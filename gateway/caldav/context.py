"""Per-application CalDAV settings shared by the method, report and free/busy handlers."""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

from .auth import BasicAuth
from .backend import Backend


@dataclass(frozen=True)
class DavConfig:
    backend: Backend
    auth: BasicAuth
    max_resource_size: int = 1_000_000
    freebusy_max_days: int = 366


CONFIG: web.AppKey[DavConfig] = web.AppKey("caldav_config", DavConfig)
