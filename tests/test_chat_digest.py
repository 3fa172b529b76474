"""The digest's headline to chat (`alerts.notify[].digest: true`), against a real webhook on 127.0.0.1 (Apprise json://)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from monitor.config import parse_config
from monitor.pipeline import Workspace, digest, open_workspace
from tests import test_chat
from tests.conftest import BASE_CONFIG, database_url
from tests.fake_http import Fault
from tests.test_chat import TOKEN, Webhook, posts_to, storm_now

EVENT = BASE_CONFIG["events"][0]["name"]
webhook = test_chat.webhook  # the fixture: a webhook on 127.0.0.1 that CHAT_HOOK_URL names


@pytest.fixture
def workspace(tmp_path: Path) -> Iterator[Any]:
    """Open a workspace with a week of posts up to now; the chat target gets digests unless told otherwise."""
    opened: list[Workspace] = []

    def open_with(email: dict[str, Any] | None = None, digest_to_chat: bool = True) -> Workspace:
        now = datetime.now(UTC)
        announced = (now - timedelta(days=3)).strftime("%Y-%m-%dT%H:00:00Z")
        event = {**BASE_CONFIG["events"][0], "milestones": {"announced": announced}, "follow_days": 2}
        alerts = {"notify": [{"url_env": "CHAT_HOOK_URL", "digest": digest_to_chat}]}
        document = {**BASE_CONFIG, "database": database_url(tmp_path), "events": [event], "alerts": alerts}
        ws = open_workspace(config=parse_config(document | ({"email": email} if email else {}), tmp_path))
        storm_now(ws, now)
        opened.append(ws)
        return ws

    yield open_with
    for ws in opened:
        ws.close()


def by_channel(results: list[Any]) -> dict[str, Any]:
    return {result.channel: result for result in results}


def test_the_digest_headline_goes_to_chat_once_per_period(webhook: Webhook, workspace: Any, smtp_server: Any) -> None:
    ws = workspace(email=smtp_server.email_settings())
    first = by_channel(digest(ws))
    assert first["email"].status == "sent" and first["chat-digest:chat_hook_url"].status == "sent"
    [body] = posts_to(webhook)
    subject = smtp_server.messages[0]["Subject"]
    assert body["title"] == subject and subject.startswith("Instagram terms of service change — ")
    dashboard = str((ws.config.out_dir() / EVENT / "index.html").resolve())
    assert body["message"] == f"{subject}\n{dashboard}"
    again = by_channel(digest(ws))
    assert again["email"].status == "skipped" and again["chat-digest:chat_hook_url"].status == "skipped"
    assert len(posts_to(webhook)) == 1 and len(smtp_server.messages) == 1


def test_a_failed_chat_post_is_retried_next_run_and_never_holds_up_the_email(
    webhook: Webhook, workspace: Any, smtp_server: Any
) -> None:
    ws = workspace(email=smtp_server.email_settings())
    webhook.fail(Fault(status=503), times=1)
    first = by_channel(digest(ws))
    assert first["email"].status == "sent" and first["chat-digest:chat_hook_url"].status == "failed"
    assert TOKEN not in first["chat-digest:chat_hook_url"].detail
    again = by_channel(digest(ws))
    assert again["email"].status == "skipped" and again["chat-digest:chat_hook_url"].status == "sent"
    [_failed, body] = posts_to(webhook)
    assert body["title"] == smtp_server.messages[0]["Subject"] and len(smtp_server.messages) == 1


def test_without_email_the_chat_still_gets_the_headline(webhook: Webhook, workspace: Any) -> None:
    results = by_channel(digest(workspace()))
    assert results["email"].status == "off" and results["chat-digest:chat_hook_url"].status == "sent"
    [body] = posts_to(webhook)
    assert body["title"].startswith("Instagram terms of service change — ")


def test_a_target_without_digest_gets_alerts_only(webhook: Webhook, workspace: Any, smtp_server: Any) -> None:
    results = digest(workspace(email=smtp_server.email_settings(), digest_to_chat=False))
    assert [result.channel for result in results] == ["email"] and posts_to(webhook) == []


def test_a_dry_run_posts_nothing(webhook: Webhook, workspace: Any) -> None:
    ws = workspace()
    results = by_channel(digest(ws, dry_run=True))
    assert results["chat-digest:chat_hook_url"].status == "written" and posts_to(webhook) == []
    assert by_channel(digest(ws))["chat-digest:chat_hook_url"].status == "sent"  # a dry run records nothing
