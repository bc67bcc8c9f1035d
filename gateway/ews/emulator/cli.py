"""``python -m gateway emulator``: run the EWS emulator as a standalone server."""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import ipaddress
import json
import ssl
import tempfile
from pathlib import Path

from aiohttp import web

from gateway.ews.emulator.soap import SERVER_VERSIONS


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``emulator`` sub-command."""
    parser = subparsers.add_parser(
        "emulator", help="run the EWS emulator (a fake Exchange server for tests and demos)"
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8081, help="port (default 8081; 0 picks a free one)")
    parser.add_argument("--seed", type=Path, help="seed JSON file (default: the built-in demo seed)")
    parser.add_argument("--latency-ms", type=int, default=0, help="added latency per EWS request")
    parser.add_argument(
        "--ews-version",
        choices=sorted(SERVER_VERSIONS),
        default="2016",
        help="emulated Exchange version (2013 = 15.0, 2016 = 15.1, 2019 = 15.2)",
    )
    parser.add_argument(
        "--tls", action="store_true", help="serve HTTPS with a self-signed certificate made at start"
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    # Imported here: the other commands of ``python -m gateway`` start without loading the emulator.
    from gateway.ews.emulator.app import create_app

    seed = json.loads(args.seed.read_text(encoding="utf-8")) if args.seed else None
    app = create_app(seed, ews_version=args.ews_version, latency_ms=args.latency_ms)
    context = None
    if args.tls:
        cert_path, key_path = write_self_signed_cert(
            Path(tempfile.mkdtemp(prefix="ews-emulator-")), args.host
        )
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(cert_path, key_path)
        print(f"TLS certificate (trust this file in clients): {cert_path}", flush=True)
    asyncio.run(_serve(app, args.host, args.port, context))  # Ctrl-C is handled by gateway.cli
    return 0


async def _serve(app: web.Application, host: str, port: int, context: ssl.SSLContext | None) -> None:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port, ssl_context=context)
    await site.start()
    actual_port = site._server.sockets[0].getsockname()[1]
    scheme = "https" if context else "http"
    base = f"{scheme}://{host}:{actual_port}"
    from gateway.ews.emulator.app import STATE

    state = app[STATE]
    print(f"EWS emulator (Exchange {state.server_version.name}) listening", flush=True)
    print(f"EWS URL:          {base}/EWS/Exchange.asmx", flush=True)
    print(f"Autodiscover URL: {base}/autodiscover/autodiscover.svc", flush=True)
    print(f"Control API:      {base}/_emulator/stats | /_emulator/reset | /_emulator/faults", flush=True)
    print("Mailboxes (DEMO ONLY - these passwords are public):", flush=True)
    for mailbox in state.directory:
        print(
            f"  {mailbox.email:<28} password: {mailbox.password:<12} auth: {', '.join(mailbox.auth)}",
            flush=True,
        )
    print("Ready (Ctrl-C stops the emulator).", flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()


def write_self_signed_cert(directory: Path, host: str) -> tuple[Path, Path]:
    """A fresh EC key and a self-signed certificate for ``host``/localhost/127.0.0.1 (valid 30 days)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)])
    alt_names: list[x509.GeneralName] = [
        x509.DNSName("localhost"),
        x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
    ]
    try:
        alt_names.append(x509.IPAddress(ipaddress.ip_address(host)))
    except ValueError:
        alt_names.append(x509.DNSName(host))
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path = directory / "emulator-cert.pem"
    key_path = directory / "emulator-key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    key_path.chmod(0o600)
    return cert_path, key_path
