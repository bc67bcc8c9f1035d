"""EWS answers are read in large chunks: exchangelib's ``iter_content()`` would otherwise read byte by byte."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests

from gateway.ews.exchange import READ_CHUNK_BYTES, ChunkedReadAdapter

BODY = b"<x>" + b"a" * 200_000 + b"</x>"


class _Answer(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", str(len(BODY)))
        self.end_headers()
        self.wfile.write(BODY)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def url():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Answer)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


def session() -> requests.Session:
    s = requests.Session()
    s.mount("http://", ChunkedReadAdapter())
    return s


def test_iter_content_without_a_size_reads_large_chunks_and_keeps_every_byte(url):
    chunks = list(session().get(url, stream=True).iter_content())
    assert b"".join(chunks) == BODY
    assert len(chunks) <= -(-len(BODY) // READ_CHUNK_BYTES) + 1  # not 200,000 one-byte steps


def test_an_explicit_chunk_size_is_kept(url):
    chunks = list(session().get(url, stream=True).iter_content(1000))
    assert b"".join(chunks) == BODY and max(map(len, chunks)) == 1000


def test_response_content_still_works(url):
    assert session().get(url).content == BODY
