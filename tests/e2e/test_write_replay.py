"""A PUT repeated after its answer was lost succeeds without writing, for every kind of event the corpus
holds: Exchange already holds exactly what it asks for (RFC 9110 §13.1.1), recognised by the body's
fingerprint stored with the item and the item's fields compared with the body's. Anything else keeps
the 412 its precondition earns."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.test_read_path import delta
from tests.e2e.test_write_path import primary_url, put, writes
from tests.ews.test_mapping_corpus import INEXPRESSIBLE, _corpus_params, split_by_uid


def _stored_events() -> list:
    """The corpus files a PUT stores (malformed and inexpressible ones are refused before anything is
    written: tests/e2e/test_write_path.py proves that)."""
    return [
        param
        for param in _corpus_params()
        if param.values[0] is None
        or not (param.values[0].name.startswith("malformed-") or param.values[0].name in INEXPRESSIBLE)
    ]


@pytest.mark.parametrize("path", _stored_events())
def test_a_repeated_put_of_a_corpus_event_is_recognised(stack, emulator, path: Path):
    base = primary_url(stack)
    for number, text in enumerate(split_by_uid(path.read_bytes()).values()):
        url = f"{base}replay-{number}.ics"
        assert put(stack, url, text, {"If-None-Match": "*"}).status_code == 201
        before = stack.ews_calls()
        # the client lost the answer: its retry carries the same precondition, or the ETag it had before
        assert put(stack, url, text, {"If-None-Match": "*"}).status_code == 204
        assert put(stack, url, text, {"If-Match": '"an-etag-from-before"'}).status_code == 204
        assert writes(delta(before, stack.ews_calls())) == 0
        other = text.replace("BEGIN:VEVENT\r\n", "BEGIN:VEVENT\r\nCOMMENT:edited\r\n", 1)
        assert put(stack, url, other, {"If-Match": '"an-etag-from-before"'}).status_code == 412
        assert writes(delta(before, stack.ews_calls())) == 0
