"""A real SMTP server (aiosmtpd) on 127.0.0.1 that keeps what it receives: plain, STARTTLS, implicit TLS, AUTH."""

from __future__ import annotations

import asyncio
import email
import email.policy
import shutil
import socket
import ssl
import subprocess
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass(frozen=True)
class Certificate:
    """A self-signed certificate for 127.0.0.1 and localhost, which clients trust through its file."""

    cert_file: Path
    key_file: Path

    def server_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.cert_file, self.key_file)
        return context


def make_certificate(folder: Path) -> Certificate | None:
    """Generate one with the openssl command line; None when openssl is not installed."""
    openssl = shutil.which("openssl")
    if openssl is None:
        return None
    cert, key = folder / "smtp-cert.pem", folder / "smtp-key.pem"
    command = [openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=localhost"]
    command += ["-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)]
    subprocess.run(command, check=True, capture_output=True)
    return Certificate(cert, key)


class _Handler:
    def __init__(self, server: SmtpServer) -> None:
        self.server = server

    async def handle_DATA(self, _server: Any, _session: Any, envelope: Any) -> str:  # noqa: N802 - aiosmtpd's hook name
        if self.server.data_delay:
            await asyncio.sleep(self.server.data_delay)  # a slow relay: the sender waits for the 250
        self.server.envelopes.append(envelope)
        return "250 OK"


class SmtpServer:
    """Start, stop and start again on the same port; `messages` holds every accepted email, parsed."""

    host = "127.0.0.1"

    def __init__(
        self,
        port: int | None = None,
        certificate: Certificate | None = None,
        starttls: bool = False,
        implicit_tls: bool = False,
        credentials: tuple[str, str] | None = None,
        data_delay: float = 0.0,
    ) -> None:
        self.port = port or free_port()
        self.data_delay = data_delay  # seconds before accepting each message
        self.certificate = certificate
        self.starttls = starttls
        self.implicit_tls = implicit_tls
        self.credentials = credentials
        self.envelopes: list[Any] = []
        self.logins: list[str] = []
        self._controller: Controller | None = None

    @property
    def messages(self) -> list[EmailMessage]:
        return [
            email.message_from_bytes(envelope.original_content, policy=email.policy.default)  # type: ignore[misc]
            for envelope in self.envelopes
        ]

    def email_settings(self, **overrides: Any) -> dict[str, Any]:
        """The `email:` config section that points at this server."""
        security = "ssl" if self.implicit_tls else "starttls" if self.starttls else "none"
        settings: dict[str, Any] = {"smtp_host": self.host, "smtp_port": self.port, "security": security}
        settings |= {"sender": "monitor@example.org", "recipients": ["team@example.org", "comms@example.org"]}
        settings["timeout"] = "5s"
        if self.certificate is not None:
            settings["ca_file"] = str(self.certificate.cert_file)
        return settings | overrides

    def _authenticate(self, _server: Any, _session: Any, _envelope: Any, _mechanism: str, data: Any) -> AuthResult:
        if not isinstance(data, LoginPassword) or self.credentials is None:
            return AuthResult(success=False, handled=False)
        login, password = data.login.decode(), data.password.decode()
        accepted = (login, password) == self.credentials
        if accepted:
            self.logins.append(login)
        return AuthResult(success=accepted, handled=False)

    def start(self) -> SmtpServer:
        options: dict[str, Any] = {}
        if self.certificate is not None and self.starttls:
            options |= {"tls_context": self.certificate.server_context(), "require_starttls": True}
        if self.credentials is not None:
            options |= {"authenticator": self._authenticate, "auth_require_tls": self.starttls or self.implicit_tls}
        ssl_context = self.certificate.server_context() if self.certificate and self.implicit_tls else None
        self._controller = Controller(
            _Handler(self), hostname=self.host, port=self.port, ssl_context=ssl_context, server_hostname="localhost",
            **options,
        )  # fmt: skip
        self._controller.start()
        return self

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None
