"""Digests and alerts end to end against a real SMTP server on 127.0.0.1: content, escaping, exactly-once, TLS, AUTH."""

from __future__ import annotations

import dataclasses
import email
import email.policy
import re
import struct
import zlib
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from click.testing import CliRunner

from monitor.analysis import Analysis, Spike, TopPost, window_stats
from monitor.cli import cli
from monitor.config import parse_config
from monitor.digest import comparison_rows, latest_period
from monitor.pipeline import (
    Workspace,
    check_alerts,
    digest,
    open_workspace,
    send_alerts,
    send_digest,
    send_due_digests,
)
from tests.analysis_factory import ANNOUNCED, make_analysis
from tests.conftest import BASE_CONFIG, database_url

EVENT = "instagram-tos-2012"
HOSTILE = "<script>alert(1)</script> and <img src=x onerror=alert(1)> 😡 #boycottinstagram"
PASSWORD = "s3cret-Pa55"


def tiny_png() -> bytes:
    """A valid 1×1 PNG, standing in for the timeline chart the report writes."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\0\xff\0\0"))
        + chunk(b"IEND", b"")
    )


def storm_day_analysis(**overrides: Any) -> Analysis:
    """The factory's Instagram analysis, with data up to the end of 17 December (so the digest covers that day)."""
    analysis = make_analysis(first_post_text=HOSTILE, simulated=False, **overrides)
    analysis.coverage.last_post = datetime(2012, 12, 17, 23, 30, tzinfo=UTC)
    first = dataclasses.replace(analysis.top_posts[0], author="angry<b>user</b>", url="javascript:alert(1)")
    second = dataclasses.replace(analysis.top_posts[1], url="https://twitter.com/user1/status/1")
    analysis.top_posts = [first, second, *analysis.top_posts[2:]]
    return analysis


@pytest.fixture
def workspace_for(tmp_path: Path) -> Iterator[Callable[..., Workspace]]:
    """Open a workspace whose config has the given `email:` section (and other overrides)."""
    opened: list[Workspace] = []

    def open_with(email_settings: dict[str, Any], reported: bool = True, **overrides: Any) -> Workspace:
        """reported: a report has already written the timeline chart (a tiny stand-in)."""
        document = {**BASE_CONFIG, "database": database_url(tmp_path), "email": email_settings, **overrides}
        ws = open_workspace(config=parse_config(document, tmp_path))
        if reported:
            chart = ws.config.out_dir() / EVENT / "timeline.png"
            chart.parent.mkdir(parents=True, exist_ok=True)
            chart.write_bytes(tiny_png())
        opened.append(ws)
        return ws

    yield open_with
    for ws in opened:
        ws.close()


def parts(message: EmailMessage) -> dict[str, Any]:
    """The text, the HTML and the inline images of a received digest."""
    assert message.get_content_type() == "multipart/alternative"
    text_part, related = message.get_payload()  # type: ignore[misc]
    assert text_part.get_content_type() == "text/plain"
    assert related.get_content_type() == "multipart/related"
    html_part, *images = related.get_payload()
    assert html_part.get_content_type() == "text/html"
    return {"text": text_part.get_content(), "html": html_part.get_content(), "images": images}


# ---- the numbers ---------------------------------------------------------------------------------


def test_latest_period_is_the_last_whole_day_or_week_in_the_configured_zone() -> None:
    from zoneinfo import ZoneInfo

    paris = ZoneInfo("Europe/Paris")
    day = latest_period(datetime(2012, 12, 18, 23, 30, tzinfo=UTC), "day", paris)  # 00:30 on the 19th in Paris
    assert (day.key, day.start.isoformat(), day.label()) == (
        "2012-12-18",
        "2012-12-18T00:00:00+01:00",
        "Tuesday 18 December 2012",
    )
    assert day.previous().key == "2012-12-17"
    week = latest_period(datetime(2012, 12, 19, 8, 0, tzinfo=UTC), "week", paris)
    assert (week.key, week.label(), week.previous().key) == (
        "2012-12-12_2012-12-18",
        "12–18 December 2012",
        "2012-12-05_2012-12-11",
    )


def test_window_numbers_sum_volume_and_weight_tone_by_scored_posts() -> None:
    index = pd.date_range("2012-12-18", periods=3, freq="h", tz="UTC")
    bins = pd.DataFrame(
        {"volume": [10, 30, 5], "scored": [10, 20, 0], "mean_compound": [-0.5, 0.1, None],
         "negative_share": [0.5, 0.2, None], "churn_share": [0.1, 0.0, None]},
        index=index,
    )  # fmt: skip
    stats = window_stats(bins, index[0].to_pydatetime(), index[0].to_pydatetime() + timedelta(hours=3))
    # 45 posts; tone weighted by scored posts: (10 × -0.5 + 20 × 0.1) / 30 = -0.1, (10 × 0.5 + 20 × 0.2) / 30 = 0.3
    assert (stats.posts, stats.scored) == (45, 30)
    assert stats.mean_compound == pytest.approx(-0.1)
    assert stats.negative_share == pytest.approx(0.3)
    assert stats.churn_share == pytest.approx(1 / 30)
    rows = comparison_rows(stats, dataclasses.replace(stats, posts=20, negative_share=0.2), stats)
    assert (rows[0].current, rows[0].previous, rows[0].change_previous) == ("45", "20", "+125 %")
    assert (rows[2].current, rows[2].change_previous) == ("30\u00a0%", "+10 pts")
    tripled = comparison_rows(stats, dataclasses.replace(stats, posts=15), stats)
    assert tripled[0].change_previous == "×3.0"  # big rises read as a factor


# ---- the digest email ----------------------------------------------------------------------------


def test_digest_arrives_as_text_and_html_with_the_chart_inline(
    smtp_server: Any, workspace_for: Callable[..., Workspace]
) -> None:
    ws = workspace_for(smtp_server.email_settings())
    result = send_digest(ws, storm_day_analysis())
    assert (result.status, result.period) == ("sent", "2012-12-17")
    [envelope] = smtp_server.envelopes
    assert sorted(envelope.rcpt_tos) == ["comms@example.org", "team@example.org"]
    [message] = smtp_server.messages
    for header in ("Date", "Message-ID", "From", "To", "MIME-Version"):
        assert message[header], header
    assert message["Message-ID"] == result.message_id
    assert message["Subject"].startswith("Instagram terms of service change — negativity ")
    assert " pts vs baseline" in message["Subject"]  # percentage points, the table's basis, never a relative "+17 %"
    assert "2 spikes" in message["Subject"]  # the storm's volume spike and sentiment dip both start on the 17th
    content = parts(message)
    [image] = content["images"]
    assert image.get_content_type() == "image/png"
    assert struct.unpack(">II", image.get_content()[16:24]) == (640, 420)  # drawn for mail, not the report's chart
    assert f'src="cid:{image["Content-ID"].strip("<>")}"' in content["html"]
    assert "Digest for Monday 17 December 2012 (UTC)" in content["text"]
    assert "😡" in content["text"] and "😡" in content["html"]
    assert "Volume spike Mon 17 Dec 14:00" in content["text"]
    assert "Full dashboard: " + str((ws.config.out_dir() / EVENT / "index.html").resolve()) in content["text"]


def test_hostile_post_text_appears_only_escaped_in_html(
    smtp_server: Any, workspace_for: Callable[..., Workspace]
) -> None:
    ws = workspace_for(smtp_server.email_settings())
    send_digest(ws, storm_day_analysis())
    html = parts(smtp_server.messages[0])["html"]
    assert "<script" not in html and "<img src=x" not in html and "<b>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "&lt;img src=x onerror=alert(1)&gt;" in html
    assert "javascript:" not in html  # a post's link that is not http(s) is not linked
    assert 'href="https://twitter.com/user1/status/1"' in html
    assert "http://" not in html.replace('href="http', "") and "<link" not in html  # nothing remote to fetch


def test_each_period_is_sent_once_unless_forced(smtp_server: Any, workspace_for: Callable[..., Workspace]) -> None:
    ws = workspace_for(smtp_server.email_settings())
    analysis = storm_day_analysis()
    assert send_digest(ws, analysis).status == "sent"
    again = send_digest(ws, analysis)
    assert (again.status, len(smtp_server.envelopes)) == ("skipped", 1)
    assert "already sent" in again.detail
    assert send_digest(ws, analysis, force=True).status == "sent"
    assert len(smtp_server.envelopes) == 2


def test_a_failed_send_is_one_clear_line_and_the_next_run_sends_it(
    smtp_server: Any, workspace_for: Callable[..., Workspace], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SMTP_USER", "alice")
    monkeypatch.setenv("SMTP_PASSWORD", PASSWORD)
    ws = workspace_for(smtp_server.email_settings())
    smtp_server.stop()
    failed = send_digest(ws, storm_day_analysis())
    assert failed.status == "failed"
    assert f"127.0.0.1:{smtp_server.port}" in failed.detail and "connection refused" in failed.detail
    assert "\n" not in failed.detail and PASSWORD not in failed.detail
    assert not ws.store.was_sent(EVENT, "digest", "2012-12-17")
    server_back = type(smtp_server)(port=smtp_server.port, credentials=("alice", PASSWORD)).start()
    try:
        assert send_digest(ws, storm_day_analysis()).status == "sent"
        assert len(server_back.envelopes) == 1 and server_back.logins == ["alice"]
    finally:
        server_back.stop()


def on_day(day: int) -> Analysis:
    """The storm analysis with data up to the end of `day` December 2012: its digest covers that day."""
    analysis = storm_day_analysis()
    analysis.coverage.last_post = datetime(2012, 12, day, 23, 30, tzinfo=UTC)
    return analysis


def test_a_day_whose_send_failed_is_sent_by_the_next_days_run_before_that_day(
    smtp_server: Any, workspace_for: Callable[..., Workspace]
) -> None:
    ws = workspace_for(smtp_server.email_settings())
    assert [r.period for r in send_due_digests(ws, on_day(16))] == ["2012-12-16"]  # the first ever: that day only
    port = smtp_server.port
    smtp_server.stop()
    [failed] = send_due_digests(ws, on_day(17))
    assert (failed.status, failed.period) == ("failed", "2012-12-17")

    server_back = type(smtp_server)(port=port).start()
    try:
        results = send_due_digests(ws, on_day(18))  # the daemon's next daily run
        assert [(r.status, r.period) for r in results] == [("sent", "2012-12-17"), ("sent", "2012-12-18")]
        subjects_dates = [(m["Subject"], parts(m)["text"]) for m in server_back.messages]
        assert "Digest for Monday 17 December 2012 (UTC)" in subjects_dates[0][1]
        assert "Digest for Tuesday 18 December 2012 (UTC)" in subjects_dates[1][1]
        assert [r.status for r in send_due_digests(ws, on_day(18))] == ["skipped"]
        assert len(server_back.messages) == 2
    finally:
        server_back.stop()


def test_catching_up_stops_at_a_week_and_at_the_first_post(
    smtp_server: Any, workspace_for: Callable[..., Workspace], tmp_path: Path
) -> None:
    ws = workspace_for(smtp_server.email_settings())
    send_due_digests(ws, on_day(12))
    late = on_day(30)  # the monitor was off for 18 days
    assert [r.period for r in send_due_digests(ws, late)] == [f"2012-12-{day}" for day in range(24, 31)]

    other = workspace_for(smtp_server.email_settings(), database=database_url(tmp_path / "other"))
    other.store.mark_sent(EVENT, "digest", "2012-11-01", "<long-ago@example.org>")
    first_post = on_day(12).coverage.first_post
    assert first_post is not None and first_post.date().isoformat() == "2012-12-10"
    assert [r.period for r in send_due_digests(other, on_day(12))] == ["2012-12-10", "2012-12-11", "2012-12-12"]


def test_starttls_and_auth(make_smtp_server: Callable[..., Any], smtp_certificate: Any, workspace_for: Callable[..., Workspace], monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    server = make_smtp_server(certificate=smtp_certificate, starttls=True, credentials=("alice", PASSWORD))
    monkeypatch.setenv("SMTP_USER", "alice")
    monkeypatch.setenv("SMTP_PASSWORD", PASSWORD)
    ws = workspace_for(server.email_settings())
    assert send_digest(ws, storm_day_analysis()).status == "sent"
    assert server.logins == ["alice"] and len(server.messages) == 1


def test_refused_login_and_untrusted_certificate_are_clear_and_never_show_the_password(
    make_smtp_server: Callable[..., Any], smtp_certificate: Any, workspace_for: Callable[..., Workspace], monkeypatch: pytest.MonkeyPatch
) -> None:  # fmt: skip
    server = make_smtp_server(certificate=smtp_certificate, starttls=True, credentials=("alice", "another password"))
    monkeypatch.setenv("SMTP_USER", "alice")
    monkeypatch.setenv("SMTP_PASSWORD", PASSWORD)
    ws = workspace_for(server.email_settings())
    refused = send_digest(ws, storm_day_analysis())
    assert refused.status == "failed" and "login as 'alice' refused (535" in refused.detail
    assert PASSWORD not in refused.detail
    ws_untrusting = workspace_for(server.email_settings(ca_file=None))
    untrusted = send_digest(ws_untrusting, storm_day_analysis())
    assert untrusted.status == "failed" and "email.ca_file" in untrusted.detail
    assert server.envelopes == []


def test_implicit_tls(make_smtp_server: Callable[..., Any], smtp_certificate: Any, workspace_for: Callable[..., Workspace]) -> None:  # fmt: skip
    server = make_smtp_server(certificate=smtp_certificate, implicit_tls=True)
    ws = workspace_for(server.email_settings())
    assert send_digest(ws, storm_day_analysis()).status == "sent"
    assert len(server.messages) == 1


def test_dry_run_writes_the_same_email_as_eml_and_sends_nothing(smtp_server: Any, workspace_for: Callable[..., Workspace]) -> None:  # fmt: skip
    ws = workspace_for(smtp_server.email_settings())
    result = send_digest(ws, storm_day_analysis(), dry_run=True)
    assert result.status == "written" and result.path == ws.config.out_dir() / EVENT / "digest-2012-12-17.eml"
    assert smtp_server.envelopes == [] and not ws.store.was_sent(EVENT, "digest", "2012-12-17")
    written = email.message_from_bytes(result.path.read_bytes(), policy=email.policy.default)
    assert "&lt;script&gt;" in parts(written)["html"]  # type: ignore[arg-type]
    assert send_digest(ws, storm_day_analysis()).status == "sent"  # a dry run does not use up the period


def test_without_recipients_the_digest_is_switched_off_loudly(tmp_path: Path, write_config: Callable[..., Path]) -> None:  # fmt: skip
    config = write_config(email={"recipients": []})
    result = CliRunner().invoke(cli, ["--config", str(config), "digest"])
    assert result.exit_code == 0
    assert result.output.strip() == f"{EVENT}: off — switched off: email.recipients is empty in the config"
    ws = open_workspace(config)
    try:
        assert [r.status for r in digest(ws)] == ["off"] and [r.status for r in check_alerts(ws)] == ["off"]
    finally:
        ws.close()


# ---- alerts --------------------------------------------------------------------------------------


def spike(start: datetime, peak_posts: float = 71, kind: str = "volume") -> Spike:
    return Spike(
        kind, start, start + timedelta(hours=1), start + timedelta(hours=2), peak_posts, 3, 24.5, peak_posts / 3
    )


def with_spikes(*spikes: Spike) -> Analysis:
    analysis = make_analysis(simulated=False)
    analysis.spikes = list(spikes)
    return analysis


def test_an_alert_goes_out_once_per_spike_and_respects_the_cooldown(smtp_server: Any, workspace_for: Callable[..., Workspace]) -> None:  # fmt: skip
    ws = workspace_for(smtp_server.email_settings(), alerts={"cooldown": "6h", "min_volume": 20})
    now = datetime.now(UTC)
    first = spike(now - timedelta(hours=2))
    sent = send_alerts(ws, with_spikes(first), now=now)
    assert (sent.status, sent.spikes) == ("sent", [first.key()])
    [message] = smtp_server.messages
    assert message["Subject"].startswith("Alert: Instagram terms of service change — volume spike (×23.7 the baseline)")
    alert = parts(message)
    assert (
        "Volume spike" in alert["text"] and "sell, photos, #boycottinstagram" in alert["text"]
    )  # what, how big, driving terms
    assert len(alert["images"]) == 1
    assert send_alerts(ws, with_spikes(first), now=now).status == "none"  # the same spike: no second email
    second = spike(now - timedelta(minutes=30))
    held = send_alerts(ws, with_spikes(first, second), now=now)
    assert (held.status, held.spikes) == ("held", [second.key()])  # inside the 6 h cool-down
    later = now + timedelta(hours=7)
    assert send_alerts(ws, with_spikes(first, second), now=later).status == "none"  # held is not alerted late
    third = spike(later - timedelta(hours=1))
    assert send_alerts(ws, with_spikes(first, second, third), now=later).status == "sent"
    assert len(smtp_server.envelopes) == 2


def test_an_alert_before_any_report_carries_the_timeline_drawn_from_its_analysis(
    smtp_server: Any, workspace_for: Callable[..., Workspace]
) -> None:
    ws = workspace_for(smtp_server.email_settings(), reported=False)
    now = datetime.now(UTC)
    assert send_alerts(ws, with_spikes(spike(now - timedelta(hours=2))), now=now).status == "sent"
    alert = parts(smtp_server.messages[0])
    [image] = alert["images"]
    assert image.get_content_type() == "image/png"
    assert struct.unpack(">II", image.get_content()[16:24]) == (1600, 900)  # IHDR: the report's chart size
    assert f'src="cid:{image["Content-ID"].strip("<>")}"' in alert["html"]


def test_alert_text_shows_the_hours_before_and_during_the_spike(smtp_server: Any, workspace_for: Callable[..., Workspace]) -> None:  # fmt: skip
    ws = workspace_for(smtp_server.email_settings())
    started = datetime(2012, 12, 17, 14, tzinfo=UTC)
    analysis = with_spikes(spike(started))  # 14:00 to 16:00
    assert send_alerts(ws, analysis, now=started + timedelta(hours=3)).status == "sent"
    text = parts(smtp_server.messages[0])["text"]
    assert "Hour by hour (the timeline chart is in the HTML version):" in text
    hours = re.findall(r"^([ *]) Mon 17 Dec (\d\d):00 +([\d,]+) ", text, re.MULTILINE)
    assert [hour for _mark, hour, _posts in hours] == [f"{h:02d}" for h in range(8, 17)]  # six before, three inside
    assert [hour for mark, hour, _posts in hours if mark == "*"] == ["14", "15", "16"]
    volume = analysis.bins["volume"]
    for _mark, hour, posts in hours:
        assert int(posts.replace(",", "")) == int(volume[pd.Timestamp(f"2012-12-17 {hour}:00", tz="UTC")])


def test_small_and_old_spikes_are_not_alerted(smtp_server: Any, workspace_for: Callable[..., Workspace]) -> None:
    ws = workspace_for(smtp_server.email_settings(), alerts={"min_volume": 20, "max_age": "24h"})
    now = datetime.now(UTC)
    small, old = spike(now - timedelta(hours=1), peak_posts=12), spike(now - timedelta(days=3))
    result = send_alerts(ws, with_spikes(small, old), now=now)
    assert result.status == "none" and "2 too small or too old" in result.detail
    assert smtp_server.envelopes == []


def test_alert_dry_run_writes_eml_without_marking(smtp_server: Any, workspace_for: Callable[..., Workspace]) -> None:
    ws = workspace_for(smtp_server.email_settings())
    now = datetime.now(UTC)
    result = send_alerts(ws, with_spikes(spike(now - timedelta(hours=1))), now=now)
    assert result.status == "sent"
    dry = send_alerts(ws, with_spikes(spike(now - timedelta(hours=1)), spike(now)), dry_run=True, now=now)
    assert dry.status == "held"  # cool-down applies to dry runs too, but nothing is recorded
    assert not ws.store.was_sent(EVENT, "alert-held", spike(now).key())


def test_top_posts_from_the_period_come_first() -> None:
    from monitor.digest import digest_view

    analysis = storm_day_analysis()
    outside = TopPost(ANNOUNCED - timedelta(days=2), "x", "early", "before the storm", None, -0.9, 10_000)
    analysis.top_posts = [*analysis.top_posts, outside]
    view = digest_view(
        analysis, latest_period(datetime(2012, 12, 18, tzinfo=UTC), "day", __import__("zoneinfo").ZoneInfo("UTC"))
    )
    assert view.posts_heading == "Top negative posts of the period"
    assert [post.author for post in view.posts] == ["@angry<b>user</b>", "@user1", "@user2"]


def test_a_server_that_never_answers_times_out_with_a_clear_line(workspace_for: Callable[..., Workspace]) -> None:
    import socket

    with socket.socket() as silent:  # accepts connections (the kernel's backlog) but never greets
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)
        port = silent.getsockname()[1]
        ws = workspace_for({"smtp_host": "127.0.0.1", "smtp_port": port, "security": "none", "timeout": "1s",
                            "recipients": ["team@example.org"]})  # fmt: skip
        result = send_digest(ws, storm_day_analysis())
    assert result.status == "failed" and "no answer within 1s (email.timeout)" in result.detail


def test_weekly_digest_compares_seven_days_with_the_seven_before(smtp_server: Any, workspace_for: Callable[..., Workspace]) -> None:  # fmt: skip
    ws = workspace_for(smtp_server.email_settings(period="week"))
    result = send_digest(ws, storm_day_analysis())
    assert result.period == "2012-12-11_2012-12-17"
    text = parts(smtp_server.messages[0])["text"]
    assert "Digest for 11–17 December 2012 (UTC)" in text and "Previous period: 4–10 December 2012" in text
    assert "in a typical baseline week (" in text and "Compared with the baseline:" in text
