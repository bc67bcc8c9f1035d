"""``serve --config FILE`` runs the server, over HTTPS when the config names a certificate."""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import os
import re
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from gateway.accounts.vault import generate_key

REPO = Path(__file__).resolve().parents[2]


def _certificate(directory: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=1))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False
        )
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = directory / "cert.pem", directory / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert_file, key_file


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_serve_over_https_creates_the_database_and_answers_health(tmp_path: Path) -> None:
    cert, key = _certificate(tmp_path)
    port = _free_port()
    config = tmp_path / "gateway.toml"
    config.write_text(
        f'[server]\nhost = "127.0.0.1"\nport = {port}\ntls_cert = "cert.pem"\ntls_key = "key.pem"\n'
        f'[storage]\ndata_dir = "data"\n'
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
    env["GATEWAY_SECRET_KEY"] = generate_key()
    process = subprocess.Popen(
        [sys.executable, "-m", "gateway", "serve", "--config", str(config)],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    context = ssl.create_default_context(cafile=str(cert))
    try:
        deadline, answer = time.monotonic() + 30, None
        while answer is None and time.monotonic() < deadline and process.poll() is None:
            try:
                with urllib.request.urlopen(
                    f"https://127.0.0.1:{port}/readyz", context=context, timeout=2
                ) as r:
                    answer = json.loads(r.read())
            except (urllib.error.URLError, ConnectionError):
                time.sleep(0.2)
        assert answer == {"status": "ok", "database": "up"}, (
            process.stderr.read1().decode() if process.stderr else ""
        )
        assert (tmp_path / "data" / "gateway.sqlite3").is_file()
        with urllib.request.urlopen(f"https://127.0.0.1:{port}/signin", context=context, timeout=5) as r:
            assert "Secure" in r.headers["Set-Cookie"]  # cookies are Secure over HTTPS
        with urllib.request.urlopen(f"https://127.0.0.1:{port}/metrics", context=context, timeout=5) as r:
            metrics = r.read().decode()
        # The start-up heap is kept out of the collector (short full collections) and pauses are timed.
        frozen = re.search(r"^gateway_gc_frozen_objects (\d+)$", metrics, re.MULTILINE)
        assert frozen and int(frozen.group(1)) > 10_000, metrics
        assert re.search(r'^gateway_gc_pause_seconds_count\{generation="0"\} [1-9]', metrics, re.MULTILINE), (
            metrics
        )
    finally:
        process.terminate()
        process.wait(timeout=10)
