"""Clients that write and sync one calendar at the same time, each through its own replica
(tests/e2e/test_replicas.py, the randomized test).

Each :class:`Worker` follows a seeded random sequence: creates, updates and deletes of its own events
(whose outcome it knows exactly), PUTs and DELETEs of a few names every worker writes (whichever lands
last wins: the test only asks that Exchange and the index agree and that no name ever holds two items),
GETs, sync-collection from its token (applied to its copy, as a syncing client keeps one) and changes
made in Outlook (exchangelib straight at Exchange).
"""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass, field

import requests

from tests.e2e.convergence import Client, event
from tests.e2e.test_read_path import exchange_account
from tests.support.emulator import EmulatorServer

SHARED = ("shared-1.ics", "shared-2.ics")  # names both clients write
RETRYABLE = (500, 502, 503, 504)


@dataclass
class Worker:
    """One client on one replica: its random choices, what it wrote, and its sync-collection copy."""

    number: int
    seed: int
    client: Client
    folder_name: str
    emulator: EmulatorServer
    log: list[str]
    rng: random.Random = field(init=False)
    own: dict[str, tuple[str, str]] = field(default_factory=dict)  # name → (UID, SUMMARY) it expects
    token: str | None = None
    copy: dict[str, str] = field(default_factory=dict)
    counter: int = 0

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed * 100 + self.number)

    def note(self, text: str) -> None:
        self.log.append(f"w{self.number}: {text}")

    def send(self, request) -> requests.Response:
        """The request, and again after a 5xx, as a client retries a request it got no verdict for."""
        answer = request()
        for _ in range(3):
            if answer.status_code not in RETRYABLE:
                break
            answer = request()
        return answer

    def step(self) -> None:
        actions = [self.create, self.update, self.delete, self.shared_put, self.shared_delete, self.sync]
        actions += [self.read, self.outlook]
        self.rng.choices(actions, [5, 3, 2, 2, 1, 4, 2, 1])[0]()

    def create(self) -> None:
        self.counter += 1
        name, uid = f"w{self.number}-{self.counter}.ics", f"uid-{self.seed}-{self.number}-{self.counter}"
        summary = f"W{self.number} event {self.counter}"
        headers = {"If-None-Match": "*"} if self.rng.random() < 0.5 else {}
        self.note(f"create {name}")
        answer = self.send(lambda: self.client.put(name, event(uid, summary), headers))
        assert answer.status_code == 201, f"create {name}: {answer.status_code} {answer.text}"
        self.own[name] = (uid, summary)

    def update(self) -> None:
        if not self.own:
            return self.create()
        name = self.rng.choice(sorted(self.own))
        uid, _ = self.own[name]
        self.counter += 1
        summary = f"W{self.number} edit {self.counter}"
        self.note(f"update {name}")
        answer = self.send(lambda: self.client.put(name, event(uid, summary)))
        assert answer.status_code == 204, f"update {name}: {answer.status_code} {answer.text}"
        self.own[name] = (uid, summary)

    def delete(self) -> None:
        if not self.own:
            return self.create()
        name = self.rng.choice(sorted(self.own))
        self.note(f"delete {name}")
        answer = self.send(lambda: self.client.delete(name))
        assert answer.status_code == 204, f"delete {name}: {answer.status_code} {answer.text}"
        del self.own[name]

    def shared_put(self) -> None:
        """Both clients PUT these names (same UID per name): created by one, updated by the other."""
        name = self.rng.choice(SHARED)
        self.counter += 1
        self.note(f"put {name}")
        answer = self.send(
            lambda: self.client.put(name, event(f"uid-{self.seed}-{name}", f"W{self.number} {self.counter}"))
        )
        assert answer.status_code in (201, 204), f"put {name}: {answer.status_code} {answer.text}"

    def shared_delete(self) -> None:
        name = self.rng.choice(SHARED)
        self.note(f"delete {name}")
        answer = self.send(lambda: self.client.delete(name))
        assert answer.status_code in (204, 404), f"delete {name}: {answer.status_code} {answer.text}"

    def sync(self) -> None:
        self.note("sync")
        self.token, changed, deleted = self.client.sync(self.token)
        for name in deleted:
            self.copy.pop(name, None)
        self.copy.update(changed)

    def read(self) -> None:
        if not self.own:
            return
        name = self.rng.choice(sorted(self.own))
        self.note(f"get {name}")
        answer = self.client.get(name)
        assert answer.status_code == 200, f"GET {name}: {answer.status_code}"
        assert f"SUMMARY:{self.own[name][1]}\r\n" in answer.text, f"GET {name}: {answer.text}"

    def outlook(self) -> None:
        """Outlook renames one of this client's events (exchangelib straight at Exchange)."""
        if not self.own:
            return
        name = self.rng.choice(sorted(self.own))
        uid, _ = self.own[name]
        folder = next(
            f for f in exchange_account(self.emulator).calendar.children if f.name == self.folder_name
        )
        item = next(i for i in folder.all() if i.uid == uid)
        self.counter += 1
        summary = f"Outlook {self.number} {self.counter}"
        self.note(f"outlook renames {name}")
        item.subject = summary
        item.save(update_fields=["subject"])
        self.own[name] = (uid, summary)


def run_concurrently(workers: list[Worker], steps: int) -> None:
    """Each worker's steps on its own thread; the first failure is raised here."""
    errors: list[BaseException] = []

    def work(worker: Worker) -> None:
        try:
            for _ in range(steps):
                worker.step()
        except BaseException as exc:  # noqa: BLE001 - re-raised on the test's thread
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(w,), daemon=True) for w in workers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(t.is_alive() for t in threads), "a client is still waiting for an answer after 120 s"
    if errors:
        raise errors[0]
