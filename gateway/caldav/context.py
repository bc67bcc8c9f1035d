"""Per-application CalDAV settings shared by the method, report and free/busy handlers."""

from __future__ import annotations

from dataclasses import dataclass, field

from aiohttp import web

from .auth import BasicAuth
from .backend import Backend
from .limits import Limits


@dataclass(frozen=True)
class DavConfig:
    backend: Backend
    auth: BasicAuth
    freebusy_max_days: int = 366
    limits: Limits = field(default_factory=Limits)

    @property
    def max_resource_size(self) -> int:
        return self.limits.max_resource_size


CONFIG: web.AppKey[DavConfig] = web.AppKey("caldav_config", DavConfig)
