"""DavMail, a second EWS client, run unmodified against the emulator: the benchmark's peer and a test subject.

DavMail (Java; Debian's ``davmail-server`` package, the headless part of ``davmail``) is an Exchange-to-
CalDAV gateway too, so the same CalDAV requests can be sent to it and to this gateway over the same
emulator. It is started as its documentation says (``davmail.jar -server davmail.properties``) with: EWS
mode, ``davmail.url`` the emulator's EWS URL, a CalDAV port on 127.0.0.1 without TLS, no remote access,
every other listener (IMAP, SMTP, POP, LDAP) off, and no update check (it would leave the machine).

``DAVMAIL_JAR`` names the jar when it is not Debian's ``/usr/share/davmail/davmail.jar``; ``java`` is
looked up on PATH. CalDAV URLs of a mailbox are ``/users/<email>/calendar/`` (the primary calendar),
``/users/<email>/outbox/`` (free/busy) and ``/principals/users/<email>/``.
"""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from gateway.benchmarks.stack import Process, StackError, free_port

DEBIAN_JAR = Path("/usr/share/davmail/davmail.jar")
START_TIMEOUT_S = 60.0
_READY = "listening on CALDAV port"
INSTALL_HINT = (
    "DavMail needs Java and DavMail's jar: as root, `apt-get install davmail-server default-jre-headless` "
    "(scripts/test.sh does it), or set DAVMAIL_JAR to davmail.jar and put `java` on PATH"
)


@dataclass(frozen=True)
class Installation:
    java: str
    jar: Path


def _jar() -> Path:
    return Path(os.environ.get("DAVMAIL_JAR") or DEBIAN_JAR)


def find_installation() -> Installation | None:
    """Java and DavMail's jar, if both are here."""
    java = shutil.which("java")
    return Installation(java, _jar()) if java and _jar().is_file() else None


def missing_reason() -> str | None:
    """Why DavMail cannot run here (None when it can)."""
    if find_installation() is not None:
        return None
    what = "java is not on PATH" if shutil.which("java") is None else f"no DavMail jar at {_jar()}"
    return f"{what}. {INSTALL_HINT}"


def properties(ews_url: str, port: int, log_file: Path) -> str:
    """davmail.properties for a headless DavMail on 127.0.0.1 in front of ``ews_url``."""
    settings = {
        "davmail.mode": "EWS",
        "davmail.url": ews_url,
        "davmail.server": "true",
        "davmail.allowRemote": "false",
        "davmail.bindAddress": "127.0.0.1",
        "davmail.caldavPort": str(port),
        "davmail.ssl.nosecurecaldav": "true",
        "davmail.imapPort": "",
        "davmail.smtpPort": "",
        "davmail.popPort": "",
        "davmail.ldapPort": "",
        "davmail.disableUpdateCheck": "true",
        "davmail.enableKeepAlive": "true",
        "davmail.logFilePath": str(log_file),
        "log4j.rootLogger": "WARN",
        "log4j.logger.davmail": "INFO",
        "log4j.logger.httpclient.wire": "WARN",
        "log4j.logger.httpclient": "WARN",
    }
    return "".join(f"{key}={value}\n" for key, value in settings.items())


class DavMail:
    """A running DavMail (its own process); :meth:`stop` ends it."""

    def __init__(self, process: Process, port: int) -> None:
        self.process = process
        self.port = port

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def calendar_url(self, email: str) -> str:
        return f"{self.base_url}/users/{email}/calendar/"

    def outbox_url(self, email: str) -> str:
        return f"{self.base_url}/users/{email}/outbox/"

    def stop(self) -> None:
        self.process.stop()


def start(ews_url: str, workdir: Path) -> DavMail:
    """Start DavMail on a free 127.0.0.1 port in front of the emulator's ``ews_url``; wait until it listens."""
    installation = find_installation()
    if installation is None:
        raise StackError(f"DavMail cannot run: {missing_reason()}")
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    config = workdir / "davmail.properties"
    config.write_text(properties(ews_url, port, workdir / "davmail.log"), encoding="utf-8")
    argv = [
        installation.java,
        "-Xmx256m",
        "-Djava.awt.headless=true",
        "-jar",
        str(installation.jar),
        "-server",
    ]
    process = Process("davmail", [*argv, str(config)], workdir / "davmail.out")
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        process.check_alive()
        if _READY in process.output():
            return DavMail(process, port)
        time.sleep(0.1)
    process.stop()
    raise StackError(f"DavMail did not start within {START_TIMEOUT_S:.0f} s")
