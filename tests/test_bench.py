"""``python -m gateway bench``: the harness runs end to end (smallest sizes) and writes its JSON."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from gateway.bench import PROFILES, build_seed, month_of
from gateway.benchmarks import davmail
from gateway.benchmarks.load import ScrapedHistogram, full_collections, loop_lag
from gateway.benchmarks.report import Row, percentile
from gateway.benchmarks.stack import BenchUser, Gateway

REPO = Path(__file__).resolve().parents[1]
WORKLOADS = {
    "1 month view, cold",
    "1 month view, warm",
    "2 unchanged poll, ctag PROPFIND",
    "2 unchanged poll, sync-collection",
    "3 delta sync after one change",
    "4 PUT create",
    "4 PUT update",
    "4 DELETE",
    "5 free/busy own, 30 days",
    "9 availability 14 d, cache miss",
    "9 availability 14 d, cache hit",
    f"9 {PROFILES['smoke'].visitors} visitors at once, cache on",
    f"9 {PROFILES['smoke'].visitors} visitors at once, cache off",
    "9 booking (re-check + CreateItem)",
    "9 booking cancelled",
}


def test_bench_smoke_runs_every_workload_and_writes_json(tmp_path):
    out = tmp_path / "bench.json"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "gateway",
            "bench",
            "--smoke",
            # 2 ms per EWS request instead of 20: the workloads' sequential round trips would spend some
            # seconds waiting; every figure stays measured and nothing asserted here depends on it.
            "--latency-ms",
            "2",
            "--json",
            str(out),
            "--workdir",
            str(tmp_path / "work"),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "1 month view, warm" in done.stdout  # the printed table
    document = json.loads(out.read_text())
    assert document["latency_ms"] == 2
    assert {
        "machine",
        "profile",
        "latency_ms",
        "workloads",
        "cpu",
        "concurrency",
        "memory",
    } <= document.keys()
    assert document["machine"]["nproc"] >= 1 and document["machine"]["python"]
    rows = {row["name"]: row for row in document["workloads"]}
    assert rows.keys() >= WORKLOADS
    assert any(name.startswith("5 free/busy") and "attendees" in name for name in rows)
    for row in rows.values():
        assert row["rounds"] in (
            PROFILES["smoke"].rounds,
            PROFILES["smoke"].cold_rounds,
            PROFILES["smoke"].heavy_rounds,
        )
        assert row["gateway_ms"]["median"] > 0 and row["floor_ms"]["median"] > 0
        assert row["ratio"] > 0
        cached = row["name"] == "9 availability 14 d, cache hit"  # the point: no EWS call
        assert row["ews_calls"] >= (0 if cached else 1) and row["floor_ews_calls"] >= 1, row  # counted
    assert rows["1 month view, warm"]["ews_calls_by_operation"].get("FindItem") == 1
    # One user, three conflict calendars in two accounts: a question per account and per sub-calendar.
    assert rows["9 availability 14 d, cache miss"]["ews_calls_by_operation"] == {
        "FindItem": 1,
        "GetUserAvailability": 2,
    }
    assert rows["9 availability 14 d, cache hit"]["ews_calls"] == 0
    visitors = PROFILES["smoke"].visitors
    assert visitors > 1  # several at once: the cache answers them all with one set of questions
    assert rows[f"9 {visitors} visitors at once, cache on"]["ews_calls"] == 3
    assert rows["9 booking (re-check + CreateItem)"]["ews_calls_by_operation"]["CreateItem"] == 1
    # a task list costs what a calendar costs: FindItem + GetItem for its month, SyncFolderItems to poll
    assert rows["1t month view, task list"]["ews_calls_by_operation"] == {"FindItem": 1, "GetItem": 1}
    assert rows["2t unchanged poll, task list"]["ews_calls_by_operation"] == {"SyncFolderItems": 1}
    [concurrency] = document["concurrency"]  # one window per client count of the profile
    assert concurrency["clients"] == PROFILES["smoke"].concurrent_clients[0]
    assert concurrency["requests"] > 0 and concurrency["errors"] == 0
    assert sum(op["requests"] for op in concurrency["by_operation"].values()) == concurrency["requests"]
    assert concurrency["loop_lag"]["samples"] > 0  # read from the gateway's /metrics over the window
    assert concurrency["gc_full_collections"]["count"] >= 0
    assert concurrency["targets_met"]["zero errors"] is True
    assert concurrency["target_met"] == all(concurrency["targets_met"].values())
    assert "p99/p50" in done.stdout  # per-operation lines of the table
    assert document["memory"]["accounts"] == PROFILES["smoke"].memory_accounts
    assert document["memory"]["month_view_errors"] == 0 and document["memory"]["peak_rss_mb"] > 10
    assert [n for n, _ in document["memory"]["rss_mb_by_accounts"]][-1] == PROFILES["smoke"].memory_accounts
    assert document["cpu"]["cpu_ms_per_view"] > 0 and document["cpu"]["events_per_view"] > 0


def test_percentile_interpolates_between_ranks():
    assert percentile([4.0, 1.0, 3.0, 2.0], 50) == 2.5
    assert percentile([1.0, 2.0, 3.0, 4.0, 5.0], 95) == 4.8
    assert percentile([7.0], 99) == 7.0


def test_target_is_missed_when_the_ratio_or_the_call_count_is_too_high():
    row = Row("poll", gateway=[0.05, 0.05], floor=[0.04, 0.04], target_ratio=1.25, max_calls=1)
    row.calls = [{"SyncFolderItems": 1}, {"SyncFolderItems": 1}]
    assert row.summary()["target_met"] is True
    row.calls = [{"SyncFolderItems": 1, "GetItem": 1}] * 2
    assert row.summary()["target_met"] is False
    slow = Row("view", gateway=[0.2], floor=[0.1], target_ratio=1.25)
    assert slow.summary()["ratio"] == 2.0 and slow.summary()["target_met"] is False


def test_seed_holds_three_mailbox_sets_with_the_same_event_density():
    profile = PROFILES["smoke"]
    seed = build_seed(profile, date(2026, 3, 15))
    domains = [m["email"].split("@")[1] for m in seed["mailboxes"]]
    assert domains.count("bench.example.com") == profile.calendar_mailboxes
    assert domains.count("fb.bench.example.com") == profile.freebusy_mailboxes
    assert domains.count("mem.bench.example.com") == profile.memory_accounts
    assert set(seed["autodiscover"]) == set(domains)
    assert len(seed["mailboxes"][0]["calendars"][0]["events"]) == profile.events_per_mailbox
    assert PROFILES["full"].light_events == 164  # 2,000 events over 730 days = 164 over 60 days


def test_loop_lag_window_counts_only_the_wake_ups_between_two_readings():
    before = ScrapedHistogram({0.01: 5, 0.1: 5, float("inf"): 5}, 0.01, 5)
    after = ScrapedHistogram({0.01: 9, 0.1: 10, float("inf"): 12}, 1.9, 12)
    window = after - before
    assert window.count == 7 and window.later_than(0.1) == 2 and window.later_than(0.01) == 3
    assert window.worst_bucket_ms() == "> 100"
    assert (
        ScrapedHistogram({0.01: 9, 0.1: 10, float("inf"): 10}, 0.5, 10) - before
    ).worst_bucket_ms() == "<= 100"


METRICS = """\
gateway_event_loop_lag_seconds_bucket{le="0.01"} 9
gateway_event_loop_lag_seconds_bucket{le="0.1"} 10
gateway_event_loop_lag_seconds_bucket{le="+Inf"} 12
gateway_event_loop_lag_seconds_sum 1.900000
gateway_event_loop_lag_seconds_count 12
gateway_gc_pause_seconds_bucket{generation="1",le="0.01"} 40
gateway_gc_pause_seconds_bucket{generation="1",le="+Inf"} 40
gateway_gc_pause_seconds_sum{generation="1"} 0.100000
gateway_gc_pause_seconds_count{generation="1"} 40
gateway_gc_pause_seconds_bucket{generation="2",le="0.01"} 0
gateway_gc_pause_seconds_bucket{generation="2",le="0.1"} 3
gateway_gc_pause_seconds_bucket{generation="2",le="+Inf"} 3
gateway_gc_pause_seconds_sum{generation="2"} 0.150000
gateway_gc_pause_seconds_count{generation="2"} 3
"""


def test_histograms_are_read_from_the_metrics_page_by_name_and_label():
    lag = loop_lag(METRICS)
    assert lag.count == 12 and lag.total == 1.9 and lag.later_than(0.1) == 2
    full = full_collections(METRICS)
    assert (full.count, full.total, full.buckets) == (3, 0.15, {0.01: 0, 0.1: 3, float("inf"): 3})
    assert full.worst_bucket_ms() == "<= 100"


def test_month_of_spans_the_calendar_month_in_utc():
    assert month_of(date(2026, 12, 9)) == (
        datetime(2026, 12, 1, tzinfo=UTC),
        datetime(2027, 1, 1, tzinfo=UTC),
    )
    assert month_of(date(2026, 2, 28)) == (datetime(2026, 2, 1, tzinfo=UTC), datetime(2026, 3, 1, tzinfo=UTC))


def test_bench_users_and_gateway_do_not_show_secrets_in_repr():
    user = BenchUser("u1", "u1@bench.example.com", "exchange-secret", "app-secret", "acc1", "basic")
    gateway = Gateway(process=None, base_url="http://127.0.0.1:1", admin_token="admin-secret")  # type: ignore[arg-type]
    shown = repr(user) + repr(gateway)
    assert "secret" not in shown and "u1@bench.example.com" in shown


@pytest.mark.davmail
def test_bench_peer_davmail_prints_the_side_by_side_table(tmp_path):
    """``bench --peer davmail``: the gateway and DavMail on one emulator, same requests, same answers."""
    reason = davmail.missing_reason()
    if reason is not None:
        if os.environ.get("CI"):
            pytest.fail(f"the DavMail benchmark cannot run: {reason}")
        pytest.skip(reason)
    out = tmp_path / "peer.json"
    # 2 ms per EWS request instead of 20: DavMail's ~200 sequential round trips per round would otherwise
    # spend ten seconds waiting; the answers and the call counts asserted below do not depend on it.
    command = ["bench", "--peer", "davmail", "--smoke", "--latency-ms", "2", "--json", str(out)]
    done = subprocess.run(
        [sys.executable, "-m", "gateway", *command],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "DavMail/gateway = " in done.stdout and "month view" in done.stdout
    rows = {row["name"]: row for row in json.loads(out.read_text())["workloads"]}
    view = rows["1 month view"]
    assert view["same_result"] is True and rows["3 GET one event"]["same_result"] is True
    # DavMail reads the month item by item (and every request is challenged once): far more round trips
    assert view["davmail_ews_calls"] > 10 * view["gateway_ews_calls"] > 0


def test_scale_out_options_parse_and_bad_counts_are_refused(capsys):
    from gateway.cli import build_parser

    parser = build_parser()
    args = parser.parse_args(
        ["bench", "--replicas", "1,2,3", "--load", "50,100", "--seconds", "30", "--cold", "--sticky"]
    )
    assert (
        args.replicas == (1, 2, 3)
        and args.load == (50, 100)
        and args.seconds == 30
        and args.cold
        and args.sticky
    )
    args = parser.parse_args(["bench", "--soak", "10", "--replicas", "3", "--restart-every", "120"])
    assert args.soak == 10 and args.restart_every == 120 and args.replicas == (3,)
    for bad in ("0", "1,x", ""):
        with pytest.raises(SystemExit):
            parser.parse_args(["bench", "--replicas", bad])
    assert "every count must be at least 1" in capsys.readouterr().err


def test_bench_load_runs_the_mix_alone_and_reports_stages(tmp_path):
    """``bench --load 2 --seconds 2``: one SQLite gateway, two clients, the stages of /metrics."""
    out = tmp_path / "load.json"
    done = subprocess.run(
        [sys.executable, "-m", "gateway", "bench", "--load", "2", "--seconds", "2", "--json", str(out)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    window = json.loads(out.read_text())["windows"][0]
    assert (window["store"], window["replicas"], window["clients"]) == ("sqlite", 1, 2)
    assert window["requests"] > 0 and window["errors"] == 0
    assert {"request", "ews_worker_queue", "ews_worker_run", "database_read"} <= window["stages"].keys()
    assert "p99/p50" in done.stdout and "stages:" in done.stdout
