"""`backlash collect` with nothing listening: each source's line names the host it tried and why it failed."""

from __future__ import annotations

import socket
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner

from monitor.cli import cli
from monitor.sources.retry import cannot_connect
from tests.conftest import BASE_CONFIG

SECRETS = {
    "X_BEARER_TOKEN": "offline-x-bearer-secret",
    "BLUESKY_HANDLE": "someone.bsky.social",
    "BLUESKY_APP_PASSWORD": "offline-bsky-app-password",
    "MASTODON_ACCESS_TOKEN": "offline-mastodon-token",
    "REDDIT_CLIENT_ID": "offline-reddit-id",
    "REDDIT_CLIENT_SECRET": "offline-reddit-secret",
}


def closed_port() -> int:
    """A port on 127.0.0.1 that nothing listens on: bound by us for a moment, then released."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def offline_sources(port: int) -> dict[str, dict[str, object]]:
    base = f"http://127.0.0.1:{port}"
    quick = {"retries": 0}
    return {
        "x": {"api_base": base, **quick},
        "bluesky": {"api_base": base, **quick},
        "mastodon": {"instances": [f"127.0.0.1:{port}"], "scheme": "http", "hashtags": ["instagram"], **quick},
        "reddit": {
            "user_agent": "python:org.example.backlash:1.0 (by /u/tester)",
            "oauth_url": base,
            "reddit_url": base,
            "subreddits": ["instagram"],
            **quick,
        },
    }


def test_each_source_names_the_host_and_the_refused_connection(
    write_config: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    port = closed_port()
    event = {**BASE_CONFIG["events"][0], "sources": ["x", "bluesky", "mastodon", "reddit"]}
    config = write_config(events=[event], sources=offline_sources(port))
    result = CliRunner().invoke(cli, ["--config", str(config), "collect"])
    assert result.exit_code == 1
    lines = result.stdout.splitlines()
    assert len(lines) == 4
    for source, line in zip(("x", "bluesky", "mastodon", "reddit"), lines, strict=True):
        assert line.startswith(f"instagram-tos-2012 / {source}: failed")
        assert f"127.0.0.1:{port}: cannot connect (connection refused)" in line
    assert not any(secret in result.output for secret in SECRETS.values())


def test_a_host_name_that_does_not_resolve_is_named_as_a_dns_failure() -> None:
    try:
        try:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        except socket.gaierror as lookup:
            raise ConnectionError("could not complete request") from lookup
    except ConnectionError as error:
        verdict = cannot_connect(error, "https://user:pw@mastodon.example/api?token=t")
    assert verdict.reason == "mastodon.example: cannot connect (host name not found in DNS)"
