"""Spike alerts to chat rooms and webhooks (`alerts.notify`): each target on its own, under email's rules.

Once per spike and at most one message per cool-down, recorded per target in the same sent and claim tables
as email; a push that fails releases its claim, so the next run posts it, and never stops the email.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from monitor.config import ChatTarget
from monitor.errors import DeliveryError
from monitor.pipeline.mail import AlertResult, alert_message, claim_expiry
from monitor.pipeline.workspace import Workspace

if TYPE_CHECKING:
    from monitor.analysis import Analysis, Spike

log = logging.getLogger(__name__)


def send_chat_alerts(
    ws: Workspace, analysis: Analysis, dry_run: bool = False, now: datetime | None = None
) -> list[AlertResult]:
    """Alert the new spikes of one analysed event to every `alerts.notify` target."""
    return [_send_to(ws, analysis, target, dry_run, now or datetime.now(UTC)) for target in ws.config.alerts.notify]


def _send_to(ws: Workspace, analysis: Analysis, target: ChatTarget, dry_run: bool, now: datetime) -> AlertResult:
    from monitor import digest as mail

    name, kind = target.key(), f"chat:{target.key()}"
    url = os.environ.get(target.url_env, "")
    if not url:
        detail = f"chat {name}: switched off, {target.url_env} is not set"
        log.info("alerts of %s: %s", analysis.event, detail)
        return AlertResult(analysis.event, "off", detail, channel=kind)
    settings = ws.config.alerts
    already = {s.key() for s in analysis.spikes if _recorded(ws, analysis.event, kind, s.key())}
    last = ws.store.last_sent(analysis.event, kind)
    plan = mail.plan_alerts(analysis, already, last, now, settings.min_volume, settings.cooldown, settings.max_age)
    if plan.hold:
        return _hold(ws, analysis.event, kind, plan.hold, dry_run)
    if not plan.send:
        return AlertResult(analysis.event, "none", f"chat {name}: no new spikes", channel=kind)
    if dry_run:
        return AlertResult(analysis.event, "written", f"chat {name}: dry run, not posted", channel=kind)
    return _push(ws, analysis, kind, url, plan.send, now)


def _push(ws: Workspace, analysis: Analysis, kind: str, url: str, spikes: list[Spike], now: datetime) -> AlertResult:
    """Claim the spikes for this target, post the alert, record it once the service accepted it."""
    keys = [spike.key() for spike in spikes]

    def compose() -> tuple[str, str, str]:
        message = alert_message(ws, analysis, spikes, now, chart=False)
        return str(message["Subject"]), _plain_text(message), str(message["Message-ID"])

    status, detail, message_id = claimed_push(ws, analysis.event, kind, keys, url, compose)
    return AlertResult(analysis.event, status, detail, keys, None, message_id, channel=kind)


def claimed_push(
    ws: Workspace,
    event_name: str,
    kind: str,
    keys: list[str],
    url: str,
    compose: Callable[[], tuple[str, str, str]],
    resend: bool = False,
) -> tuple[str, str, str | None]:
    """Claim keys for one chat target, post what compose() gives (title, body, message id), record the keys
    as sent once the service accepted it; a failed post releases the claim, so the next run posts it.

    Returns (status, detail, message id): "sent", "skipped" (another run has it, or it was sent) or "failed".
    """
    from monitor.chat import push

    expiry = claim_expiry(ws.config.email.timeout)
    if ws.store.claim_send(event_name, kind, keys, expiry, resend=resend) != "claimed":
        return "skipped", f"{kind}: being sent by another run, or sent", None
    title, body, message_id = compose()
    try:
        push(url, title, body)
    except BaseException as error:
        ws.store.release_claim(event_name, kind, keys)
        if not isinstance(error, DeliveryError):
            raise
        log.debug("%s of %s not posted: %s", kind, event_name, error)  # in the result, reported once
        return "failed", f"{kind}: {error}", None
    ws.store.finish_send(event_name, kind, keys, message_id)
    return "sent", f"{title} → {kind}", message_id


def _plain_text(message: object) -> str:
    from email.message import EmailMessage

    assert isinstance(message, EmailMessage)
    part = message.get_body(("plain",))
    return part.get_content() if isinstance(part, EmailMessage) else ""


def _recorded(ws: Workspace, event_name: str, kind: str, key: str) -> bool:
    return ws.store.was_sent(event_name, kind, key) or ws.store.was_sent(event_name, _held(kind), key)


def _held(kind: str) -> str:
    return kind.replace("chat:", "chat-held:", 1)


def _hold(ws: Workspace, event_name: str, kind: str, spikes: list[Spike], dry_run: bool) -> AlertResult:
    """Spikes that started inside this target's cool-down: recorded so they are never posted late."""
    keys = [spike.key() for spike in spikes]
    if not dry_run:
        for key in keys:
            ws.store.mark_sent(event_name, _held(kind), key, "")
    return AlertResult(
        event_name, "held", f"{kind}: {len(keys)} new spike(s) held (alerts.cooldown)", keys, channel=kind
    )
