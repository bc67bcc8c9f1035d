"""What the gateway keeps about calendar collections themselves, beside their items' index
(gateway/ews/index.py): the URL segment a client chose for a folder (its alias, RFC 4791 §5.3.1
MKCALENDAR) and the properties Exchange has no field for (RFC 4918 §9.2 PROPPATCH). Every change is
announced to the other processes of the database (gateway/store/notify.py), which list anew.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.store.locks import Locks
from gateway.store.notify import FOLDERS, PROPERTIES, Invalidations
from gateway.store.schema import calendar_alias, calendar_property

_ALIASES = sa.select(calendar_alias).where(calendar_alias.c.account_id == sa.bindparam("account"))
_PROPERTIES = sa.select(calendar_property).where(calendar_property.c.account_id == sa.bindparam("account"))


class CollectionRecords:
    """What the gateway keeps about calendar collections themselves: the URL segment a client chose
    (aliases) and the properties Exchange has no field for."""

    def __init__(
        self, engine: AsyncEngine, locks: Locks | None = None, invalidations: Invalidations | None = None
    ) -> None:
        self._engine = engine
        # Shared with every process of the database when given (Database.locks, Database.invalidations);
        # else this process's own.
        self._locks = locks or Locks()
        self.invalidations = invalidations or Invalidations(engine, local=True)

    async def add_alias(self, account_id: str, calendar_id: str, folder_id: str) -> None:
        async with self._engine.begin() as conn:
            await conn.execute(
                calendar_alias.insert().values(
                    account_id=account_id, calendar_id=calendar_id, folder_id=folder_id
                )
            )
            await self.invalidations.announce(conn, FOLDERS, account_id)  # every replica lists it anew
        self.invalidations.drop(FOLDERS, account_id)

    async def aliases(self, account_id: str) -> dict[str, str]:
        """folder id → the calendar id a client chose for it."""
        async with self._engine.connect() as conn:
            return {
                r.folder_id: r.calendar_id
                for r in (await conn.execute(_ALIASES, {"account": account_id})).all()
            }

    async def drop_alias(self, account_id: str, calendar_id: str) -> None:
        async with self._engine.begin() as conn:
            await conn.execute(
                calendar_alias.delete().where(
                    (calendar_alias.c.account_id == account_id)
                    & (calendar_alias.c.calendar_id == calendar_id)
                )
            )
            await self.invalidations.announce(conn, FOLDERS, account_id)
        self.invalidations.drop(FOLDERS, account_id)

    async def properties(self, account_id: str) -> dict[str, dict[str, str]]:
        """calendar id → {property Clark name: value}."""
        found: dict[str, dict[str, str]] = {}
        async with self._engine.connect() as conn:
            for r in (await conn.execute(_PROPERTIES, {"account": account_id})).all():
                found.setdefault(r.calendar_id, {})[r.name] = r.value
        return found

    async def set_properties(self, account_id: str, calendar_id: str, values: dict[str, str | None]) -> None:
        """Store (or, for None, remove) collection properties."""
        async with self._engine.begin() as conn:
            for name, value in values.items():
                key = (
                    (calendar_property.c.account_id == account_id)
                    & (calendar_property.c.calendar_id == calendar_id)
                    & (calendar_property.c.name == name)
                )
                await conn.execute(calendar_property.delete().where(key))
                if value is not None:
                    await conn.execute(
                        calendar_property.insert().values(
                            account_id=account_id, calendar_id=calendar_id, name=name, value=value
                        )
                    )
            await self.invalidations.announce(conn, PROPERTIES, account_id)
        self.invalidations.drop(PROPERTIES, account_id)

    async def drop_properties(self, account_id: str, calendar_id: str) -> None:
        """Remove every stored property of a calendar (it was deleted)."""
        async with self._engine.begin() as conn:
            await conn.execute(
                calendar_property.delete().where(
                    (calendar_property.c.account_id == account_id)
                    & (calendar_property.c.calendar_id == calendar_id)
                )
            )
            await self.invalidations.announce(conn, PROPERTIES, account_id)
        self.invalidations.drop(PROPERTIES, account_id)
