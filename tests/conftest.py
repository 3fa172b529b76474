"""Shared fixtures: a guard against leaving the machine, configs in temp folders, a real database.

Set BACKLASH_TEST_DATABASE_URL (e.g. postgresql://postgres@127.0.0.1:54329/backlash_test) to run every
test that uses the `store` fixture against PostgreSQL as well; SQLite files are always used.
"""

from __future__ import annotations

import ipaddress
import os
import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from monitor.config import Config, parse_config
from monitor.store import Store, metadata, open_store

_real_connect = socket.socket.connect
_real_create_connection = socket.create_connection


def _is_loopback(address: Any) -> bool:
    if isinstance(address, str | bytes):  # a Unix socket path
        return True
    host = address[0]
    if host in ("localhost", ""):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _guarded_connect(self: socket.socket, address: Any) -> Any:
    if self.family in (socket.AF_INET, socket.AF_INET6) and not _is_loopback(address):
        raise OSError(f"test tried to connect to {address!r}: tests never leave 127.0.0.1")
    return _real_connect(self, address)


@pytest.fixture(autouse=True)
def _no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail any connection to a non-loopback address."""
    monkeypatch.setattr(socket.socket, "connect", _guarded_connect)


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests never see the developer's real credentials or config."""
    for name in (
        "X_BEARER_TOKEN",
        "SMTP_USER",
        "SMTP_PASSWORD",
        "BACKLASH_CONFIG",
        "BLUESKY_APP_PASSWORD",
        "BLUESKY_HANDLE",
        "MASTODON_ACCESS_TOKEN",
        "REDDIT_CLIENT_ID",
        "REDDIT_CLIENT_SECRET",
        "REDDIT_USERNAME",
        "REDDIT_PASSWORD",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MPLBACKEND", "Agg")


BASE_CONFIG: dict[str, Any] = {
    "database": "sqlite:///data/test.db",
    "timezone": "UTC",
    "events": [
        {
            "name": "instagram-tos-2012",
            "platform": "Instagram",
            "title": "Instagram terms of service change",
            "milestones": {"announced": "2012-12-17", "reversed": "2012-12-20", "effective": "2013-01-16"},
            "baseline_days": 7,
            "bin": "hour",  # the hand-worked cases count hours; `auto` has its own tests
            "query": "instagram terms",
            "sources": [],
            "aspects": {"ads": ["ad", "ads", "advertis*"], "photos": ["photo*", "sell*"]},
        }
    ],
    "reports": {"out_dir": "dashboards"},
}


POSTGRES_URL = os.environ.get("BACKLASH_TEST_DATABASE_URL")


def database_url(tmp_path: Path) -> str:
    """A SQLite file in the test's folder: what CLI and pipeline tests use."""
    return f"sqlite:///{tmp_path / 'data' / 'test.db'}"


def _reset_postgres(url: str) -> None:
    if url.startswith("postgres"):
        store = open_store(url)
        metadata.drop_all(store.engine)
        store.close()


@pytest.fixture
def write_config(tmp_path: Path) -> Callable[..., Path]:
    """Write a config.yaml into the test's folder from BASE_CONFIG plus overrides; return its path."""

    def write(data: dict[str, Any] | None = None, **overrides: Any) -> Path:
        document = dict(BASE_CONFIG if data is None else data)
        document.setdefault("database", database_url(tmp_path))
        if data is None:
            document["database"] = database_url(tmp_path)
        document.update(overrides)
        path = tmp_path / "config.yaml"
        path.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
        return path

    return write


@pytest.fixture
def config(tmp_path: Path) -> Config:
    """The base config, rooted in the test's folder."""
    return parse_config({**BASE_CONFIG, "database": database_url(tmp_path)}, tmp_path)


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    """A real, empty database: a SQLite file, and PostgreSQL too when BACKLASH_TEST_DATABASE_URL is set."""
    if request.param == "postgresql":
        if not POSTGRES_URL:
            pytest.skip("PostgreSQL: set BACKLASH_TEST_DATABASE_URL to run the store tests against it")
        _reset_postgres(POSTGRES_URL)
    url = POSTGRES_URL if request.param == "postgresql" else database_url(tmp_path)
    assert url is not None
    opened = open_store(url)
    yield opened
    opened.close()


# ---- SMTP (digest, alerts, daemon) -------------------------------------------------------------


@pytest.fixture
def smtp_server() -> Iterator[Any]:
    """A plain SMTP server on 127.0.0.1 (no TLS, no AUTH); `.email_settings()` is the config section for it."""
    from tests.smtp_server import SmtpServer

    server = SmtpServer().start()
    yield server
    server.stop()


@pytest.fixture
def smtp_certificate(tmp_path: Path) -> Any:
    """A self-signed certificate for 127.0.0.1 (skips the test when the openssl command is missing)."""
    from tests.smtp_server import make_certificate

    certificate = make_certificate(tmp_path)
    if certificate is None:
        pytest.skip("the openssl command is needed to make a test certificate")
    return certificate


@pytest.fixture
def make_smtp_server() -> Iterator[Callable[..., Any]]:
    """Start SMTP servers with options (certificate, starttls, implicit_tls, credentials); all stopped afterwards."""
    from tests.smtp_server import SmtpServer

    started: list[SmtpServer] = []

    def start(**options: Any) -> SmtpServer:
        server = SmtpServer(**options).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()
