"""Spike alerts to chat through Apprise, against a real webhook on 127.0.0.1 (Apprise's json:// scheme)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from monitor.config import parse_config
from monitor.errors import ConfigError
from monitor.pipeline import Workspace, check_alerts, open_workspace, send_chat_alerts
from monitor.posts import Post
from monitor.sources.redaction import redact
from tests.conftest import BASE_CONFIG, database_url
from tests.fake_http import Answer, FakeJsonApi, Fault
from tests.test_digest import spike, tiny_png, with_spikes

EVENT = BASE_CONFIG["events"][0]["name"]
TOKEN = "T0KEN-s3cr3t-9f8e7d"


class Webhook(FakeJsonApi):
    """A chat webhook: accepts any JSON POST."""

    def answer(self, method: str, path: str, params: dict[str, str], headers: dict[str, str], body: Any) -> Answer:
        return 200, {"ok": True}, {}


@pytest.fixture
def webhook(monkeypatch: pytest.MonkeyPatch) -> Iterator[Webhook]:
    with Webhook() as server:
        monkeypatch.setenv("CHAT_HOOK_URL", f"json://{server.host}/hooks/{TOKEN}")
        yield server


@pytest.fixture
def chat_workspace(tmp_path: Path) -> Iterator[Callable[..., Workspace]]:
    opened: list[Workspace] = []

    def open_with(**overrides: Any) -> Workspace:
        alerts = {"cooldown": "6h", "min_volume": 20, "notify": [{"url_env": "CHAT_HOOK_URL"}]}
        document = {**BASE_CONFIG, "database": database_url(tmp_path), "alerts": alerts, **overrides}
        ws = open_workspace(config=parse_config(document, tmp_path))
        chart = ws.config.out_dir() / EVENT / "timeline.png"
        chart.parent.mkdir(parents=True, exist_ok=True)
        chart.write_bytes(tiny_png())
        opened.append(ws)
        return ws

    yield open_with
    for ws in opened:
        ws.close()


def posts_to(webhook: Webhook) -> list[Any]:
    return [request.body for request in webhook.requests_to(f"/hooks/{TOKEN}") if request.method == "POST"]


def test_a_spike_is_posted_once_and_the_cooldown_holds_the_next(
    webhook: Webhook, chat_workspace: Callable[..., Workspace]
) -> None:
    ws = chat_workspace()
    now = datetime.now(UTC)
    first = spike(now - timedelta(hours=2))
    [sent] = send_chat_alerts(ws, with_spikes(first), now=now)
    assert (sent.status, sent.spikes, sent.channel) == ("sent", [first.key()], "chat:chat_hook_url")
    [body] = posts_to(webhook)
    assert body["title"].startswith("Alert: Instagram terms of service change — volume spike (×23.7 the baseline)")
    assert "Volume spike" in body["message"] and "sell, photos, #boycottinstagram" in body["message"]
    assert ws.store.was_sent(EVENT, "chat:chat_hook_url", first.key())
    assert send_chat_alerts(ws, with_spikes(first), now=now)[0].status == "none"  # the same spike: once
    second = spike(now - timedelta(minutes=30))
    [held] = send_chat_alerts(ws, with_spikes(first, second), now=now)
    assert (held.status, held.spikes) == ("held", [second.key()])
    later = now + timedelta(hours=7)
    third = spike(later - timedelta(hours=1))
    assert send_chat_alerts(ws, with_spikes(first, second), now=later)[0].status == "none"  # held: never late
    assert send_chat_alerts(ws, with_spikes(first, second, third), now=later)[0].status == "sent"
    assert len(posts_to(webhook)) == 2


def test_a_failed_push_is_retried_next_run_and_names_no_token(
    webhook: Webhook, chat_workspace: Callable[..., Workspace]
) -> None:
    ws = chat_workspace()
    now = datetime.now(UTC)
    first = spike(now - timedelta(hours=2))
    webhook.fail(Fault(status=500), times=1)
    [failed] = send_chat_alerts(ws, with_spikes(first), now=now)
    assert failed.status == "failed" and TOKEN not in failed.detail
    assert not ws.store.was_sent(EVENT, "chat:chat_hook_url", first.key())
    [retried] = send_chat_alerts(ws, with_spikes(first), now=now + timedelta(minutes=15))
    assert retried.status == "sent"
    assert len(posts_to(webhook)) == 2  # the failed one reached the server, then the retry
    assert TOKEN not in redact(f"posting to json://{webhook.host}/hooks/{TOKEN} failed")


def test_without_the_variable_the_chat_is_off_in_one_line(chat_workspace: Callable[..., Workspace]) -> None:
    ws = chat_workspace()
    [off] = send_chat_alerts(ws, with_spikes(spike(datetime.now(UTC) - timedelta(hours=1))))
    assert (off.status, off.detail) == ("off", "chat chat_hook_url: switched off, CHAT_HOOK_URL is not set")


def storm_now(ws: Workspace, now: datetime) -> None:
    """Four quiet posts an hour for a week, then 120 in the hour two hours ago: a volume spike to alert."""
    start = now.replace(minute=0, second=0, microsecond=0) - timedelta(days=7)
    quiet = [start + timedelta(minutes=15 * n) for n in range(4 * 24 * 7 - 12)]
    burst_hour = now.replace(minute=0, second=0, microsecond=0) - timedelta(hours=2)
    storm = [burst_hour + timedelta(seconds=25 * n) for n in range(120)]
    posts = [
        Post(source="archive", id=str(n), created_at=moment, text="instagram terms")
        for n, moment in enumerate(quiet + storm)
    ]
    ws.store.add_posts(EVENT, posts)


def test_a_chat_that_fails_never_holds_up_the_email(
    webhook: Webhook, chat_workspace: Callable[..., Workspace], smtp_server: Any
) -> None:
    now = datetime.now(UTC)
    announced = (now - timedelta(days=1)).strftime("%Y-%m-%dT%H:00:00Z")
    event = {**BASE_CONFIG["events"][0], "milestones": {"announced": announced}, "follow_days": 2}
    ws = chat_workspace(events=[event], email=smtp_server.email_settings())
    storm_now(ws, now)
    webhook.fail(Fault(status=503), times=1)
    results = {result.channel: result for result in check_alerts(ws)}
    assert results["email"].status == "sent" and results["chat:chat_hook_url"].status == "failed"
    assert len(smtp_server.messages) == 1
    again = {result.channel: result for result in check_alerts(ws)}
    assert again["email"].status == "none" and again["chat:chat_hook_url"].status == "sent"
    [_failed, body] = posts_to(webhook)
    assert body["title"] == smtp_server.messages[0]["Subject"]


def test_chat_settings_are_checked(tmp_path: Path) -> None:
    def parse(alerts: dict[str, Any]) -> Any:
        return parse_config({**BASE_CONFIG, "alerts": alerts}, tmp_path)

    assert "CHAT_HOOK_URL" in parse({"notify": [{"url_env": "CHAT_HOOK_URL"}]}).secret_variables()
    with pytest.raises(ConfigError, match=r"^alerts.notify\[0\].url: unknown setting; secrets stay out of the file") as error:
        parse({"notify": [{"url": "slack://a/b/c"}]})
    assert "slack://" not in str(error.value)
    with pytest.raises(ConfigError, match=r"^alerts.notify\[0\].url_env: is required"):
        parse({"notify": [{"name": "team"}]})
    with pytest.raises(ConfigError, match="two entries are named 'a_b'"):
        parse({"notify": [{"url_env": "A_B"}, {"url_env": "a_b"}]})
    with pytest.raises(ConfigError, match=r"^alerts.notify\[0\].name: 'team slack' must start"):
        parse({"notify": [{"url_env": "HOOK", "name": "team slack"}]})


def test_no_log_line_shows_the_token_apprise_logs_included(
    webhook: Webhook, chat_workspace: Callable[..., Workspace]
) -> None:
    import io
    import logging

    from monitor.sources.redaction import RedactingFormatter

    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(RedactingFormatter("%(name)s: %(message)s"))  # as the CLI and the daemon log
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        ws = chat_workspace()
        webhook.fail(Fault(status=500), times=1)
        send_chat_alerts(ws, with_spikes(spike(datetime.now(UTC) - timedelta(hours=1))))
    finally:
        root.removeHandler(handler)
        root.setLevel(level)
    logged = stream.getvalue()
    assert "apprise" in logged and "/hooks/***" in logged  # Apprise did log the URL it posted to: masked
    assert TOKEN not in logged
