"""`digest` and spike alerts: which periods are due, claimed once, composed by monitor.digest and sent."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from monitor.errors import DeliveryError
from monitor.pipeline.report import analyze_event
from monitor.pipeline.workspace import Workspace

if TYPE_CHECKING:
    from email.message import EmailMessage

    from monitor.analysis import Analysis
    from monitor.digest import Period, Spend

log = logging.getLogger(__name__)


@dataclass
class DigestResult:
    """What `digest` did for one event."""

    event: str
    status: str  # "sent", "written" (dry run), "skipped", "off" (no recipients) or "failed"
    detail: str  # one line for the user
    period: str | None = None
    path: Path | None = None  # the .eml of a dry run
    message_id: str | None = None
    refused: list[str] = field(default_factory=list)  # recipients the server refused (the others got it)
    channel: str = "email"  # or "chat:<name>" for an alerts.notify target with digest: true


@dataclass
class AlertResult:
    """What `check_alerts` did for one event."""

    event: str
    status: str  # "sent", "written" (dry run), "held" (cool-down), "none", "off" or "failed"
    detail: str
    spikes: list[str] = field(default_factory=list)  # keys of the spikes this result is about
    path: Path | None = None
    message_id: str | None = None
    channel: str = "email"  # or "chat:<name>" for an alerts.notify target


def digest(
    ws: Workspace, event_name: str | None = None, dry_run: bool = False, force: bool = False
) -> list[DigestResult]:
    """Email (or, dry run, write as .eml) the digest of the latest whole period, once per period per event; then
    post its headline to each `alerts.notify` target with `digest: true`, each on its own (a chat that fails
    never holds up the email, nor the email the chat)."""
    from monitor.pipeline.chat_digest import chat_targets, send_chat_digests

    results = []
    for event in ws.config.selected_events(event_name):
        email_on = bool(ws.config.email.recipients) or dry_run
        if not email_on:
            results.append(DigestResult(event.name, "off", _EMAIL_OFF))
            log.info("digest of %s: %s", event.name, _EMAIL_OFF)
            if not chat_targets(ws):
                continue
        analysis = analyze_event(ws, event.name)
        if email_on:
            results.extend(send_due_digests(ws, analysis, dry_run=dry_run, force=force))
        results.extend(send_chat_digests(ws, analysis, dry_run=dry_run, force=force))
    return results


_EMAIL_OFF = "switched off: email.recipients is empty in the config"


CATCH_UP_PERIODS = 7  # the most digests one run sends: the latest period and unsent ones just before it


def send_due_digests(
    ws: Workspace, analysis: Analysis, dry_run: bool = False, force: bool = False, now: datetime | None = None
) -> list[DigestResult]:
    """Digest the latest period and, oldest first, the unsent periods since the last digest that went out.

    A period whose send failed (server down on the day) is therefore sent by the next run, even when
    that run falls in a later period. A first digest ever, a dry run or --force covers the latest only.
    """
    now = now or datetime.now(UTC)
    latest = latest_whole_period(ws, analysis, now)
    if latest is None:
        return [DigestResult(analysis.event, "skipped", "no posts yet")]
    periods = [latest] if dry_run or force else unsent_periods(ws, analysis, latest)
    results: list[DigestResult] = []
    for period in periods:
        results.append(send_digest(ws, analysis, dry_run, force, now, period))
        if results[-1].status == "failed":
            break  # the server is down: the rest waits for the next run, in order
    return results


def latest_whole_period(ws: Workspace, analysis: Analysis, now: datetime) -> Period | None:
    """The last whole period the event's data covers, or None before its first post."""
    from monitor import digest as mail

    as_of = mail.data_as_of(analysis, now)
    return None if as_of is None else mail.latest_period(as_of, ws.config.email.period, ws.config.tz)


def unsent_periods(ws: Workspace, analysis: Analysis, latest: Period, kind: str = "digest") -> list[Period]:
    """The latest period, preceded by the unsent ones back to the last period sent (at most CATCH_UP_PERIODS);
    kind: what was sent, "digest" (email) or a chat target's "chat-digest:<name>"."""
    due = [latest]
    if ws.store.last_sent(analysis.event, kind) is None or ws.store.was_sent(analysis.event, kind, latest.key):
        return due  # never sent (no back-catalogue for a new user), or up to date
    first_post = analysis.coverage.first_post
    while len(due) < CATCH_UP_PERIODS:
        earlier = due[0].previous()
        if ws.store.was_sent(analysis.event, kind, earlier.key) or (first_post and earlier.end <= first_post):
            break
        due.insert(0, earlier)
    return due


def send_digest(
    ws: Workspace,
    analysis: Analysis,
    dry_run: bool = False,
    force: bool = False,
    now: datetime | None = None,
    period: Period | None = None,
) -> DigestResult:
    """Digest one period (the latest by default): skip it when already sent (unless force), mark it sent once
    the server accepts."""
    now = now or datetime.now(UTC)
    period = period or latest_whole_period(ws, analysis, now)
    if period is None:
        return DigestResult(analysis.event, "skipped", "no posts yet")
    if not dry_run and not force and ws.store.was_sent(analysis.event, "digest", period.key):
        return DigestResult(analysis.event, "skipped", _already_sent(period.key), period.key)
    message = digest_message(ws, analysis, period, now)
    file_name = f"digest-{period.key}.eml"
    return _deliver(ws, message, analysis.event, "digest", [period.key], dry_run, file_name, resend=force)


def digest_message(ws: Workspace, analysis: Analysis, period: Period, now: datetime) -> EmailMessage:
    """The digest of one period as an email."""
    from monitor import digest as mail

    return mail.build_digest(
        analysis,
        period,
        sender=ws.config.email.sender,
        recipients=ws.config.email.recipients,
        dashboard_link=dashboard_link(ws, analysis.event),
        spend=_month_spend(ws, analysis, now),
        now=now,
    )


def _deliver(
    ws: Workspace,
    message: EmailMessage,
    event_name: str,
    kind: str,
    keys: list[str],
    dry_run: bool,
    file_name: str,
    resend: bool = False,
) -> DigestResult:
    """Write the message (dry run), or claim its keys, send it and record them as sent under the server's acceptance.

    The claim makes two runs started together send it once; a failed send releases it for the next run.
    """
    from monitor import digest as mail

    message_id = str(message["Message-ID"])
    subject = str(message["Subject"])
    if dry_run:
        path = mail.write_eml(message, ws.config.out_dir() / event_name / file_name)
        return DigestResult(event_name, "written", f"{subject} → {path}", keys[0], path, message_id)
    expiry = claim_expiry(ws.config.email.timeout)
    claim = ws.store.claim_send(event_name, kind, keys, expiry, resend=resend)
    if claim != "claimed":
        return DigestResult(event_name, "skipped", _unclaimed(claim, keys[0], expiry), keys[0])
    try:
        refused = mail.send(message, ws.config.email, os.environ, _ca_file(ws))
    except BaseException as error:
        ws.store.release_claim(event_name, kind, keys)
        if not isinstance(error, DeliveryError):
            raise
        log.debug("%s of %s not sent: %s", kind, event_name, error)  # the result says it; its caller reports it once
        return DigestResult(event_name, "failed", str(error), keys[0])
    ws.store.finish_send(event_name, kind, keys, message_id)
    to = ", ".join(address for address in ws.config.email.recipients if address not in refused)
    return DigestResult(event_name, "sent", f"{subject} → {to}", keys[0], None, message_id, refused)


CLAIM_MIN_EXPIRY = timedelta(minutes=10)


def claim_expiry(smtp_timeout: timedelta) -> timedelta:
    """When a claim to send is a crashed run's: well past the longest a send can take (bounded by email.timeout)."""
    return max(CLAIM_MIN_EXPIRY, 10 * smtp_timeout)


def _already_sent(key: str) -> str:
    return f"{key} already sent (--force sends again)"


def _unclaimed(claim: str, key: str, expiry: timedelta) -> str:
    if claim == "sent":
        return _already_sent(key)
    minutes = round(expiry.total_seconds() / 60)
    return f"{key} is being sent by another run (its claim is taken over after {minutes} min if that run died)"


def _ca_file(ws: Workspace) -> Path | None:
    ca_file = ws.config.email.ca_file
    return ws.config.resolve_path(ca_file) if ca_file else None


def _timeline_png(ws: Workspace, analysis: Analysis) -> bytes:
    """The timeline chart the last report wrote; drawn from the analysis in hand (and kept there) if none has."""
    from monitor.plots import write_timeline

    path = ws.config.out_dir() / analysis.event / "timeline.png"
    if not path.is_file():
        write_timeline(analysis, path)
    return path.read_bytes()


def dashboard_link(ws: Workspace, event_name: str) -> str:
    """The dashboard's web address when email.dashboard_url is set, else its path on this machine."""
    base = ws.config.email.dashboard_url
    if base:
        return f"{base.rstrip('/')}/{event_name}/index.html"
    return str((ws.config.out_dir() / event_name / "index.html").resolve())


def _month_spend(ws: Workspace, analysis: Analysis, now: datetime) -> Spend | None:
    """The X API's estimated spend this month, for events that collect from X."""
    from monitor.digest import Spend

    if "x" not in ws.config.event(analysis.event).sources:
        return None
    month_start = now.astimezone(ws.config.tz).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    posts_read, cost = ws.store.spend_since(month_start, source="x")
    return Spend("x", f"{month_start:%B %Y}", posts_read, cost)


def check_alerts(ws: Workspace, event_name: str | None = None, dry_run: bool = False) -> list[AlertResult]:
    """Email a short alert for spikes not alerted yet, at most one email per event per cool-down; then the same
    to each chat target (`alerts.notify`), each on its own: a chat that fails never holds up the email."""
    from monitor.pipeline.notify import send_chat_alerts

    results = []
    for event in ws.config.selected_events(event_name):
        email_on = bool(ws.config.email.recipients) or dry_run
        if not email_on:
            results.append(AlertResult(event.name, "off", _EMAIL_OFF))
            if not ws.config.alerts.notify:
                continue
        analysis = analyze_event(ws, event.name)
        if email_on:
            results.append(send_alerts(ws, analysis, dry_run=dry_run))
        results.extend(send_chat_alerts(ws, analysis, dry_run=dry_run))
    return results


def send_alerts(ws: Workspace, analysis: Analysis, dry_run: bool = False, now: datetime | None = None) -> AlertResult:
    """Alert the new spikes of one analysed event; spikes that start inside the cool-down are held, not alerted later."""
    from monitor import digest as mail

    now = now or datetime.now(UTC)
    settings = ws.config.alerts
    already = {s.key() for s in analysis.spikes if _alert_recorded(ws, analysis.event, s.key())}
    last = ws.store.last_sent(analysis.event, "alert")
    plan = mail.plan_alerts(analysis, already, last, now, settings.min_volume, settings.cooldown, settings.max_age)
    if plan.hold:
        return _hold_alerts(ws, analysis.event, plan.hold, last, dry_run)
    if not plan.send:
        waiting = f" ({len(plan.waiting)} too small or too old)" if plan.waiting else ""
        return AlertResult(analysis.event, "none", f"no new spikes{waiting}")
    message = alert_message(ws, analysis, plan.send, now)
    keys = [spike.key() for spike in plan.send]
    file_name = f"alert-{keys[0].replace(':', '-').replace('+', 'p')}.eml"
    sent = _deliver(ws, message, analysis.event, "alert", keys, dry_run, file_name)
    return AlertResult(analysis.event, sent.status, sent.detail, keys, sent.path, sent.message_id)


def alert_message(
    ws: Workspace, analysis: Analysis, spikes: list[Any], now: datetime, chart: bool = True
) -> EmailMessage:
    """The alert about these spikes as an email (its plain-text part is what a chat gets)."""
    from monitor import digest as mail

    return mail.build_alert(
        analysis,
        spikes,
        sender=ws.config.email.sender,
        recipients=ws.config.email.recipients,
        timeline_png=_timeline_png(ws, analysis) if chart else None,
        dashboard_link=dashboard_link(ws, analysis.event),
        now=now,
    )


def _alert_recorded(ws: Workspace, event_name: str, key: str) -> bool:
    return ws.store.was_sent(event_name, "alert", key) or ws.store.was_sent(event_name, "alert-held", key)


def _hold_alerts(
    ws: Workspace, event_name: str, spikes: list[Any], last: datetime | None, dry_run: bool
) -> AlertResult:
    """Record spikes that started inside the cool-down so they are not alerted late; the digest lists them."""
    keys = [spike.key() for spike in spikes]
    if not dry_run:
        for key in keys:
            ws.store.mark_sent(event_name, "alert-held", key, "")
    until = (last + ws.config.alerts.cooldown) if last else None
    detail = (
        f"{len(keys)} new spike(s) held: last alert less than alerts.cooldown ago (until {until:%Y-%m-%d %H:%M} UTC)"
    )
    return AlertResult(event_name, "held", detail, keys)
