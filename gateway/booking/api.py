"""The availability and booking API for scheduling tools (JSON; described in gateway/web/openapi.json).

- ``GET /api/v1/users/{user}/slots?start&end&duration&tz[&step&attendee…&hours&days]``: the free
  slots of one user: the window less busy time of every calendar they check for conflicts (all their
  Exchange accounts), within their mailbox's working hours unless ``hours``/``days`` override them
  (``hours=any``: none), less the other attendees' busy time, in the caller's time zone ``tz``.
- ``POST /api/v1/users/{user}/bookings`` (JSON body; ``Idempotency-Key`` header): the meeting is
  created in the calendar chosen for new events, with the invitee invited by Exchange; 409 when the
  time is no longer free (asked of Exchange, not the cache, inside the user's booking lock).
- ``DELETE /api/v1/users/{user}/bookings/{id}``: the meeting is cancelled (Exchange tells the invitee).

Authentication is the user's API token scoped to free/busy and booking (``Authorization: Bearer``), or
their gateway name and app password (HTTP Basic, as CalDAV); another user's name in the path is 404, as
in CalDAV. A booking is never made twice for one Idempotency-Key: a retry after a lost answer finds the
event by the UID its reservation fixed. Errors are JSON ``{"error": code, "message": sentence}`` with 400 (malformed),
404 (unknown user, attendee or booking), 409 (not free, or the key is being used right now), 422 (well
formed but impossible: window or duration out of bounds, a meeting in the past, outside working hours,
too many attendees, a key reused for another request); nothing is written for any of them.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from dataclasses import replace
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from aiohttp import web

from gateway.caldav.backend import Availability, Booked, Booking, FreeBusyResult, NotFound, Principal
from gateway.caldav.context import CONFIG, DavConfig
from gateway.caldav.freebusy import parse_moment
from gateway.caldav.resources import calendar_url
from gateway.store.locks import Locks

from . import slots
from .cache import AvailabilityCache
from .errors import ApiError, answering
from .locks import booking_lock
from .store import BookingStore, KeyInUse, StoredBooking, booking_uid

log = logging.getLogger(__name__)

MAX_WINDOW_DAYS = 62
MAX_ATTENDEES = 20
DEFAULT_STEP_MINUTES = 15
MAX_TEXT = 2000


class BookingService:
    """What the handlers share: the CalDAV layer's backend and authentication, the cache, the table."""

    def __init__(self, dav: DavConfig, store: BookingStore, cache: AvailabilityCache, locks: Locks) -> None:
        self.dav = dav
        self.store = store
        self.cache = cache
        self.locks = locks

    async def principal(self, request: web.Request) -> Principal:
        principal = await self.dav.auth.principal(request, tokens=True)
        if request.match_info["user"] != principal.username:
            raise ApiError(404, f"There is no user {request.match_info['user']!r} here.")
        return principal

    async def availability(
        self, principal: Principal, start: datetime, end: datetime, attendees: tuple[str, ...]
    ) -> Availability:
        """Through the cache: identical questions within its time cost Exchange one answer."""
        return await self.cache.get(
            principal.user_id,
            (start, end, attendees),
            lambda: self.dav.backend.availability(principal, start, end, attendees),
        )


BOOKING_KEY = web.AppKey("booking", BookingService)


def setup_booking(
    app: web.Application, store: BookingStore, cache_seconds: float, locks: Locks | None = None
) -> None:
    """The routes; call after ``setup_caldav`` (the backend and authentication are the CalDAV layer's).
    ``locks``: the database's named locks (shared by the processes of one PostgreSQL); in-process if None."""
    service = BookingService(app[CONFIG], store, AvailabilityCache(cache_seconds), locks or Locks())
    app[BOOKING_KEY] = service
    app.router.add_get("/api/v1/users/{user}/slots", free_slots)
    app.router.add_post("/api/v1/users/{user}/bookings", book)
    app.router.add_delete("/api/v1/users/{user}/bookings/{booking_id}", cancel)


# --- the questions --------------------------------------------------------------------------------


def _zone(name: str | None) -> tzinfo:
    if not name:
        return UTC
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, TypeError):
        raise ApiError(
            400, f"{name!r} is not a time zone name (use an IANA name such as Europe/Berlin)."
        ) from None


def _minutes(value: object, what: str) -> timedelta:
    try:
        return timedelta(minutes=int(str(value)))
    except (TypeError, ValueError):
        raise ApiError(400, f"{what} must be a whole number of minutes, not {value!r}.") from None


def _moment(value: object, what: str) -> datetime:
    if not isinstance(value, str) or not value.strip():
        raise ApiError(400, f"{what} is required: a date-time such as 2025-01-31T09:00:00+01:00.")
    try:
        return parse_moment(value)
    except Exception:  # DavError: its sentence names the value
        raise ApiError(
            400, f"{what}={value!r} is not a date-time (e.g. 2025-01-31T09:00:00+01:00)."
        ) from None


def _check_window(start: datetime, end: datetime, duration: timedelta) -> None:
    if end <= start:
        raise ApiError(422, "The window ends before it starts.")
    if end - start > timedelta(days=MAX_WINDOW_DAYS):
        raise ApiError(422, f"The window is longer than {MAX_WINDOW_DAYS} days; ask for a shorter one.")
    if duration <= timedelta(0):
        raise ApiError(422, "The meeting duration must be at least one minute.")
    if duration > end - start:
        raise ApiError(422, "The meeting is longer than the window it should fit in.")


def _attendees(values: list[str]) -> tuple[str, ...]:
    found = tuple(dict.fromkeys(v.strip().lower() for v in values if v.strip()))
    if len(found) > MAX_ATTENDEES:
        raise ApiError(422, f"At most {MAX_ATTENDEES} other attendees can be asked at once.")
    for address in found:
        if "@" not in address:
            raise ApiError(400, f"{address!r} is not an e-mail address.")
    return found


def _attendee_busy(results: list[FreeBusyResult]) -> list[slots.Span]:
    """Every attendee's busy time; an attendee whose free time cannot be known stops the question."""
    spans: list[slots.Span] = []
    for result in results:
        who = result.attendee.removeprefix("mailto:")
        if result.status == "3.7":
            raise ApiError(404, f"Exchange knows no calendar user {who}.")
        if result.status == "3.8":
            raise ApiError(403, f"Exchange does not let you see the free/busy time of {who}.")
        if result.status != "2.0":
            raise ApiError(503, f"Exchange could not tell the free/busy time of {who}.", retry_after=30)
        if result.no_data:
            raise ApiError(
                422, f"Exchange has no free/busy information for {who}: their free time is not known."
            )
        spans += slots.busy_spans(result.periods)
    return spans


def _working(
    availability: Availability,
    hours: str | None,
    days: str | None,
    zone: tzinfo,
    start: datetime,
    end: datetime,
) -> list[slots.Span] | None:
    chosen = slots.override(hours, days, zone)
    if chosen is False:
        chosen = availability.working_hours
    return None if chosen is None else slots.working_spans(chosen, start, end)


def _iso(moment: datetime, zone: tzinfo) -> str:
    return moment.astimezone(zone).isoformat(timespec="seconds")


# --- the handlers ---------------------------------------------------------------------------------


async def free_slots(request: web.Request) -> web.StreamResponse:
    service = request.app[BOOKING_KEY]

    async def run() -> web.Response:
        principal = await service.principal(request)
        query = request.query
        zone = _zone(query.get("tz"))
        start, end = _moment(query.get("start"), "start"), _moment(query.get("end"), "end")
        duration = _minutes(query.get("duration"), "duration")
        _check_window(start, end, duration)
        default_step = max(timedelta(minutes=5), min(duration, timedelta(minutes=DEFAULT_STEP_MINUTES)))
        step = _minutes(query["step"], "step") if "step" in query else default_step
        if not timedelta(minutes=5) <= step <= timedelta(days=1):
            raise ApiError(422, "step must be between 5 and 1440 minutes.")
        attendees = _attendees(query.getall("attendee", []))
        slots.override(query.get("hours"), query.get("days"), zone)  # malformed: 400 before Exchange is asked
        availability = await service.availability(
            principal, start, end, tuple(f"mailto:{a}" for a in attendees)
        )
        busy = slots.busy_spans(availability.busy) + _attendee_busy(availability.attendees)
        working = _working(availability, query.get("hours"), query.get("days"), zone, start, end)
        found = slots.free_slots(slots.SlotQuestion(start, end, duration, step, zone), busy, working)
        payload = {
            "user": principal.username,
            "start": _iso(start, zone),
            "end": _iso(end, zone),
            "time_zone": query.get("tz") or "UTC",
            "duration_minutes": int(duration.total_seconds() // 60),
            "working_hours": slots.describe(availability.working_hours),
            "slots": [{"start": _iso(s, zone), "end": _iso(e, zone)} for s, e in found],
        }
        return web.json_response(payload)

    return await answering(request, run)


def _booking(body: Any, zone_name: str | None) -> tuple[Booking, tzinfo]:
    if not isinstance(body, dict):
        raise ApiError(400, "The request body must be a JSON object.")
    zone = _zone(body.get("time_zone") or zone_name)
    start = _moment(body.get("start"), "start")
    if body.get("end") is not None:
        end = _moment(body.get("end"), "end")
    else:
        end = start + _minutes(body.get("duration"), "duration (or end)")
    if end <= start:
        raise ApiError(422, "The meeting must end after it starts.")
    if end - start > timedelta(days=MAX_WINDOW_DAYS):
        raise ApiError(422, f"A meeting may last at most {MAX_WINDOW_DAYS} days.")
    invitee = body.get("invitee")
    if (
        not isinstance(invitee, dict)
        or not isinstance(invitee.get("email"), str)
        or "@" not in invitee["email"]
    ):
        raise ApiError(400, "invitee.email is required: the address of the person who books.")
    texts = {k: body.get(k) or "" for k in ("title", "description", "location")}
    texts["name"] = invitee.get("name") or ""
    for key, value in texts.items():
        if not isinstance(value, str) or len(value) > MAX_TEXT:
            raise ApiError(400, f"{key} must be a text of at most {MAX_TEXT} characters.")
    booking = Booking(
        start=start,
        end=end,
        subject=texts["title"] or f"Meeting with {texts['name'] or invitee['email']}",
        invitee_email=invitee["email"].strip(),
        invitee_name=texts["name"],
        description=texts["description"],
        location=texts["location"],
    )
    return booking, zone


def _not_past(booking: Booking, zone: tzinfo) -> None:
    """A booking must start from now on: a meeting in the past cannot be attended (nor invited to)."""
    if booking.start < datetime.now(UTC):
        raise ApiError(
            422,
            f"The meeting would start in the past ({_iso(booking.start, zone)}); choose a time from now on.",
        )


def _digest(body: Any) -> str:
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def _replayed(stored: StoredBooking, digest: str) -> web.Response:
    """The answer to a request whose Idempotency-Key was used before."""
    if stored.request_digest != digest:
        raise ApiError(
            422,
            "This Idempotency-Key was used for another booking; use a new key for a new booking.",
            "key_reused",
        )
    if stored.answer is None:
        raise ApiError(
            409,
            "A booking with this Idempotency-Key is being made right now; ask again in a moment.",
            "key_in_use",
        )
    return _created(stored.answer, replayed=True)


def _created(answer: str, *, replayed: bool = False) -> web.Response:
    headers = {"Idempotent-Replayed": "true"} if replayed else None
    return web.json_response(text=answer, status=201, headers=headers)


async def book(request: web.Request) -> web.StreamResponse:
    service = request.app[BOOKING_KEY]

    async def run() -> web.Response:
        principal = await service.principal(request)
        try:
            body = await request.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise ApiError(400, "The request body is not JSON.") from None
        booking, zone = _booking(body, None)
        key = request.headers.get("Idempotency-Key", "").strip() or None
        if key is not None and len(key) > 255:
            raise ApiError(400, "The Idempotency-Key is longer than 255 characters.")
        digest = _digest(body)
        override = (body.get("hours"), body.get("days"))
        if not all(value is None or isinstance(value, str) for value in override):
            raise ApiError(400, 'hours and days are texts, e.g. "hours": "09:00-17:00", "days": "mon-fri".')
        slots.override(*override, zone)  # malformed: 400 before anything is written
        async with booking_lock(service.locks, principal.user_id):
            stored = await service.store.by_key(principal.user_id, key) if key is not None else None
            if stored is not None and (stored.answer is not None or stored.request_digest != digest):
                return _replayed(stored, digest)
            if stored is not None:
                # Reserved, never answered, and no one else holds the lock: the first attempt ended without
                # an answer. Its CreateItem may have been carried out all the same: look for its UID first.
                booking_id = stored.booking_id
                booking = replace(booking, uid=booking_uid(booking_id))
                found = await service.dav.backend.find_booked(principal, booking)
                if found is not None:
                    return _created(
                        await _found(service, principal, booking, booking_id, found, zone), replayed=True
                    )
            else:
                _not_past(booking, zone)  # before the reservation: nothing is written
                try:
                    booking_id = await service.store.reserve(principal.user_id, key, digest)
                except KeyInUse as exc:
                    if exc.existing is None:
                        raise
                    return _replayed(exc.existing, digest)
                booking = replace(booking, uid=booking_uid(booking_id))
            return _created(await _make(service, principal, booking, booking_id, key, override, zone))

    return await answering(request, run)


async def _make(
    service: BookingService,
    principal: Principal,
    booking: Booking,
    booking_id: str,
    key: str | None,
    override: tuple[str | None, str | None],
    zone: tzinfo,
) -> str:
    """Inside the user's lock: ask Exchange whether the time is still free (no cache), then create it.

    Refused or failed before the CreateItem, the reservation is released (the key may be used again).
    A CreateItem that failed keeps a keyed reservation: Exchange may have made the event and lost only
    the answer, and the retry with the key looks for the booking's UID before it books again."""
    try:
        _not_past(booking, zone)  # a retry of a booking that was not made may come too late
        # Hours the tool gave replace the mailbox's: not asking for those may spare the first account a request.
        own_hours = slots.override(*override, zone) is not False
        fresh = await service.dav.backend.availability(
            principal, booking.start, booking.end, working_hours=not own_hours
        )
        working = _working(fresh, *override, zone, booking.start, booking.end)
        if working is not None and not slots.within(booking.start, booking.end, working):
            raise ApiError(422, "The meeting lies outside the working hours.", "outside_working_hours")
        if slots.overlaps(booking.start, booking.end, slots.busy_spans(fresh.busy)):
            raise ApiError(409, "This time is no longer free; choose another slot.", "not_free")
    except BaseException:
        await service.store.release(booking_id)
        raise
    try:
        booked = await service.dav.backend.book(principal, booking)
    except NotFound:
        await service.store.release(booking_id)
        raise
    except BaseException:
        if key is None:
            await service.store.release(booking_id)
        raise
    finally:
        service.cache.invalidate(principal.user_id)
    return await _found(service, principal, booking, booking_id, booked, zone)


async def _found(
    service: BookingService,
    principal: Principal,
    booking: Booking,
    booking_id: str,
    booked: Booked,
    zone: tzinfo,
) -> str:
    """The answer of a made booking, stored with its reservation."""
    answer = json.dumps(_described(principal, booking_id, booking, booked, zone))
    await service.store.complete(booking_id, booked, answer)
    return answer


def _described(principal: Principal, booking_id: str, booking: Booking, booked: Booked, zone: tzinfo) -> dict:
    return {
        "id": booking_id,
        "start": _iso(booking.start, zone),
        "end": _iso(booking.end, zone),
        "title": booking.subject,
        "invitee": {"email": booking.invitee_email, "name": booking.invitee_name},
        "calendar_id": booked.calendar_id,
        "href": calendar_url(principal.username, booked.calendar_id) + booked.name,
    }


async def cancel(request: web.Request) -> web.StreamResponse:
    service = request.app[BOOKING_KEY]

    async def run() -> web.Response:
        principal = await service.principal(request)
        booking_id = request.match_info["booking_id"]
        async with booking_lock(service.locks, principal.user_id):
            stored = await service.store.by_id(principal.user_id, booking_id)
            if stored is None or stored.booked is None:
                raise ApiError(404, "There is no such booking.")
            if not stored.cancelled:
                # Marked while Exchange deletes (the database write overlaps the round trip); unmarked if
                # Exchange fails, so the booking can be cancelled again.
                marked = asyncio.ensure_future(service.store.cancelled(booking_id))
                try:
                    await service.dav.backend.cancel(principal, stored.booked)
                except BaseException:
                    await marked
                    await service.store.cancelled(booking_id, cancelled=False)
                    raise
                finally:
                    service.cache.invalidate(principal.user_id)
                await marked
        return web.Response(status=204)

    return await answering(request, run)
