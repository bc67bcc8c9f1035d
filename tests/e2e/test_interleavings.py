"""Random interleavings of writes, reads, syncs, Outlook changes, faults and restarts against the emulator.

Each seed drives one calendar through a random sequence of steps — PUT creates (single events and
series with moved occurrences and EXDATEs), PUT updates (with and without If-Match), DELETEs, GETs,
sync-collection, PROPFIND, changes made in Outlook (straight through exchangelib), EWS faults before
and after Exchange carried a request out (each followed by the client's ordinary retry of the same
request), lost index writes followed by a restart (a crash between the EWS write and the database
write), plain restarts (a new backend on the same database), and a few requests at once. A model
predicts every answer; at checkpoints what the client sees (PROPFIND Depth 1, sync-collection from
its token and from scratch, GET of every name) is compared with what Exchange holds (the emulator's
own store): equal names and UIDs, one item per UID, no ghost, nothing missing.

CI runs ``INTERLEAVING_SEEDS`` seeds (default 4, ~30 steps each); run many locally with, e.g.,
``INTERLEAVING_SEEDS=200``; replay one failure with ``INTERLEAVING_SEED=<seed>`` (failures name it).
"""

from __future__ import annotations

import os
import random
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field

import pytest
import requests

from gateway.ews.index import ItemIndex
from tests.e2e.convergence import Client, event, exchange_names, series
from tests.e2e.test_read_path import dav_client, exchange_account
from tests.ews.test_mapping_corpus import assert_same_event
from tests.support.gateway import GatewayStack

FOLDER = "Interleavings"
TIMEOUT_S = 3.0  # the gateway's EWS timeout here: a "timeout" fault costs little, a loaded CI machine copes
STEPS = int(os.environ.get("INTERLEAVING_STEPS", "30"))
SEEDS = (
    [int(os.environ["INTERLEAVING_SEED"])]
    if "INTERLEAVING_SEED" in os.environ
    else list(range(1, 1 + int(os.environ.get("INTERLEAVING_SEEDS", "4"))))
)
RETRYABLE = (500, 502, 503, 504)  # the client cannot tell what happened: it sends the same request again
OCCURRENCES = [f"202612{day:02d}T100000" for day in (2, 9, 16, 23, 30)]  # the series' 2nd..6th


@dataclass
class Resource:
    """What the model expects Exchange to hold under a name."""

    uid: str
    body: str
    occurrences: tuple[tuple[str, ...], tuple[str, ...]] | None = None  # a series: (EXDATEs, moved)
    etag: str | None = None  # the ETag the client last read
    changed_since_read: bool = False  # Outlook changed it after the client's read


@dataclass
class Model:
    live: dict[str, Resource] = field(default_factory=dict)
    deleted_here: set[str] = field(default_factory=set)  # names the gateway deleted (DELETE again: 204)
    gone: set[str] = field(default_factory=set)  # names deleted in Outlook (DELETE: 404)
    replica: dict[str, str] = field(default_factory=dict)  # the client's sync-collection copy: name → ETag
    token: str | None = None
    counter: int = 0


class Run:
    """One seed's run: the random choices, the gateway, the client and the model."""

    def __init__(self, seed: int, emulator, stack: GatewayStack) -> None:
        self.seed = seed
        self.rng = random.Random(seed)
        self.emulator = emulator
        self.stack = stack
        self.model = Model()
        self.cal = self._client()
        self.log: list[str] = []

    def _client(self) -> Client:
        calendars = dav_client(self.stack).principal().calendars()
        found = next((c for c in calendars if c.get_display_name() == FOLDER), None)
        if found is None:
            found = dav_client(self.stack).principal().make_calendar(name=FOLDER)
        return Client(self.stack, str(found.url))

    def note(self, text: str) -> None:
        self.log.append(text)

    def where(self) -> str:
        return f"seed {self.seed} (replay: INTERLEAVING_SEED={self.seed}); steps: " + " | ".join(
            self.log[-12:]
        )

    # --- requests with the client's retry ---------------------------------------------------------

    def send(self, request: Callable[[], requests.Response], crash: bool = False) -> requests.Response:
        """The request, then (after a 5xx) the same request again, as a client retries. With ``crash``
        the gateway loses its index writes during the first attempt and is restarted after it."""
        with lost_index_writes(crash):
            answer = request()
        if crash:
            self.emulator.set_faults()
            self.restart()
        for _ in range(3):
            if answer.status_code not in RETRYABLE:
                return answer
            self.emulator.set_faults()
            answer = request()
        return answer

    def maybe_fault(self, operations: list[tuple[str, int]]) -> None:
        """Now and then, one fault for the next EWS request of one of ``operations``."""
        if self.rng.random() > 0.35:
            return
        operation, skip = self.rng.choice(operations)
        kind, when = self.rng.choices(
            [
                ("drop", "after"),
                ("http_503", "after"),
                ("server_busy", "after"),
                ("server_busy", "before"),
                ("http_503", "before"),
                ("drop", "before"),
                ("timeout", "after"),
            ],
            weights=[4, 3, 2, 2, 2, 2, 1],
        )[0]
        rule = {"kind": kind, "operation": operation, "count": 1, "skip": skip, "back_off_ms": 100}
        if kind == "timeout":
            rule["latency_ms"] = int(TIMEOUT_S * 1000) + 1000
        else:
            rule["when"] = when
        self.emulator.set_faults(rules=[rule])
        self.note(f"fault {kind}/{when} on {operation}+{skip}")

    # --- steps -------------------------------------------------------------------------------------

    def fresh_body(
        self, uid: str, summary: str, before: Resource | None = None
    ) -> tuple[str, tuple[tuple[str, ...], tuple[str, ...]] | None]:
        """A single event or a weekly series (and its EXDATEs and moved occurrences). A series that
        stays a series only gains EXDATEs and moved occurrences: EWS cannot restore one occurrence
        of a series whose pattern stays (see gateway/ews/backend/writes.py, _reset)."""
        if self.rng.random() >= 0.4:
            return event(uid, summary), None
        exdates, moved = before.occurrences if before is not None and before.occurrences else ((), ())
        free = [o for o in OCCURRENCES if o not in exdates and o not in moved]
        picked = self.rng.sample(free, self.rng.randint(0, min(2, len(free))))
        cut = self.rng.randint(0, len(picked))
        exdates, moved = tuple(sorted((*exdates, *picked[:cut]))), tuple(sorted((*moved, *picked[cut:])))
        return series(uid, summary, exdates=exdates, moved=moved), (exdates, moved)

    def create(self) -> None:
        m = self.model
        m.counter += 1
        reuse = sorted(m.deleted_here | m.gone)
        name = self.rng.choice(reuse) if reuse and self.rng.random() < 0.3 else f"fz-{m.counter}.ics"
        uid = f"uid-{self.seed}-{m.counter}"
        body, occurrences = self.fresh_body(uid, f"Event {m.counter}")
        headers = {"If-None-Match": "*"} if self.rng.random() < 0.6 else {}
        self.maybe_fault([("CreateItem", 0), ("UpdateItem", 0), ("DeleteItem", 0), ("SyncFolderItems", 0)])
        crash = self.rng.random() < 0.1
        self.note(f"create {name} {'inm' if headers else 'plain'}{' crash' if crash else ''}")
        answer = self.send(lambda: self.cal.put(name, body, headers), crash=crash)
        assert answer.status_code in (201, 204), f"{answer.status_code} {answer.text} — {self.where()}"
        m.live[name] = Resource(uid, body, occurrences)
        m.deleted_here.discard(name)
        m.gone.discard(name)

    def update(self) -> None:
        m = self.model
        if not m.live:
            return self.create()
        name = self.rng.choice(sorted(m.live))
        resource = m.live[name]
        m.counter += 1
        body, occurrences = self.fresh_body(resource.uid, f"Event {m.counter} (edited)", resource)
        guarded = resource.etag is not None and self.rng.random() < 0.7
        headers = {"If-Match": resource.etag} if guarded else {}
        refused = guarded and resource.changed_since_read
        self.maybe_fault([("UpdateItem", 0), ("UpdateItem", 1), ("DeleteItem", 0), ("GetItem", 0)])
        self.note(f"update {name} {'if-match' if guarded else 'plain'}{' (stale)' if refused else ''}")
        answer = self.send(lambda: self.cal.put(name, body, headers))
        expected = 412 if refused else 204
        assert answer.status_code == expected, f"{answer.status_code} {answer.text} — {self.where()}"
        if not refused:
            m.live[name] = Resource(resource.uid, body, occurrences)

    def delete(self) -> None:
        m = self.model
        known = sorted(m.live) + sorted(m.deleted_here | m.gone)
        if not known:
            return self.create()
        name = self.rng.choice(known)
        resource = m.live.get(name)
        guarded = resource is not None and resource.etag is not None and self.rng.random() < 0.5
        headers = {"If-Match": resource.etag} if guarded else {}
        self.maybe_fault([("DeleteItem", 0), ("GetItem", 0), ("SyncFolderItems", 0)])
        crash = resource is not None and self.rng.random() < 0.1
        self.note(f"delete {name}{' if-match' if guarded else ''}{' crash' if crash else ''}")
        answer = self.send(lambda: self.cal.delete(name, headers), crash=crash)
        if resource is not None:
            expected = 412 if guarded and resource.changed_since_read else 204
        else:
            expected = 204 if name in m.deleted_here else 404
        assert answer.status_code == expected, f"{answer.status_code} {answer.text} — {self.where()}"
        if expected == 204 and resource is not None:
            del m.live[name]
            m.deleted_here.add(name)

    def read(self) -> None:
        m = self.model
        names = sorted(m.live) + sorted(m.gone)
        if not names:
            return
        name = self.rng.choice(names)
        self.maybe_fault([("GetItem", 0), ("SyncFolderItems", 0)])
        self.note(f"get {name}")
        answer = self.send(lambda: self.cal.get(name))
        if name in m.live:
            assert answer.status_code == 200, f"{answer.status_code} — {self.where()}"
            assert_same_event(m.live[name].body, answer.text)
            m.live[name].etag, m.live[name].changed_since_read = answer.headers["ETag"], False
        else:
            assert answer.status_code == 404, f"{answer.status_code} — {self.where()}"

    def outlook(self) -> None:
        """Someone changes or deletes a single event in Outlook (exchangelib straight at Exchange)."""
        m = self.model
        singles = sorted(n for n, r in m.live.items() if "RRULE" not in r.body)
        if not singles:
            return
        name = self.rng.choice(singles)
        resource = m.live[name]
        folder = next(f for f in exchange_account(self.emulator).calendar.children if f.name == FOLDER)
        found = next(i for i in folder.all() if i.uid == resource.uid)
        if self.rng.random() < 0.5:
            self.note(f"outlook deletes {name}")
            found.delete()
            del m.live[name]
            m.gone.add(name)
            return
        self.note(f"outlook edits {name}")
        found.subject = f"Outlook {m.counter}"
        found.save(update_fields=["subject"])
        old = next(line for line in resource.body.split("\r\n") if line.startswith("SUMMARY:"))
        resource.body = resource.body.replace(old, f"SUMMARY:Outlook {m.counter}")
        resource.changed_since_read = True

    def sync(self) -> None:
        self.maybe_fault([("SyncFolderItems", 0)])
        self.note("sync")
        self.replicate()

    def replicate(self) -> None:
        """sync-collection from the client's token, applied to its copy (retried after a 5xx)."""
        for _ in range(3):
            try:
                self.model.token, changed, deleted = self.cal.sync(self.model.token)
                break
            except AssertionError:  # a 5xx answer: the client tries again
                self.emulator.set_faults()
        else:
            raise AssertionError(f"sync-collection keeps failing — {self.where()}")
        for name in deleted:
            self.model.replica.pop(name, None)
        self.model.replica.update(changed)

    def restart(self) -> None:
        self.emulator.set_faults()  # the new gateway connects its accounts (Autodiscover, GetFolder)
        self.note("restart")
        self.stack.restart()
        self.cal = self._client()

    def at_once(self) -> None:
        """A PUT, a GET and a sync-collection in parallel (no faults): names differ, answers must not."""
        m = self.model
        self.note("at once")
        m.counter += 1
        name, uid = f"fz-{m.counter}.ics", f"uid-{self.seed}-{m.counter}"
        body = event(uid, f"Event {m.counter}")
        others = sorted(m.live)
        with ThreadPoolExecutor(3) as pool:
            created = pool.submit(self.cal.put, name, body)
            read = pool.submit(self.cal.get, others[0]) if others else None
            pool.submit(self.cal.listing).result()
            assert created.result().status_code == 201, self.where()
            if read is not None:
                assert read.result().status_code == 200, self.where()
        m.live[name] = Resource(uid, body)

    # --- the comparison ------------------------------------------------------------------------------

    def check(self) -> None:
        """What the client sees equals what Exchange holds equals what the model expects."""
        self.emulator.set_faults()
        expected = {name: r.uid for name, r in self.model.live.items()}
        held = exchange_names(self.emulator, folder_name=FOLDER)
        assert held == expected, f"Exchange holds {held}, expected {expected} — {self.where()}"
        box = self.emulator.state.store.mailboxes["alice@example.com"]
        folder = next(f for f in list(box.folders.values()) if f.name == FOLDER)
        uids = [i.uid for i in list(folder.items.values())]
        assert len(uids) == len(set(uids)), f"duplicated items {sorted(uids)} — {self.where()}"
        listing = self.cal.listing()
        assert set(listing) == set(expected), f"PROPFIND lists {sorted(listing)} — {self.where()}"
        self.replicate()
        assert self.model.replica == listing, f"sync-collection {self.model.replica} — {self.where()}"
        _, fresh, _ = self.cal.sync(None)
        assert fresh == listing, f"initial sync-collection {fresh} — {self.where()}"
        for name, resource in self.model.live.items():
            answer = self.cal.get(name)
            assert answer.status_code == 200, f"GET {name}: {answer.status_code} — {self.where()}"
            assert answer.headers["ETag"] == listing[name], self.where()
            assert_same_event(resource.body, answer.text)
            resource.etag, resource.changed_since_read = answer.headers["ETag"], False
        for name in self.model.gone | self.model.deleted_here:
            assert self.cal.get(name).status_code == 404, f"GET {name} of a deleted event — {self.where()}"


@contextmanager
def lost_index_writes(active: bool) -> Iterator[None]:
    """While active, the gateway's own index writes fail, as a crash right after the EWS write would lose
    them; the client then sees a 5xx (or nothing) and the test restarts the gateway before retrying."""
    if not active:
        yield
        return
    saved = ItemIndex.record_created, ItemIndex.record_deleted

    async def crash(self, *args, **kwargs):
        raise RuntimeError("the gateway crashed before it wrote its index")

    ItemIndex.record_created = ItemIndex.record_deleted = crash
    try:
        yield
    finally:
        ItemIndex.record_created, ItemIndex.record_deleted = saved


@pytest.mark.parametrize("seed", SEEDS, ids=[f"seed-{s}" for s in SEEDS])
def test_random_interleavings_converge(emulator, tmp_path, seed):
    with GatewayStack(emulator, tmp_path / "data", request_timeout_seconds=TIMEOUT_S) as stack:
        run = Run(seed, emulator, stack)
        if run.rng.random() < 0.5:
            run.sync()  # sometimes the index exists before the first write, sometimes not
        steps = [
            run.create,
            run.update,
            run.delete,
            run.read,
            run.outlook,
            run.sync,
            run.restart,
            run.at_once,
        ]
        weights = [6, 4, 3, 3, 2, 3, 1, 1]
        for number in range(STEPS):
            run.rng.choices(steps, weights)[0]()
            emulator.set_faults()  # a fault the step did not meet does not wait for the next one
            if number % 10 == 9:
                run.check()
        run.check()
