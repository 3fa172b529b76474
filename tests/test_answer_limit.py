"""Servers that answer too much: each source stops reading at the ceiling, or at JSON nested too deeply to read,
and says so in one line while the other sources go on."""

from __future__ import annotations

import gzip
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from click.testing import CliRunner

from monitor.cli import cli
from monitor.sources.answer_limit import MAX_ANSWER_BYTES
from tests.conftest import BASE_CONFIG
from tests.test_collect_offline import SECRETS, offline_sources

SENT_AT_MOST = 3 * MAX_ANSWER_BYTES  # a reader without the ceiling gets all of it, then fails on the JSON
CHUNK = b"[" * 2**20
BOMB = gzip.compress(CHUNK * (SENT_AT_MOST // len(CHUNK)), compresslevel=9)  # ≈ 100 KB on the wire


class FloodingServer(ThreadingHTTPServer):
    """Answers every request 200 with a JSON content type and a body far over the ceiling."""

    daemon_threads = True

    def __init__(self, compressed: bool = False, size: int = SENT_AT_MOST) -> None:
        super().__init__(("127.0.0.1", 0), _Flood)
        self.compressed = compressed
        self.size = size
        self.paths: list[str] = []


class _Flood(BaseHTTPRequestHandler):
    server: FloodingServer
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        self.server.paths.append(self.path)
        # A request body left unread makes the close a reset, which can reach the client before the answer does
        # (Bluesky's login is a POST): read it first, as a real server would.
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Connection", "close")
        if self.server.compressed:
            self.send_header("Content-Encoding", "gzip")
            self.send_header("Content-Length", str(len(BOMB)))
        self.end_headers()
        with suppress(BrokenPipeError, ConnectionResetError):  # the client stopped reading: what the ceiling is for
            self._send_body()

    do_POST = do_GET  # noqa: N815

    def _send_body(self) -> None:
        if self.server.compressed:
            self.wfile.write(BOMB)
            return
        for start in range(0, self.server.size, len(CHUNK)):
            self.wfile.write(CHUNK[: self.server.size - start])

    def log_message(self, *args: object) -> None:
        pass


@contextmanager
def serving(server: FloodingServer) -> Iterator[FloodingServer]:
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(params=[False, True], ids=["plain", "gzip-bomb"])
def flooding(request: pytest.FixtureRequest) -> Iterator[FloodingServer]:
    with serving(FloodingServer(compressed=request.param)) as server:
        yield server


def collect_lines(port: int, write_config: Callable[..., Path], monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """`backlash collect` with every source pointed at 127.0.0.1:port: its exit code 1 and one line a source."""
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    event = {**BASE_CONFIG["events"][0], "sources": ["x", "bluesky", "mastodon", "reddit"]}
    sources = offline_sources(port)
    for settings in sources.values():
        settings["retries"] = 2  # never used: neither answer is worth asking again
    result = CliRunner().invoke(cli, ["--config", str(write_config(events=[event], sources=sources)), "collect"])
    assert result.exit_code == 1, result.output
    assert not any(secret in result.output for secret in SECRETS.values())
    lines = result.stdout.splitlines()
    assert len(lines) == 4, result.output
    for source, line in zip(("x", "bluesky", "mastodon", "reddit"), lines, strict=True):
        assert line.startswith(f"instagram-tos-2012 / {source}: failed")
    return lines


def test_every_source_stops_reading_at_the_ceiling_and_names_the_host(
    flooding: FloodingServer, write_config: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    port = flooding.server_address[1]
    for line in collect_lines(port, write_config, monkeypatch):
        assert f"— 127.0.0.1:{port}: answer larger than 32 MB, not read further;" in line, line
    # no retries (Mastodon.py asks for the instance's description first, on its own)
    assert len(flooding.paths) == len(set(flooding.paths)), flooding.paths


def test_json_nested_too_deeply_fails_that_source_not_the_whole_collect(
    write_config: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The SDKs' JSON readers give up differently: json's RecursionError, or a ValueError taken for garbage."""
    not_json = "gave up after 3 attempts: {} answered with a body that is not JSON;"
    expected = {
        "x": "— an answer was nested too deeply to read (not the API's JSON);",
        "bluesky": not_json.format("Bluesky"),
        "mastodon": not_json.format("Mastodon"),
        "reddit": "— an answer was nested too deeply to read (not the API's JSON);",
    }
    with serving(FloodingServer(size=2**20)) as server:  # 1 MB of "[": under the ceiling, too deep for json
        lines = collect_lines(server.server_address[1], write_config, monkeypatch)
    for (source, phrase), line in zip(expected.items(), lines, strict=True):
        assert phrase in line, (source, line)
