"""scripts/python_caldav_suite.py without running it (it downloads from PyPI): the configuration it gives
python-caldav's tests, what it installs, and how it reads and judges the results."""

from __future__ import annotations

import importlib.util
import json
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def suite():
    spec = importlib.util.spec_from_file_location(
        "python_caldav_suite", ROOT / "scripts/python_caldav_suite.py"
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    yield module
    del sys.modules[spec.name]


def test_the_config_names_the_demo_its_two_users_and_only_documented_flags(suite):
    users = [("alice", "pw-a"), ("bob", "pw-b")]
    config = json.loads(json.dumps(suite.server_config("http://127.0.0.1:9/dav/", users)))
    (name,) = config["test-servers"]
    server = config["test-servers"][name]
    assert server["type"] == "external" and server["enabled"] is True
    assert (server["url"], server["username"], server["password"]) == (
        "http://127.0.0.1:9/dav/",
        "alice",
        "pw-a",
    )
    assert [(u["username"], u["password"]) for u in server["scheduling_users"]] == users
    assert {u["url"] for u in server["scheduling_users"]} == {"http://127.0.0.1:9/dav/"}
    # every flag is one of python-caldav's features and is explained in docs/CONFORMANCE.md
    conformance = (ROOT / "docs/CONFORMANCE.md").read_text(encoding="utf-8")
    for flag, value in server["features"].items():
        assert value == {"support": "unsupported"}
        assert f"`{flag}`" in conformance, flag


def test_the_known_failures_are_the_documented_ones(suite):
    conformance = (ROOT / "docs/CONFORMANCE.md").read_text(encoding="utf-8")
    for reason in set(suite.KNOWN_FAILURES.values()):
        assert f"`{reason}`" in conformance, reason
    assert (
        suite.known_reason("test_caldav.py::TestForServergateway::testIssue397")
        == "dtstart-not-an-occurrence"
    )
    assert suite.known_reason("test_caldav.py::TestForServergateway::testSearchEvent") is None


def test_the_test_extra_is_installed_without_the_embedded_servers_and_tools(suite):
    pyproject = """
[project.optional-dependencies]
test = ["vobject", "pytest", "xandikos>=0.3.3", "radicale", "coverage", "manuel",
        "deptry>=0.24.0; python_version >= '3.10'", "proxy.py"]
"""
    assert suite.test_extras(pyproject) == ["vobject", "pytest", "manuel", "proxy.py"]


def test_the_junit_report_is_read_per_test(suite, tmp_path):
    report = tmp_path / "junit.xml"
    report.write_text(
        '<testsuites><testsuite name="pytest">'
        '<testcase classname="tests.test_caldav.TestForServergateway" name="testSearchEvent"/>'
        '<testcase classname="tests.test_caldav.TestForServergateway" name="testIssue397">'
        '<failure message="AuthorizationError: Forbidden&#10;more">trace</failure></testcase>'
        '<testcase classname="tests.test_caldav" name="test_get_davclient_returns_none">'
        '<skipped message="no server"/></testcase>'
        '<testcase classname="tests.test_examples.TestExamples" name="test_collation">'
        '<error message="boom"/></testcase>'
        "</testsuite></testsuites>",
        encoding="utf-8",
    )
    summary = suite.read_junit(report)
    assert [(o.test_id, o.status) for o in summary.outcomes] == [
        ("test_caldav.py::TestForServergateway::testSearchEvent", "passed"),
        ("test_caldav.py::TestForServergateway::testIssue397", "failed"),
        ("test_caldav.py::test_get_davclient_returns_none", "skipped"),
        ("test_examples.py::TestExamples::test_collation", "error"),
    ]
    text, all_known = suite.report(summary, "3.6.0")
    assert "passed 1, failed 1, errors 1, skipped 1" in text
    assert re.search(r"dtstart-not-an-occurrence\s+test_caldav.py::TestForServergateway::testIssue397", text)
    assert re.search(r"NEW\s+test_examples.py::TestExamples::test_collation: boom", text)
    assert not all_known
