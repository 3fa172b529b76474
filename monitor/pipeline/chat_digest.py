"""The digest's headline to chat: each `alerts.notify` target with `digest: true` gets the digest's subject line
and the dashboard link, once per period, under the email digest's rules (claims, catch-up, retry next run).

Each target is recorded on its own ("chat-digest:<name>"), so a chat that is down never holds up the email
or another chat, and the email's record never marks a chat's period as posted.
"""

from __future__ import annotations

import logging
import os
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from monitor.config import ChatTarget
from monitor.pipeline.mail import DigestResult, dashboard_link, latest_whole_period, unsent_periods
from monitor.pipeline.notify import claimed_push
from monitor.pipeline.workspace import Workspace

if TYPE_CHECKING:
    from monitor.analysis import Analysis
    from monitor.digest import Period

log = logging.getLogger(__name__)


def chat_targets(ws: Workspace) -> list[ChatTarget]:
    """The chat targets that get the digest's headline."""
    return [target for target in ws.config.alerts.notify if target.digest]


def send_chat_digests(
    ws: Workspace, analysis: Analysis, dry_run: bool = False, force: bool = False, now: datetime | None = None
) -> list[DigestResult]:
    """Post the headline of each due digest period to every chat target with `digest: true`."""
    results: list[DigestResult] = []
    for target in chat_targets(ws):
        results.extend(_send_to(ws, analysis, target, dry_run, force, now or datetime.now(UTC)))
    return results


def _send_to(
    ws: Workspace, analysis: Analysis, target: ChatTarget, dry_run: bool, force: bool, now: datetime
) -> list[DigestResult]:
    kind = f"chat-digest:{target.key()}"
    url = os.environ.get(target.url_env, "")
    if not url:
        detail = f"chat {target.key()}: switched off, {target.url_env} is not set"
        log.info("digest of %s: %s", analysis.event, detail)
        return [DigestResult(analysis.event, "off", detail, channel=kind)]
    latest = latest_whole_period(ws, analysis, now)
    if latest is None:
        return [DigestResult(analysis.event, "skipped", "no posts yet", channel=kind)]
    results = []
    for period in [latest] if dry_run or force else unsent_periods(ws, analysis, latest, kind):
        results.append(_post_period(ws, analysis, kind, url, period, dry_run, force))
        if results[-1].status == "failed":
            break  # the service is down: the rest waits for the next run, in order
    return results


def _post_period(
    ws: Workspace, analysis: Analysis, kind: str, url: str, period: Period, dry_run: bool, force: bool
) -> DigestResult:
    if not force and ws.store.was_sent(analysis.event, kind, period.key):
        return DigestResult(analysis.event, "skipped", f"{kind}: {period.key} already posted", period.key, channel=kind)
    if dry_run:
        return DigestResult(analysis.event, "written", f"{kind}: dry run, not posted", period.key, channel=kind)

    def compose() -> tuple[str, str, str]:
        from monitor import digest as mail

        subject = mail.digest_subject(analysis, period)  # the email's subject, without drawing its chart
        return subject, f"{subject}\n{dashboard_link(ws, analysis.event)}", mail.message_id(ws.config.email.sender)

    status, detail, message_id = claimed_push(ws, analysis.event, kind, [period.key], url, compose, resend=force)
    return DigestResult(analysis.event, status, detail, period.key, message_id=message_id, channel=kind)
