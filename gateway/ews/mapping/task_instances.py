"""A recurring VTODO with RECURRENCE-ID overrides (RFC 5545 §3.8.4.4) → the one task Exchange holds.

Without overrides, a completed master (STATUS:COMPLETED, or a COMPLETED date / PERCENT-COMPLETE:100
without STATUS) is the whole series done (RFC 5545: the master's properties are the series'): a completed
task that no longer recurs, the shape every "all done" below takes. Exchange's own completion (a completed
copy and the task moved on) is the current occurrence's, and is asked for with an override.

EWS tasks have no exceptions: a recurring task is one item, its current occurrence (StartDate/DueDate)
and a pattern that Exchange moves on when the occurrence is completed (the completed one is kept apart).
Clients that complete one occurrence inside the task (python-caldav's ``complete(handle_rrule=True,
rrule_mode="thisandfuture")``, others alike) write the completed occurrences as overrides with
STATUS:COMPLETED and where the series goes on as one pending override with ``RANGE=THISANDFUTURE``. That
is Exchange's model, said in overrides, and maps to it: the task becomes that current occurrence, with
the master's RRULE counted from it (a COUNT less the occurrences completed); when every occurrence is
done (the master completed, nothing pending), the task is completed and no longer recurs. A client that
ticks occurrences in place (overrides with STATUS:COMPLETED, the master left as it was) completes them in
Exchange's order: they must be the rule's first occurrences, and the task goes on at the one after them
(its DTSTART/DUE moved by the same step), or is completed when the rule has no more. The overrides
themselves are kept as written (the residual) and shown while Exchange still has what they made.

Any other override (a moved or changed single occurrence, a pending one that is not where the series
goes on, a later occurrence completed before the current one) has no Exchange counterpart and is refused
with a sentence saying so.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time

from dateutil.rrule import rrulestr
from icalendar import Component, vRecur

from gateway.ews.mapping.model import invalid

REFUSED = (
    "Exchange keeps one recurring task with no exceptions: of a recurring task's single instances "
    "(RECURRENCE-ID) it can take only completed ones (STATUS:COMPLETED) followed by one pending "
    "RANGE=THISANDFUTURE instance where the task goes on; change the whole task instead."
)


def completed(todo: Component) -> bool:
    """Whether the VTODO says it is completed: STATUS:COMPLETED, or no STATUS and a COMPLETED date
    (RFC 5545 §3.8.2.1) or PERCENT-COMPLETE:100 (§3.8.1.8). An explicit other STATUS wins."""
    status = str(todo.get("STATUS", "")).upper()
    if status:
        return status == "COMPLETED"
    percent = todo.get("PERCENT-COMPLETE")
    return "COMPLETED" in todo or (percent is not None and int(percent) >= 100)


def _done(todo: Component) -> bool:
    return completed(todo) or "COMPLETED" in todo or str(todo.get("STATUS", "")).upper() == "CANCELLED"


def _finished(master: Component, *, completing: bool = False) -> Component:
    """The whole series done: a task that no longer recurs, completed (``completing``: whatever the
    master's STATUS) or cancelled as the master says. One UpdateItem sets Status and deletes the
    Recurrence, so Exchange keeps no completed copy and moves nothing on."""
    built = master.copy()
    built.pop("RRULE")
    if completing and not completed(built):
        built.pop("STATUS", None)
        built.add("STATUS", "COMPLETED")
    return built


def _instant(value: date | datetime) -> datetime:
    """A RECURRENCE-ID as a comparable UTC instant (a date: its midnight; a floating time: as UTC)."""
    if not isinstance(value, datetime):
        return datetime.combine(value, time.min, UTC)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def current(todos: list[Component]) -> Component:
    """The component whose fields the Exchange task takes: the master itself (no overrides), or one
    built from the overrides as the module says. Raises InvalidCalendarData (403) for what Exchange
    cannot hold."""
    masters = [t for t in todos if "RECURRENCE-ID" not in t]
    if len(masters) != 1:
        raise invalid(REFUSED if masters or todos else "The resource holds no task (VTODO).")
    master = masters[0]
    overrides = sorted(
        (t for t in todos if t is not master), key=lambda t: _instant(t.decoded("RECURRENCE-ID"))
    )
    if not overrides:
        # RFC 5545 §3.8.5.3: the master's STATUS is the whole series', not its current occurrence's
        return _finished(master) if "RRULE" in master and completed(master) else master
    if "RRULE" not in master:
        raise invalid("Only a recurring task (RRULE) has instances (RECURRENCE-ID) to complete.")
    pending = [t for t in overrides if not _done(t)]
    ongoing = pending[0] if len(pending) == 1 and pending[0] is overrides[-1] else None
    if len(pending) > (1 if ongoing is not None else 0) or (_done(master) and ongoing is not None):
        raise invalid(REFUSED)
    if ongoing is None and not _done(master):
        return _ticked(master, overrides)
    if ongoing is None:  # every occurrence done: a completed task that no longer recurs
        return _finished(master)
    if str(ongoing["RECURRENCE-ID"].params.get("RANGE", "")).upper() != "THISANDFUTURE":
        raise invalid(REFUSED)
    built = ongoing.copy()
    built.pop("RECURRENCE-ID")
    if "DUE" in built and "DURATION" in built:
        built.pop("DURATION")  # RFC 5545 allows one of them; the DUE is the later, explicit one
    built.pop("RRULE", None)
    built.add("RRULE", _less(_rule(master), len(overrides) - 1))
    return built


def _rule(master: Component) -> vRecur:
    value = master["RRULE"]
    return vRecur(value[0] if isinstance(value, list) else value)


def _less(rule: vRecur, done: int) -> vRecur:
    """The rule with its COUNT lowered by the occurrences done (counted from the moved-on start)."""
    if "COUNT" in rule:
        count = rule["COUNT"]
        left = int(count[0] if isinstance(count, list) else count) - done
        if left < 1:
            raise invalid("The task has more completed instances than its RRULE's COUNT allows.")
        rule["COUNT"] = [left]
    return rule


def _ticked(master: Component, done: list[Component]) -> Component:
    """Occurrences completed in place (overrides with STATUS:COMPLETED, the master as it was): they must
    be the rule's first occurrences, in order (Exchange completes the current one, then the next); the
    task goes on at the occurrence after them, or is done when the rule has none."""
    anchor = "DTSTART" if "DTSTART" in master else "DUE"
    if anchor not in master:
        raise invalid("A recurring task needs a DTSTART or a DUE for Exchange to count from.")
    start = master.decoded(anchor)
    begin = start if isinstance(start, datetime) else datetime.combine(start, time.min)
    try:
        rule = rrulestr(_rule(master).to_ical().decode("ascii"), dtstart=begin)
        occurrences = list(rule.xafter(begin, count=len(done) + 1, inc=True))
    except (ValueError, TypeError) as exc:
        raise invalid(f"The RRULE cannot be expanded to place the completed instances ({exc}).") from None
    if not isinstance(start, datetime):
        occurrences = [o.date() for o in occurrences]
    wanted = [_instant(o) for o in occurrences]
    if [_instant(o.decoded("RECURRENCE-ID")) for o in done] != wanted[: len(done)]:
        raise invalid(REFUSED)
    if len(wanted) == len(done):  # no occurrence left: the whole task is done
        return _finished(master, completing=True)
    built = master.copy()
    built.pop("RRULE")
    shift = occurrences[len(done)] - start
    for name in ("DTSTART", "DUE"):
        if name in built:
            value = built.decoded(name) + shift
            built.pop(name)
            built.add(name, value)
    built.add("RRULE", _less(_rule(master), len(done)))
    return built


__all__ = ["REFUSED", "completed", "current"]
