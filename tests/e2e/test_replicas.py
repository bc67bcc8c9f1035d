"""Three gateway replicas on one PostgreSQL database, driven in turn by python-caldav and vdirsyncer.

Each replica is a ``python -m gateway serve`` process (tests/support/replicas.py) with the same
database URL and secret key, in front of one EWS emulator; the clients are handed the replicas round-robin,
as a load balancer without session affinity does. What a user must not notice: which replica answers.
Every write is visible through every replica at once, sync-collection tokens from one replica work on
the others without missing or repeating a change, a revoked app password stops working everywhere within
a second, and a replica killed in the middle of writes loses nothing, duplicates nothing and leaves no
lock behind.

The randomized test: two clients write and sync one calendar at the same time through two replicas
(tests/e2e/replica_workers.py), then the index, through both, must equal Exchange's state. CI runs
``REPLICA_SEEDS`` seeds (default 4, ``REPLICA_STEPS`` = 14 steps per client); run more with
``REPLICA_SEEDS=50``; replay one with ``REPLICA_SEED=<seed>`` (failures name it).
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import urlparse

import caldav
import pytest
import requests

from tests.e2e.convergence import Client, event, exchange_names
from tests.e2e.replica_workers import Worker, run_concurrently
from tests.e2e.test_read_path import exchange_account
from tests.support.emulator import EmulatorServer
from tests.support.postgres import PostgresCluster
from tests.support.replicas import ReplicaSet, ReplicaUser, RoundRobin
from tests.support.vdirsyncer import VDIRSYNCER, RecordingProxy, Vdirsyncer, read_ics

REPLICAS = 3
STEPS = int(os.environ.get("REPLICA_STEPS", "14"))
SEEDS = (
    [int(os.environ["REPLICA_SEED"])]
    if "REPLICA_SEED" in os.environ
    else list(range(1, 1 + int(os.environ.get("REPLICA_SEEDS", "4"))))
)


@dataclass
class Deployment:
    """The replicas, the provisioned user and the emulator behind them."""

    replicas: ReplicaSet
    user: ReplicaUser
    emulator: EmulatorServer

    @property
    def password(self) -> str:  # tests.e2e.convergence.Client reads the password from its "stack"
        return self.user.password

    def dav(self, replica: int, password: str | None = None) -> caldav.DAVClient:
        return caldav.DAVClient(
            url=self.replicas[replica].base_url + "/",
            username=self.user.username,
            password=password or self.user.password,
        )

    def new_calendar(self, name: str) -> str:
        """MKCALENDAR through replica 0; returns the collection's path (the same on every replica)."""
        made = self.dav(0).principal().make_calendar(name=name)
        return urlparse(str(made.url)).path

    def client(self, replica: int, path: str) -> Client:
        return Client(self, self.replicas[replica].base_url + path, self.user.username)

    def clients(self, path: str) -> list[Client]:
        return [self.client(number, path) for number in range(len(self.replicas))]


@pytest.fixture(scope="module")
def deployment(
    emulator_server: EmulatorServer,
    postgres_cluster: PostgresCluster,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Deployment]:
    """Three replicas on a fresh database, started at once, with alice provisioned through replica 0.

    One deployment for the module (starting three processes costs seconds); each test works in its
    own calendar, so the tests do not depend on each other."""
    emulator_server.reset()
    database = postgres_cluster.create_database()
    workdir = tmp_path_factory.mktemp("replicas")
    try:
        with ReplicaSet(
            workdir, emulator_server.base_url, postgres_cluster.url(database), REPLICAS
        ) as replicas:
            user = replicas.provision("alice", "alice@example.com", "alice-pw")
            yield Deployment(replicas, user, emulator_server)
    finally:
        postgres_cluster.drop_database(database)


def ctag(client: Client) -> str:
    body = '<propfind xmlns="DAV:" xmlns:CS="http://calendarserver.org/ns/"><prop><CS:getctag/></prop></propfind>'
    answer = requests.request(
        "PROPFIND", client.calendar_url, data=body, headers={"Depth": "0"}, auth=client.auth, timeout=30
    )
    assert answer.status_code == 207, answer.text
    return answer.text.split("getctag>")[1].rsplit("<", 1)[0]


def assert_same_everywhere(clients: list[Client], expected: dict[str, str]) -> None:
    """Every replica lists exactly ``expected`` (name → SUMMARY) with the same ETags and ctag, and
    GET through every replica returns that SUMMARY."""
    listings = [c.listing() for c in clients]
    assert set(listings[0]) == set(expected), (
        f"replica 0 lists {sorted(listings[0])}, expected {sorted(expected)}"
    )
    for number, listing in enumerate(listings[1:], start=1):
        assert listing == listings[0], f"replica {number} lists {listing}, replica 0 {listings[0]}"
    assert len({ctag(c) for c in clients}) == 1, "the replicas show different ctags"
    for name, summary in expected.items():
        for number, client in enumerate(clients):
            answer = client.get(name)
            assert answer.status_code == 200, f"GET {name} through replica {number}: {answer.status_code}"
            assert f"SUMMARY:{summary}\r\n" in answer.text, f"GET {name} through replica {number}"
            assert answer.headers["ETag"] == listings[0][name]


# --- every write visible through every replica -----------------------------------------------------


def test_every_write_through_one_replica_is_seen_at_once_by_every_replica(deployment):
    """python-caldav writes through the replicas in turn (create, update, delete each through a
    different one); after every write, all three list, GET and ctag the calendar alike."""
    path = deployment.new_calendar("Round robin")
    turn = RoundRobin(list(range(REPLICAS)))
    calendars = [
        deployment.dav(n).calendar(url=deployment.replicas[n].base_url + path) for n in range(REPLICAS)
    ]
    clients = deployment.clients(path)
    expected: dict[str, str] = {}
    names: list[str] = []
    for number in range(4):
        uid = f"rr-{number}-{uuid.uuid4().hex[:8]}"
        saved = calendars[turn()].save_event(event(uid, f"Created {number}"))
        name = urlparse(str(saved.url)).path.rsplit("/", 1)[1]
        names.append(name)
        expected[name] = f"Created {number}"
        assert_same_everywhere(clients, expected)
    for number, name in enumerate(names[:3]):
        calendar = calendars[turn()]
        loaded = calendar.event_by_url(calendar.url.join(name))
        loaded.load()
        loaded.data = loaded.data.replace(f"SUMMARY:Created {number}", f"SUMMARY:Updated {number}")
        loaded.save()
        expected[name] = f"Updated {number}"
        assert_same_everywhere(clients, expected)
    for name in names[1:3]:
        calendar = calendars[turn()]
        calendar.event_by_url(calendar.url.join(name)).delete()
        del expected[name]
        assert_same_everywhere(clients, expected)
        for number, client in enumerate(clients):
            assert client.get(name).status_code == 404, f"deleted {name} still served by replica {number}"


def test_one_new_event_put_through_two_replicas_at_once_is_one_item(deployment):
    """Two devices send the same new event at the same moment, the balancer hands them to two replicas:
    one PUT creates it, the other replaces it (or, under another name, gets no-uid-conflict); Exchange
    holds one item (RFC 4791 §5.3.2.1)."""
    path = deployment.new_calendar("At once")
    first, second = deployment.client(0, path), deployment.client(1, path)
    for attempt in range(3):
        uid = f"at-once-{attempt}"
        same_name = simultaneously(
            (first, f"same-{attempt}.ics", event(uid, "First")),
            (second, f"same-{attempt}.ics", event(uid, "Second")),
        )
        assert sorted(same_name) == [201, 204], f"attempt {attempt}: {same_name}"
        other = f"other-{attempt}"
        two_names = simultaneously(
            (first, f"{other}-a.ics", event(other, "A")), (second, f"{other}-b.ics", event(other, "B"))
        )
        assert sorted(two_names) == [201, 403], f"attempt {attempt}: {two_names}"  # no-uid-conflict
    held = sorted(exchange_names(deployment.emulator, folder_name="At once").values())
    assert held == sorted([f"at-once-{n}" for n in range(3)] + [f"other-{n}" for n in range(3)]), held


def simultaneously(*puts: tuple[Client, str, str]) -> list[int]:
    """Each PUT (client, name, body) from its own thread, released together; their statuses in order."""
    barrier = threading.Barrier(len(puts))
    statuses = [0] * len(puts)

    def send(position: int) -> None:
        client, name, body = puts[position]
        barrier.wait()
        statuses[position] = client.put(name, body).status_code

    threads = [threading.Thread(target=send, args=(n,)) for n in range(len(puts))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return statuses


# --- sync-collection across replicas -----------------------------------------------------------------


def test_sync_tokens_of_one_replica_work_on_the_others_without_missing_or_repeating_a_change(deployment):
    """RFC 6578: each sync-collection goes to the next replica with the token the previous one gave;
    every round reports exactly what changed since (writes through any replica, changes in Outlook)."""
    path = deployment.new_calendar("Sync tokens")
    clients = deployment.clients(path)
    turn = RoundRobin(list(range(REPLICAS)))
    token, changed, deleted = clients[turn()].sync(None)
    assert changed == {} and deleted == set()
    copy: dict[str, str] = {}
    created = 0
    for round_number in range(4):
        writes = {turn(): None for _ in range(REPLICAS)}  # each replica writes once per round
        new_names = []
        for writer in writes:
            created += 1
            name = f"sync-{created}.ics"
            assert (
                clients[writer].put(name, event(f"sync-uid-{created}", f"Sync {created}")).status_code == 201
            )
            new_names.append(name)
        touched = set(new_names)
        gone: set[str] = set()
        if copy:
            victim = sorted(copy)[0]
            assert clients[turn()].delete(victim).status_code == 204
            gone.add(victim)
            survivor = sorted(copy)[-1]
            if survivor not in gone:
                answer = clients[turn()].put(
                    survivor, event(f"sync-uid-{survivor[5:-4]}", f"Edited {round_number}")
                )
                assert answer.status_code == 204, answer.text
                touched.add(survivor)
        reader = turn()
        token, changed, deleted = clients[reader].sync(token)
        assert set(changed) == touched, f"round {round_number}, replica {reader}: changed {sorted(changed)}"
        assert deleted == gone, f"round {round_number}, replica {reader}: deleted {sorted(deleted)}"
        for name in deleted:
            copy.pop(name)
        copy.update(changed)
        # Nothing happened since: the next replica reports nothing (no change doubled).
        again = turn()
        token, changed, deleted = clients[again].sync(token)
        assert (changed, deleted) == ({}, set()), f"replica {again} repeats {changed} {deleted}"
        for number, client in enumerate(clients):
            assert client.listing() == copy, f"round {round_number}: replica {number} lists otherwise"

    # A change made in Outlook is reported once, by whichever replica is asked first.
    victim = sorted(copy)[0]
    uid = deployment.client(0, path).get(victim).text.split("UID:")[1].split("\r\n")[0]
    folder = next(
        f for f in exchange_account(deployment.emulator).calendar.children if f.name == "Sync tokens"
    )
    item = next(i for i in folder.all() if i.uid == uid)
    item.subject = "Changed in Outlook"
    item.save(update_fields=["subject"])
    token, changed, deleted = clients[turn()].sync(token)
    assert set(changed) == {victim} and deleted == set()
    token, changed, deleted = clients[turn()].sync(token)
    assert (changed, deleted) == ({}, set())


@pytest.mark.skipif(VDIRSYNCER is None, reason="vdirsyncer is not installed (pip install -e '.[test]')")
def test_vdirsyncer_through_the_replicas_in_turn_keeps_both_sides_equal(deployment, tmp_path):
    """One vdirsyncer folder behind a round-robin balancer (each request to the next replica): local
    edits reach Exchange,
    Exchange's changes reach the folder, and a sync with nothing new changes no file."""
    path = deployment.new_calendar("Vdirsyncer")
    calendar_id = path.rstrip("/").rsplit("/", 1)[1]
    clients = deployment.clients(path)
    for number in range(3):
        assert (
            clients[number].put(f"vd-{number}.ics", event(f"vd-uid-{number}", f"Remote {number}")).status_code
            == 201
        )
    turn = RoundRobin([replica.base_url for replica in deployment.replicas])
    # A load balancer in front: each request vdirsyncer sends goes to the next replica.
    balancer = RecordingProxy(
        deployment.replicas[0].base_url, before=lambda method, path: balancer.retarget(turn())
    )
    sync = Vdirsyncer(
        tmp_path / "vdirsyncer",
        url=balancer.base_url + "/dav/",
        username=deployment.user.username,
        password=deployment.user.password,
        collections=[calendar_id],
    )
    with balancer:
        sync.discover()
        check_vdirsyncer_round_robin(deployment, sync, balancer, clients)


def check_vdirsyncer_round_robin(
    deployment: Deployment, sync: Vdirsyncer, balancer: RecordingProxy, clients: list[Client]
) -> None:
    sync.sync()
    local = sync.folders()[0]
    assert {summary(text) for text in sync.files().values()} == {"Remote 0", "Remote 1", "Remote 2"}

    # Local changes: one edited, one added, one deleted; they reach Exchange through another replica.
    files = sorted(local.glob("*.ics"), key=lambda p: summary(read_ics(p)))
    files[0].write_bytes(read_ics(files[0]).replace("SUMMARY:Remote 0", "SUMMARY:Local edit").encode())
    files[1].unlink()
    (local / "vd-local.ics").write_bytes(event("vd-uid-local", "Local new").encode())
    sync.sync()
    served = {summary(clients[2].get(name).text) for name in clients[2].listing()}
    assert served == {"Local edit", "Remote 2", "Local new"}

    # Exchange's change (Outlook) reaches the folder through the third replica.
    folder = next(
        f for f in exchange_account(deployment.emulator).calendar.children if f.name == "Vdirsyncer"
    )
    item = next(i for i in folder.all() if i.uid == "vd-uid-2")
    item.subject = "Outlook edit"
    item.save(update_fields=["subject"])
    sync.sync()
    assert {summary(text) for text in sync.files().values()} == {"Local edit", "Outlook edit", "Local new"}

    # Nothing new: a sync through each replica leaves every file as it is.
    before = {p.name: p.stat().st_mtime_ns for p in local.glob("*.ics")}
    for _ in range(REPLICAS):
        sync.sync()
    assert len(balancer.requests) > 3 * REPLICAS  # each replica answered several of them
    assert {p.name: p.stat().st_mtime_ns for p in local.glob("*.ics")} == before
    for number, client in enumerate(clients):
        listing = client.listing()
        assert len(listing) == 3, f"replica {number} lists {sorted(listing)}"
        assert {summary(client.get(n).text) for n in listing} == {summary(t) for t in sync.files().values()}


def summary(text: str) -> str:
    return text.split("SUMMARY:")[1].split("\r\n")[0].split("\n")[0]


# --- app passwords ------------------------------------------------------------------------------------


def test_an_app_password_revoked_on_one_replica_is_refused_by_another_within_a_second(deployment):
    """Revoked through replica 1's admin API, the password stops working on replica 3 within a second,
    even though replica 3 had just verified it (and keeps verified passwords for a while)."""
    app_password_id, password = deployment.replicas.issue_app_password(deployment.user, "phone")
    principal = deployment.dav(2, password).principal()
    assert principal.calendars(), "the new app password works on replica 3"
    home = deployment.replicas[2].dav_url

    def status(replica: int, secret: str) -> int:
        url = deployment.replicas[replica].dav_url
        answer = requests.request(
            "PROPFIND", url, headers={"Depth": "0"}, auth=(deployment.user.username, secret), timeout=10
        )
        return answer.status_code

    assert status(2, password) == 207 and status(1, password) == 207  # verified (and cached) on both
    deployment.replicas.revoke_app_password(deployment.user, app_password_id, replica=0)
    revoked_at = time.monotonic()
    refused_after = None
    while time.monotonic() - revoked_at < 3.0:
        if status(2, password) == 401:
            refused_after = time.monotonic() - revoked_at
            break
        time.sleep(0.05)
    assert refused_after is not None and refused_after <= 1.0, (
        f"replica 3 still accepted the revoked app password {refused_after or '3+'} s after it was revoked "
        f"on replica 1 ({home})"
    )
    assert status(1, password) == 401 and status(0, password) == 401
    assert status(2, deployment.user.password) == 207, "the user's other app password still works"


# --- a replica killed in the middle of writes -----------------------------------------------------------


@dataclass
class Writes:
    """What the writer threads saw: names answered 2xx, and names whose outcome the client never learnt."""

    done: list[str]
    unknown: list[str]
    lock: threading.Lock


def test_a_replica_killed_mid_write_loses_nothing_duplicates_nothing_and_leaves_no_lock(deployment):
    """Two clients create events through replica 1 in a loop; replica 1 gets SIGKILL while one CreateItem
    has been carried out by Exchange but not yet answered (the crash window between Exchange and the
    index, holding the calendar's create lock), and while the other client's PUT waits for that lock.
    Another replica syncs the calendar and creates an event in it at once (no lock left behind); replica 1 restarts; the clients retry what they never got an answer for. Then
    every event is in Exchange and in every replica's listing exactly once."""
    emulator = deployment.emulator
    path = deployment.new_calendar("Killed")
    victim = deployment.replicas[0]
    writer = deployment.client(0, path)
    survivor = deployment.client(1, path)
    survivor.sync(None)  # the calendar's index exists before the writes start
    creates_before = emulator.stats()["operations"].get("CreateItem", 0)
    hang_after = 3  # the 4th CreateItem is carried out, its answer held back until the kill
    emulator.set_faults(
        rules=[
            {
                "kind": "timeout",
                "operation": "CreateItem",
                "skip": hang_after,
                "count": 1,
                "latency_ms": 15000,
            }
        ]
    )
    writes = Writes([], [], threading.Lock())
    stop = threading.Event()

    def write_loop(thread: int) -> None:
        for number in range(1000):
            if stop.is_set():
                return
            name = f"kill-{thread}-{number}.ics"
            try:
                answer = writer.put(
                    name, event(f"kill-uid-{thread}-{number}", f"Kill {thread} {number}"), timeout=30
                )
            except requests.ConnectionError:
                with writes.lock:
                    writes.unknown.append(name)
                return
            with writes.lock:
                (writes.done if answer.status_code in (201, 204) else writes.unknown).append(name)

    threads = [threading.Thread(target=write_loop, args=(n,), daemon=True) for n in range(2)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 30
    while emulator.stats()["operations"].get("CreateItem", 0) < creates_before + hang_after + 1:
        assert time.monotonic() < deadline, "the writers did not reach the held-back CreateItem"
        time.sleep(0.02)
    time.sleep(0.2)  # the other writer's PUT is in flight too (waiting for the calendar's create lock)
    victim.kill()
    stop.set()
    for thread in threads:
        thread.join(timeout=30)
    emulator.set_faults()
    assert writes.unknown, "the kill interrupted no write"
    # The crash window was hit: Exchange made an item whose creation the killed replica never answered.
    assert set(writes.unknown) & set(exchange_names(emulator, folder_name="Killed")), writes.unknown
    assert len(writes.done) >= hang_after - 1

    # No lock left behind: another replica syncs and writes the calendar at once.
    started = time.monotonic()
    token, listed, _ = survivor.sync(None)
    answer = survivor.put("after-kill.ics", event("after-kill-uid", "After the kill"), timeout=10)
    assert answer.status_code == 201, answer.text
    assert time.monotonic() - started < 5.0, "replica 2 waited for a lock the killed replica held"
    assert set(writes.done) <= set(listed), (
        f"missing after the kill: {sorted(set(writes.done) - set(listed))}"
    )

    victim.start()
    victim.wait_ready()
    for name in writes.unknown:  # the client sends again what it never got an answer for
        thread, number = name[len("kill-") : -len(".ics")].split("-")
        answer = writer.put(name, event(f"kill-uid-{thread}-{number}", f"Kill {thread} {number}"), timeout=30)
        assert answer.status_code in (201, 204), f"retry of {name}: {answer.status_code} {answer.text}"

    expected = {*writes.done, *writes.unknown, "after-kill.ics"}
    held = exchange_names(emulator, folder_name="Killed")
    assert set(held) == expected, f"Exchange holds {sorted(held)}"
    box = emulator.state.store.mailboxes["alice@example.com"]
    folder = next(f for f in list(box.folders.values()) if f.name == "Killed")
    uids = [i.uid for i in list(folder.items.values())]
    assert len(uids) == len(set(uids)) == len(expected), f"duplicated items: {sorted(uids)}"
    for number, client in enumerate(deployment.clients(path)):
        assert set(client.listing()) == expected, f"replica {number} lists otherwise"
        _, fresh, _ = client.sync(None)
        assert set(fresh) == expected
    _, changed, deleted = survivor.sync(token)
    assert expected - set(listed) <= set(changed) <= expected and not deleted


# --- random concurrent writes and syncs through two replicas -------------------------------------------


@pytest.mark.parametrize("seed", SEEDS, ids=[f"seed-{s}" for s in SEEDS])
def test_concurrent_writes_and_syncs_through_two_replicas_end_with_the_index_equal_to_exchange(
    deployment, seed
):
    """Two clients, each on its own replica, run seeded random writes, reads, syncs and Outlook changes
    of one calendar at the same time; then Exchange holds one item per name and UID, each client's own
    events as it last wrote them, and both replicas' listing, sync from scratch, kept sync copies and GETs
    show exactly what Exchange holds (exchangelib FindItem for the UIDs, the emulator's store for names)."""
    folder_name = f"Two replicas {seed}"
    path = deployment.new_calendar(folder_name)
    log: list[str] = []
    workers = [
        Worker(number, seed, deployment.client(number, path), folder_name, deployment.emulator, log)
        for number in range(2)
    ]
    where = f"seed {seed} (replay: REPLICA_SEED={seed})"
    try:
        run_concurrently(workers, STEPS)
    except AssertionError as exc:
        raise AssertionError(f"{exc} — {where}; steps: {' | '.join(log[-16:])}") from exc
    where += "; steps: " + " | ".join(log[-16:])

    held = exchange_names(deployment.emulator, folder_name=folder_name)
    folder = next(f for f in exchange_account(deployment.emulator).calendar.children if f.name == folder_name)
    found_uids = [item.uid for item in folder.all()]
    assert len(found_uids) == len(set(found_uids)), f"two items with one UID: {sorted(found_uids)} — {where}"
    assert sorted(held.values()) == sorted(found_uids), f"Exchange {held} vs FindItem {found_uids} — {where}"
    for worker in workers:
        mine = {name: uid for name, (uid, _) in worker.own.items()}
        theirs = {n: u for n, u in held.items() if n.startswith(f"w{worker.number}-")}
        assert theirs == mine, f"worker {worker.number}: Exchange holds {theirs}, it wrote {mine} — {where}"

    for worker in workers:
        listing = worker.client.listing()
        assert set(listing) == set(held), f"replica {worker.number} lists {sorted(listing)} — {where}"
        _, fresh, _ = worker.client.sync(None)
        assert fresh == listing, f"replica {worker.number}: sync from scratch {fresh} — {where}"
        worker.sync()
        assert worker.copy == listing, f"replica {worker.number}: kept copy {worker.copy} — {where}"
        for name, uid in held.items():
            answer = worker.client.get(name)
            assert answer.status_code == 200, f"GET {name} on replica {worker.number} — {where}"
            assert f"UID:{uid}\r\n" in answer.text and answer.headers["ETag"] == listing[name], where
        for name, (_, summary) in worker.own.items():
            assert f"SUMMARY:{summary}\r\n" in worker.client.get(name).text, f"{name} — {where}"
