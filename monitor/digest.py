"""Digests and spike alerts: an Analysis becomes an email (plain text + HTML with the chart inline), sent over SMTP.

The only module that imports smtplib. Building a message is pure; `send` is the one function that talks to a server.
"""

from __future__ import annotations

import contextlib
import smtplib
import socket
import ssl
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from functools import cache
from itertools import pairwise
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pandas as pd

from monitor.analysis import BIN_WIDTH, NO_BASELINE, Analysis, Spike, TopPost, WindowStats, window_stats
from monitor.config import EmailConfig
from monitor.errors import ConfigError, DeliveryError
from monitor.files import replacing
from monitor.wording import (
    baseline_note,
    day,
    feeds_text,
    language_note,
    per_bin,
    points,
    share,
    sources_text,
    spike_size,
    step_by_step,
    who_what_heading,
    who_what_short,
    window_note,
)

NO_RECIPIENTS = "undisclosed-recipients:;"  # RFC 5322 empty group: a dry run without configured recipients
TOP_POSTS_SHOWN = 5
DRIVERS_SHOWN = 6
POST_TEXT_LIMIT = 400
TIMELINE_DAYS = 7  # days in a digest's text timeline: the period and the days before it (two periods for a week)
ALERT_TIMELINE_BINS = 12  # bins in an alert's text timeline, ending with the last bin of its spikes
ALERT_BINS_BEFORE = 6  # bins before the first spike shown, so the text shows what the spike rose from
BAR_WIDTH = 24


# ---- periods and their numbers -------------------------------------------------------------


@dataclass(frozen=True)
class Period:
    """One whole day, or seven whole days, in the config's zone: what one digest covers."""

    kind: str  # "day" or "week"
    start: datetime  # midnight in the config's zone
    end: datetime  # exclusive: midnight after the last day

    @property
    def days(self) -> int:
        return 1 if self.kind == "day" else 7

    @property
    def key(self) -> str:
        """Identity in the store and in file names, e.g. 2012-12-18 or 2012-12-12_2012-12-18."""
        first, last = self.start.date(), (self.end - timedelta(hours=12)).date()
        return first.isoformat() if self.kind == "day" else f"{first.isoformat()}_{last.isoformat()}"

    def previous(self) -> Period:
        tz = self.start.tzinfo
        start_day = self.start.date() - timedelta(days=self.days)
        return Period(self.kind, datetime.combine(start_day, time(0), tzinfo=tz), self.start)

    def label(self) -> str:
        """'Tuesday 18 December 2012' or '12–18 December 2012'."""
        last = (self.end - timedelta(hours=12)).date()
        if self.kind == "day":
            return f"{self.start:%A} {self.start.day} {self.start:%B %Y}"
        if self.start.month == last.month:
            return f"{self.start.day}–{last.day} {last:%B %Y}"
        return f"{self.start.day} {self.start:%B} – {last.day} {last:%B %Y}"


def latest_period(as_of: datetime, kind: str, tz: ZoneInfo) -> Period:
    """The last whole day (kind "day") or seven days (kind "week") that ended at or before as_of."""
    end_day = as_of.astimezone(tz).date()
    length = 1 if kind == "day" else 7
    start = datetime.combine(end_day - timedelta(days=length), time(0), tzinfo=tz)
    return Period(kind, start, datetime.combine(end_day, time(0), tzinfo=tz))


def data_as_of(analysis: Analysis, now: datetime) -> datetime | None:
    """Until when the data runs: now for a live event, the end of the last post's bin (or of the event's
    window, if sooner) for an archive."""
    last = analysis.coverage.last_post
    if last is None:
        return None
    width = BIN_WIDTH[analysis.bin]
    ends = [now, last + width]
    if not analysis.bins.empty:
        ends.append(analysis.bins.index[-1].to_pydatetime() + width)
    if analysis.window_end is not None:
        ends.append(analysis.window_end)
    return min(ends)


def spikes_in(spikes: Sequence[Spike], start: datetime, end: datetime) -> list[Spike]:
    """Spikes that overlap [start, end)."""
    return [spike for spike in spikes if spike.start < end and spike.end >= start]


# ---- formatting ------------------------------------------------------------------------------


def thousands(value: float) -> str:
    """12345 → '12,345', as the page and every other sentence write it."""
    return f"{round(value):,}"


def signed(value: float | None, digits: int = 2) -> str:
    return "–" if value is None else f"{value:+.{digits}f}".replace("-", "−")


def relative_change(now: float | None, before: float | None) -> str:
    """A change of a count: '+38 %', '−12 %', '×4.0', 'up from none', 'none either' or '–' (unknown)."""
    if now is None or before is None:
        return "–"
    if before == 0:
        return "none either" if now == 0 else "up from none"
    if now / before >= 3:
        return f"×{now / before:.1f}"
    return signed((now / before - 1) * 100, 0) + " %"


def day_label(midnight: datetime) -> str:
    """'Mon 17 Dec' (the day in midnight's own zone)."""
    return f"{midnight:%a} {midnight.day} {midnight:%b}"


def when(moment: datetime, tz: ZoneInfo) -> str:
    local = moment.astimezone(tz)
    return f"{local:%a} {local.day} {local:%b %H:%M}"


def describe_spike(spike: Spike, analysis: Analysis) -> str:
    """One sentence: what, when, how big (against what)."""
    tz = ZoneInfo(analysis.timezone)
    span = f"{when(spike.start, tz)} to {when(spike.end, tz)}" if spike.end != spike.start else when(spike.start, tz)
    z = f"z {spike.z:.1f}".replace("-", "−")
    if spike.kind == "volume":
        peak = f"peak {thousands(spike.peak_value)} posts {per_bin(analysis.bin)} at {when(spike.peak, tz)}"
        return f"Volume spike {span}: {peak} ({spike_size(spike, analysis)}, {z})"
    peak = f"mean sentiment {signed(spike.peak_value)} at {when(spike.peak, tz)}"
    return f"Sentiment dip {span}: {peak} ({spike_size(spike, analysis)}, {z})"


# ---- the timeline in words ---------------------------------------------------------------------------


@dataclass(frozen=True)
class TimelineRow:
    """One day or bin of the timeline chart as text: the plain-text email's stand-in for the image."""

    label: str
    posts: str
    tone: str
    negative: str
    in_focus: bool  # a day of the digest's period, or a bin inside an alerted spike
    bar: str  # posts as a bar of '#', scaled to the busiest row
    notes: str  # the milestones that fall in it

    @property
    def tail(self) -> str:
        """The bar, then the notes: the last column, without trailing spaces."""
        return f"{self.bar:<{BAR_WIDTH}}  {self.notes}".rstrip()


Window = tuple[datetime, datetime]


def timeline_rows(
    analysis: Analysis, windows: Sequence[Window], focus: Window, labels: Sequence[str]
) -> list[TimelineRow]:
    """Posts, mean tone and negative share per window, those inside focus marked, milestones named."""
    stats = [window_stats(analysis.bins, start, end) for start, end in windows]
    busiest = max((window.posts for window in stats), default=0)
    return [
        TimelineRow(
            label=label,
            posts=thousands(window.posts),
            tone=signed(window.mean_compound),
            negative=share(window.negative_share),
            in_focus=focus[0] <= start and end <= focus[1],
            bar=_bar(window.posts, busiest),
            notes=", ".join(name for name, moment in analysis.milestones.items() if start <= moment < end),
        )
        for (start, end), window, label in zip(windows, stats, labels, strict=True)
    ]


def _bar(posts: int, busiest: int) -> str:
    """At least one mark for any post, so a quiet day never looks like a silent one."""
    if not busiest or not posts:
        return ""
    return "#" * max(1, round(posts / busiest * BAR_WIDTH))


def day_windows(end: datetime, days: int) -> list[Window]:
    """The `days` whole days before end (a midnight), each from midnight to midnight in end's zone."""
    first = end.date() - timedelta(days=days)
    midnights = [datetime.combine(first + timedelta(days=n), time(0), tzinfo=end.tzinfo) for n in range(days + 1)]
    return list(pairwise(midnights))


def period_timeline(analysis: Analysis, period: Period) -> list[TimelineRow]:
    """Day by day: the period and the days before it (at least a week; a weekly digest shows the week before too)."""
    windows = day_windows(period.end, max(TIMELINE_DAYS, 2 * period.days))
    labels = [day_label(start) for start, _end in windows]
    return timeline_rows(analysis, windows, (period.start, period.end), labels)


def spike_timeline(analysis: Analysis, spikes: Sequence[Spike]) -> list[TimelineRow]:
    """Bin by bin, from a few bins before the first spike to the end of the last one (at most ALERT_TIMELINE_BINS)."""
    tz = ZoneInfo(analysis.timezone)
    hourly, daily = analysis.bin == "hour", analysis.bin == "day"
    step = BIN_WIDTH[analysis.bin]
    # hours step in UTC (a DST change skips or repeats a local hour); 6 h and days step on the local wall clock
    anchor = UTC if hourly else tz
    first = min(spike.start for spike in spikes).astimezone(anchor)
    last = max(spike.end for spike in spikes).astimezone(anchor)
    count = min(ALERT_TIMELINE_BINS, round((last - first) / step) + 1 + ALERT_BINS_BEFORE)
    starts = [last - step * n for n in range(count - 1, -1, -1)]
    windows = [(start, start + step) for start in starts]
    labels = [day_label(start) if daily else when(start, tz) for start in starts]
    focus = (first, last + step)
    return timeline_rows(analysis, windows, focus, labels)


# ---- what a digest says ------------------------------------------------------------------------


@dataclass(frozen=True)
class Spend:
    """Estimated API spend of the month so far (for paid sources such as X)."""

    source: str
    month: str  # e.g. "December 2012"
    posts_read: int
    cost_usd: float


@dataclass(frozen=True)
class TableRow:
    """One metric: this period, the previous one and the baseline, already formatted."""

    label: str
    current: str
    previous: str
    change_previous: str
    baseline: str
    change_baseline: str


@dataclass(frozen=True)
class PostView:
    """A top post as shown in the email."""

    text: str
    author: str
    url: str | None
    when: str
    compound: str
    engagement: str


@dataclass
class DigestView:
    """Everything the digest templates show, formatted."""

    title: str
    headline: str
    lead: str  # the volume and tone behind the headline (never its negative share again)
    basis: str  # what the period is compared with, in words
    has_baseline: bool  # the table shows the baseline's columns
    period_label: str
    previous_label: str
    timezone: str
    rows: list[TableRow]
    spikes: list[str]
    churn: str
    posts_heading: str
    posts: list[PostView]
    coverage: list[str]
    dashboard_link: str | None
    dashboard_is_url: bool
    simulated: bool
    chart_cid: str | None = None
    drivers: list[str] = field(default_factory=list)
    timeline: list[TimelineRow] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # a thin baseline, posts outside the window
    who_what: list[str] = field(default_factory=list)  # wording.who_what_short: top hashtags, mentions, domains, accounts
    who_what_heading: str = ""


def comparison_rows(current: WindowStats, previous: WindowStats, baseline: WindowStats | None) -> list[TableRow]:
    """Posts, mean sentiment, negative and churn share: this period vs the previous period and the baseline.

    Without a usable baseline its columns say "–" and the templates leave them out: the basis line says why.
    """
    baseline = baseline or NO_BASELINE
    typical = baseline.posts_over(current.hours) if baseline.hours else None
    return [
        TableRow(
            "Posts",
            thousands(current.posts),
            thousands(previous.posts),
            relative_change(current.posts, previous.posts),
            "–" if typical is None else thousands(typical),
            relative_change(current.posts, typical),
        ),
        TableRow(
            "Mean sentiment (−1…+1)",
            signed(current.mean_compound),
            signed(previous.mean_compound),
            _difference(current.mean_compound, previous.mean_compound),
            signed(baseline.mean_compound),
            _difference(current.mean_compound, baseline.mean_compound),
        ),
        _share_row("Negative posts", current.negative_share, previous.negative_share, baseline.negative_share),
        _share_row("Say they will leave", current.churn_share, previous.churn_share, baseline.churn_share),
    ]


def _difference(now: float | None, before: float | None) -> str:
    return "–" if now is None or before is None else signed(now - before)


def _share_row(label: str, current: float | None, previous: float | None, baseline: float | None) -> TableRow:
    return TableRow(
        label,
        share(current),
        share(previous),
        points(current, previous),
        share(baseline),
        points(current, baseline),
    )


@dataclass(frozen=True)
class Basis:
    """What this period is compared with, in the subject, the lead and the table alike."""

    stats: WindowStats
    short: str  # in the subject and the headline: "vs baseline", "vs the day before"
    words: str  # the sentence under the table that says what it is
    typical: str  # what the basis's posts are, in the lead: "on a typical baseline day", "the day before"


def comparison_basis(analysis: Analysis, period: Period, previous: WindowStats, baseline: WindowStats | None) -> Basis:
    """The baseline when it holds enough posts, else the previous period."""
    tz = ZoneInfo(analysis.timezone)
    span = "one day" if period.kind == "day" else "seven days"
    if baseline is not None:
        days = f"{day(analysis.baseline_start, tz, year=False)} – {day(analysis.baseline_end, tz)}"
        words = f"Compared with the baseline: the days before the first milestone ({days}), scaled to {span}."
        typical = "on a typical baseline day" if period.kind == "day" else "in a typical baseline week"
        return Basis(baseline, "vs baseline", words, typical)
    before = "the day before" if period.kind == "day" else "the week before"
    words = f"Compared with {before}: the baseline holds too few posts to compare with."
    return Basis(previous, f"vs {before}", words, before)


def headline(current: WindowStats, basis: Basis, spike_count: int) -> str:
    """'negativity 27 %, +4 pts vs baseline, 2 spikes' — the subject line's news, in percentage points."""
    parts = [_tone_headline(current, basis)]
    if spike_count:
        parts.append(f"{spike_count} spike{'s' if spike_count != 1 else ''}")
    return ", ".join(parts)


def _tone_headline(current: WindowStats, basis: Basis) -> str:
    now, before = current.negative_share, basis.stats.negative_share
    if now is not None and before is not None:
        return f"negativity {share(now)}, {points(now, before)} {basis.short}"
    if now is not None:
        return f"negativity {share(now)}"
    return f"{thousands(current.posts)} posts, none scored yet"


def lead(current: WindowStats, basis: Basis) -> str:
    """The volume and the tone behind the headline (which already gave the negative share):
    '186 posts against 369 on a typical baseline day (−50 %); mean sentiment +0.11 (baseline +0.09).'"""
    typical = basis.stats.posts_over(current.hours) if basis.stats.hours else None
    against = basis.short.removeprefix("vs ")
    volume = f"{thousands(current.posts)} post{'s' if current.posts != 1 else ''}"
    if typical:
        volume += f" against {thousands(typical)} {basis.typical} ({relative_change(current.posts, typical)})"
    elif typical == 0:
        volume += f"; {against} had none"
    if current.mean_compound is None:
        return volume + "; none scored yet."
    tone = f"mean sentiment {signed(current.mean_compound)}"
    if basis.stats.mean_compound is not None:
        tone += f" ({against} {signed(basis.stats.mean_compound)})"
    return f"{volume}; {tone}."


def post_view(post: TopPost, tz: ZoneInfo) -> PostView:
    text = post.text if len(post.text) <= POST_TEXT_LIMIT else post.text[: POST_TEXT_LIMIT - 1] + "…"
    return PostView(
        text=text,
        author=f"@{post.author}" if post.author else f"unknown author ({post.source})",
        url=post.url if post.url and post.url.startswith(("https://", "http://")) else None,  # no javascript:
        when=when(post.created_at, tz),
        compound=signed(post.compound),
        engagement=thousands(post.engagement),
    )


def coverage_lines(analysis: Analysis, spend: Spend | None) -> list[str]:
    """What the numbers rest on: posts read vs counted, scored, and the month's API spend."""
    coverage = analysis.coverage
    sources = sources_text(analysis, thousands)
    lines = [f"Posts read: {thousands(coverage.posts)}" + (f" ({sources})" if sources else "")]
    if coverage.counted:
        share = coverage.posts / coverage.counted
        lines.append(f"Posts counted by the platform: {thousands(coverage.counted)} — we read {share * 100:.0f} %")
    skipped = coverage.not_scored_language + coverage.not_scored_other + coverage.unscored
    lines.append(f"Scored: {thousands(coverage.scored)}; not scored: {thousands(skipped)}")
    if coverage.language_guessed or coverage.language_undetermined:
        lines.append(f"Language: {language_note(analysis, thousands)}")
    if coverage.reposts or coverage.quotes:
        lines.append(f"Reposts: {thousands(coverage.reposts)}; quotes: {thousands(coverage.quotes)}")
    if coverage.feeds_read:
        lines.append(f"Feeds read (statuses): {feeds_text(analysis, thousands)}")
    networks = analysis.network_totals()
    if len(networks) > 1:
        lines.append("By network: " + "; ".join(_network_text(*network) for network in networks))
    if spend is not None:
        lines.append(
            f"{spend.source.upper()} API spend in {spend.month}: {thousands(spend.posts_read)} posts read, "
            f"about ${spend.cost_usd:,.2f}"
        )
    return lines


def _network_text(name: str, posts: int, share: float, tone: float | None) -> str:
    mood = "tone –" if tone is None else f"tone {tone:+.2f}"
    return f"{name} {thousands(posts)} posts ({share * 100:.0f} %), {mood}"


def digest_view(
    analysis: Analysis,
    period: Period,
    dashboard_link: str | None = None,
    spend: Spend | None = None,
) -> DigestView:
    """The numbers of one period of an analysed event, ready for the templates."""
    tz = ZoneInfo(analysis.timezone)
    current = window_stats(analysis.bins, period.start, period.end)
    previous_period = period.previous()
    previous = window_stats(analysis.bins, previous_period.start, previous_period.end)
    baseline = None if analysis.baseline_fallback else window_stats(analysis.bins, analysis.baseline_start, analysis.baseline_end)
    spikes = spikes_in(analysis.spikes, period.start, period.end)
    heading, posts = _top_posts(analysis, period, tz)
    basis = comparison_basis(analysis, period, previous, baseline)
    return DigestView(
        title=analysis.title or analysis.event,
        headline=headline(current, basis, len(spikes)),
        lead=lead(current, basis),
        basis=basis.words,
        has_baseline=baseline is not None,
        period_label=period.label(),
        previous_label=previous_period.label(),
        timezone=analysis.timezone,
        rows=comparison_rows(current, previous, baseline),
        spikes=[describe_spike(spike, analysis) for spike in spikes],
        churn=share(current.churn_share),
        posts_heading=heading,
        posts=posts,
        coverage=coverage_lines(analysis, spend),
        notes=[note for note in (baseline_note(analysis), window_note(analysis)) if note],
        dashboard_link=dashboard_link,
        dashboard_is_url=bool(dashboard_link and dashboard_link.startswith(("http://", "https://"))),
        simulated=analysis.coverage.simulated,
        drivers=_driver_terms(analysis),
        who_what=who_what_short(analysis, thousands),
        who_what_heading=who_what_heading(analysis),
        timeline=period_timeline(analysis, period),
    )


def _top_posts(analysis: Analysis, period: Period, tz: ZoneInfo) -> tuple[str, list[PostView]]:
    """The most-engaged negative posts of the period, or of the whole event when the period has none."""
    in_period = [post for post in analysis.top_posts if period.start <= post.created_at < period.end]
    chosen, heading = (
        (in_period, "Top negative posts of the period")
        if in_period
        else (
            analysis.top_posts,
            "Top negative posts since the announcement (none in this period)",
        )
    )
    ranked = sorted(chosen, key=lambda post: post.engagement, reverse=True)[:TOP_POSTS_SHOWN]
    return heading, [post_view(post, tz) for post in ranked]


def _driver_terms(analysis: Analysis) -> list[str]:
    return [driver.term for driver in analysis.drivers[:DRIVERS_SHOWN]]


# ---- messages -----------------------------------------------------------------------------------


@cache
def _templates() -> Any:
    from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

    return Environment(
        loader=PackageLoader("monitor", "templates"),
        autoescape=select_autoescape(["html"]),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


def render(template: str, **context: Any) -> str:
    return str(_templates().get_template(template).render(**context))


def build_digest(
    analysis: Analysis,
    period: Period,
    *,
    sender: str,
    recipients: Sequence[str],
    dashboard_link: str | None = None,
    spend: Spend | None = None,
    now: datetime | None = None,
) -> EmailMessage:
    """The digest email of one period: text and HTML alternatives, a chart made for ~600 px inline by cid
    (the period's days highlighted; the report's 1600 px chart is unreadable in a mail)."""
    from monitor.plots import small_timeline_png

    view = digest_view(analysis, period, dashboard_link, spend)
    timeline_png = small_timeline_png(analysis, (period.start, period.end))
    return _compose("digest", view, _digest_subject(view), timeline_png, sender, recipients, now)


def digest_subject(analysis: Analysis, period: Period) -> str:
    """The digest's subject line, its headline, without drawing its chart (what a chat gets)."""
    view = digest_view(analysis, period)
    return _subject(view, _digest_subject(view))


def _digest_subject(view: DigestView) -> str:
    return f"{view.title} — {view.headline}"


def _subject(view: DigestView | AlertView, subject: str) -> str:
    return ("[simulated] " if view.simulated else "") + subject


def message_id(sender: str) -> str:
    """A new Message-ID in the sender's domain."""
    return make_msgid("backlash", _domain(sender))


@dataclass
class AlertView:
    """Everything the alert templates show, formatted."""

    title: str
    spikes: list[str]
    drivers: list[str]
    dashboard_link: str | None
    dashboard_is_url: bool
    simulated: bool
    timezone: str
    chart_cid: str | None = None
    bin: str = "Hour by hour"  # the text timeline's heading: wording.step_by_step of the bin
    timeline: list[TimelineRow] = field(default_factory=list)


def build_alert(
    analysis: Analysis,
    spikes: Sequence[Spike],
    *,
    sender: str,
    recipients: Sequence[str],
    timeline_png: bytes | None = None,
    dashboard_link: str | None = None,
    now: datetime | None = None,
) -> EmailMessage:
    """A short email about spikes that just started: what, when, how big, the chart and the driving terms."""
    view = AlertView(
        title=analysis.title or analysis.event,
        spikes=[describe_spike(spike, analysis) for spike in spikes],
        drivers=_driver_terms(analysis),
        dashboard_link=dashboard_link,
        dashboard_is_url=bool(dashboard_link and dashboard_link.startswith(("http://", "https://"))),
        simulated=analysis.coverage.simulated,
        timezone=analysis.timezone,
        bin=step_by_step(analysis.bin),
        timeline=spike_timeline(analysis, spikes),
    )
    subject = f"Alert: {view.title} — {_alert_headline(spikes, analysis)}"
    return _compose("alert", view, subject, timeline_png, sender, recipients, now)


def _alert_headline(spikes: Sequence[Spike], analysis: Analysis) -> str:
    first = spikes[0]
    news = f"{'volume spike' if first.kind == 'volume' else 'sentiment dip'} ({spike_size(first, analysis)})"
    return news + (f" and {len(spikes) - 1} more" if len(spikes) > 1 else "")


def _compose(
    template: str,
    view: DigestView | AlertView,
    subject: str,
    png: bytes | None,
    sender: str,
    recipients: Sequence[str],
    now: datetime | None,
) -> EmailMessage:
    """The message: `template`.txt and .html rendered from the view, the chart inline by cid when there is one."""
    chart_cid = make_msgid("timeline", _domain(sender)) if png else None
    view.chart_cid = chart_cid[1:-1] if chart_cid else None
    text, html = render(f"{template}.txt", view=view), render(f"{template}.html", view=view)
    message = EmailMessage()
    message["Subject"] = _subject(view, subject)
    message["From"] = sender
    message["To"] = ", ".join(recipients) if recipients else NO_RECIPIENTS
    message["Date"] = format_datetime(now or datetime.now(UTC))
    message["Message-ID"] = message_id(sender)
    message.set_content(text, charset="utf-8")
    message.add_alternative(html, subtype="html", charset="utf-8")
    if png is not None and chart_cid is not None:
        html_part = next(part for part in message.iter_parts() if part.get_content_type() == "text/html")
        html_part.add_related(png, "image", "png", cid=chart_cid, filename="timeline.png", disposition="inline")
    return message


def _domain(address: str) -> str:
    """The domain of the From address, for Message-ID and Content-ID (never a DNS lookup)."""
    domain = address.rpartition("@")[2].strip(" >")
    return domain or "backlash-monitor.invalid"


def write_eml(message: EmailMessage, path: Path) -> Path:
    """Write the message as a .eml file a mail client opens (atomically)."""
    with replacing(path) as partial:
        partial.write_bytes(message.as_bytes())
    return path


# ---- delivery -------------------------------------------------------------------------------------


def smtp_credentials(settings: EmailConfig, environ: Mapping[str, str]) -> tuple[str, str] | None:
    """User and password from the environment variables the config names; no user means no login."""
    user = environ.get(settings.username_env) if settings.username_env else None
    if not user:
        return None
    password = environ.get(settings.password_env) if settings.password_env else None
    if not password:
        raise ConfigError(f"email.password_env: ${settings.password_env} is not set, but ${settings.username_env} is")
    return user, password


def send(
    message: EmailMessage, settings: EmailConfig, environ: Mapping[str, str], ca_file: Path | None = None
) -> list[str]:
    """Hand the message to the SMTP server; return the recipients it refused (the others got it).

    Raises DeliveryError with one line (never the password) when the server is unreachable, refuses the
    login or every recipient, does not answer within the timeout, answers with a reply longer than
    MAX_REPLY_BYTES, or the whole conversation passes its deadline.
    """
    credentials = smtp_credentials(settings, environ)
    watchdog = _Watchdog(conversation_deadline(settings).total_seconds())
    try:
        with watchdog, _connect(settings, ca_file, watchdog) as smtp:
            if credentials:
                smtp.login(*credentials)
            refused = smtp.send_message(message)
    except (smtplib.SMTPException, OSError, ReplyTooLongError) as error:
        reason = _failure_reason(error, settings, credentials, watchdog.expired)
        if credentials:
            reason = reason.replace(credentials[1], "***")
        where = f"{settings.smtp_host}:{settings.smtp_port} ({settings.security})"
        raise DeliveryError(f"cannot send email through {where}: {reason}") from None
    return sorted(refused)


MAX_REPLY_BYTES = 64 * 1024  # a mail server's reply is a few lines; past this it is not talking SMTP
CONVERSATION_TIMEOUTS = 4  # the whole conversation (connect to QUIT) may last this many email.timeout


def conversation_deadline(settings: EmailConfig) -> timedelta:
    """The longest a whole SMTP conversation may last: email.timeout bounds each wait, this bounds them all."""
    return settings.timeout * CONVERSATION_TIMEOUTS


class ReplyTooLongError(Exception):
    """The server's reply went past MAX_REPLY_BYTES (e.g. endless `220-` continuation lines).

    Not an OSError (smtplib.SMTPException is one): smtplib would turn it into "Connection unexpectedly closed".
    """


class _CappedReplies:
    """The reply stream smtplib reads line by line, counting bytes: one reply may not pass MAX_REPLY_BYTES.

    smtplib caps each line but not the number of continuation lines, so a hostile server could fill memory.
    """

    def __init__(self, file: Any) -> None:
        self.file = file
        self.used = 0

    def readline(self, size: int = -1) -> bytes:
        line = bytes(self.file.readline(size))
        self.used += len(line)
        if self.used > MAX_REPLY_BYTES:
            raise ReplyTooLongError(f"the server's reply went past {MAX_REPLY_BYTES // 1024} KB; is it a mail server?")
        return line

    def close(self) -> None:
        self.file.close()


def _capped(smtp: smtplib.SMTP) -> _CappedReplies | None:
    """The connection's reply stream with a fresh byte count (opened as smtplib would when it is not yet)."""
    file = smtp.file.file if isinstance(smtp.file, _CappedReplies) else smtp.file
    if file is None and smtp.sock is not None:
        file = smtp.sock.makefile("rb")
    return None if file is None else _CappedReplies(file)


class _Watchdog:
    """Ends an SMTP conversation at its deadline by shutting its socket down, whatever call is blocked on it.

    A per-call timeout does not bound a server that keeps sending a little: the deadline does.
    """

    def __init__(self, seconds: float) -> None:
        self.smtp: smtplib.SMTP | None = None
        self.expired = False
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True

    def __enter__(self) -> _Watchdog:
        self._timer.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._timer.cancel()
        if self.smtp is not None:
            self.smtp.close()  # also when connecting failed half-way: smtplib leaves that socket open

    def _expire(self) -> None:
        self.expired = True
        sock = self.smtp.sock if self.smtp is not None else None
        if sock is not None:
            with contextlib.suppress(OSError):  # already closed
                sock.shutdown(socket.SHUT_RDWR)


class BoundedSMTP(smtplib.SMTP):
    """smtplib.SMTP with each reply capped at MAX_REPLY_BYTES, ended by its watchdog at the deadline."""

    def __init__(self, watchdog: _Watchdog, host: str, port: int, timeout: float) -> None:
        watchdog.smtp = self  # before connecting: the greeting is already under the deadline
        super().__init__(host, port, timeout=timeout)

    def getreply(self) -> tuple[int, bytes]:
        self.file = _capped(self)
        return super().getreply()


class BoundedSMTPSSL(smtplib.SMTP_SSL):
    """smtplib.SMTP_SSL with each reply capped at MAX_REPLY_BYTES, ended by its watchdog at the deadline."""

    def __init__(self, watchdog: _Watchdog, host: str, port: int, timeout: float, context: ssl.SSLContext) -> None:
        watchdog.smtp = self
        super().__init__(host, port, timeout=timeout, context=context)

    def getreply(self) -> tuple[int, bytes]:
        self.file = _capped(self)
        return super().getreply()


def _connect(settings: EmailConfig, ca_file: Path | None, watchdog: _Watchdog) -> smtplib.SMTP:
    timeout = settings.timeout.total_seconds()
    if settings.security == "none":
        return BoundedSMTP(watchdog, settings.smtp_host, settings.smtp_port, timeout)
    context = ssl.create_default_context(cafile=str(ca_file) if ca_file else None)
    if settings.security == "ssl":
        return BoundedSMTPSSL(watchdog, settings.smtp_host, settings.smtp_port, timeout, context)
    smtp = BoundedSMTP(watchdog, settings.smtp_host, settings.smtp_port, timeout)
    smtp.starttls(context=context)  # on failure the watchdog closes the connection
    return smtp


def _failure_reason(
    error: BaseException, settings: EmailConfig, credentials: tuple[str, str] | None, expired: bool = False
) -> str:
    """The cause in words a user can act on."""
    if expired:
        deadline = conversation_deadline(settings).total_seconds()
        return f"the conversation did not finish within {deadline:g}s ({CONVERSATION_TIMEOUTS} × email.timeout)"
    if isinstance(error, ReplyTooLongError):
        return str(error)
    if isinstance(error, smtplib.SMTPAuthenticationError):
        user = credentials[0] if credentials else "?"
        return f"login as {user!r} refused ({error.smtp_code} {_server_text(error.smtp_error)})"
    if isinstance(error, smtplib.SMTPRecipientsRefused):
        return "every recipient refused: " + ", ".join(
            f"{address} ({code} {_server_text(text)})" for address, (code, text) in error.recipients.items()
        )
    if isinstance(error, smtplib.SMTPNotSupportedError) and settings.security == "starttls":
        return f"the server does not offer STARTTLS or AUTH ({error}); check email.security"
    if isinstance(error, smtplib.SMTPResponseException):
        return f"the server answered {error.smtp_code} {_server_text(error.smtp_error)}"
    if isinstance(error, ssl.SSLCertVerificationError):
        return f"TLS certificate not trusted ({error.verify_message}); set email.ca_file to trust a private CA"
    if isinstance(error, ConnectionRefusedError):
        return "connection refused (is the server running, and is email.smtp_port right?)"
    if isinstance(error, TimeoutError | socket.timeout) or "timed out" in str(error):
        return f"no answer within {settings.timeout.total_seconds():g}s (email.timeout)"
    if isinstance(error, smtplib.SMTPServerDisconnected):
        return f"the server closed the connection ({error})"
    if isinstance(error, socket.gaierror):
        return f"unknown host {settings.smtp_host!r} ({error.strerror})"
    return f"{error.__class__.__name__}: {error}".strip()


def _server_text(text: bytes | str) -> str:
    return (text.decode("utf-8", "replace") if isinstance(text, bytes) else str(text)).replace("\n", " ")


# ---- alerts -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AlertPlan:
    """Which new spikes to alert now, which to hold (cool-down) and why the rest wait."""

    send: list[Spike]
    hold: list[Spike]
    waiting: dict[str, str]  # spike key → why it is not alerted yet (too small, too old)


def plan_alerts(
    analysis: Analysis,
    already: set[str],
    last_alert: datetime | None,
    now: datetime,
    min_volume: int,
    cooldown: timedelta,
    max_age: timedelta,
) -> AlertPlan:
    """Decide which spikes get an alert: new ones, big enough, recent, and not inside the cool-down."""
    due: list[Spike] = []
    waiting: dict[str, str] = {}
    for spike in analysis.spikes:
        if spike.key() in already:
            continue
        reason = _not_alertable(analysis, spike, now, min_volume, max_age)
        if reason:
            waiting[spike.key()] = reason
        else:
            due.append(spike)
    if due and last_alert is not None and now - last_alert < cooldown:
        return AlertPlan(send=[], hold=due, waiting=waiting)
    return AlertPlan(send=due, hold=[], waiting=waiting)


def _not_alertable(analysis: Analysis, spike: Spike, now: datetime, min_volume: int, max_age: timedelta) -> str:
    if now - spike.end > max_age:
        return "ended more than alerts.max_age ago"
    if peak_volume(analysis, spike) < min_volume:
        return "peak below alerts.min_volume"
    return ""


def peak_volume(analysis: Analysis, spike: Spike) -> float:
    """Posts in the spike's peak bin (for a volume spike that is its peak value)."""
    if spike.kind == "volume":
        return spike.peak_value
    peak = spike.peak.astimezone(ZoneInfo(analysis.timezone))
    volume = analysis.bins["volume"].get(pd.Timestamp(peak))
    return 0.0 if volume is None or pd.isna(volume) else float(volume)
