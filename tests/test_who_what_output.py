"""Who and what on the page (escaped, in its own section) and in the digest's plain text."""

from __future__ import annotations

from email.message import EmailMessage
from pathlib import Path

from monitor.analysis import Analysis, Standing
from monitor.digest import build_digest, latest_period
from monitor.report import write_report
from tests.analysis_factory import make_analysis

WHO_WHAT = {
    "hashtags": [Standing("#boycottinstagram", 1234, 0, None), Standing("#instagram", 800, 100, 1.53)],
    "mentions": [Standing("@instagram", 40, 10, 0.98)],
    "domains": [],
    "active_accounts": [Standing("<script>alert(1)</script>", 12, 1, 2.0)],
    "engaged_accounts": [Standing("jane", 9_000, 0, None)],
}


def test_the_page_shows_who_and_what_escaped(tmp_path: Path) -> None:
    analysis = make_analysis()
    analysis.who_what, analysis.baseline_posts = WHO_WHAT, 500
    page = write_report(analysis, [analysis], tmp_path).index.read_text(encoding="utf-8")
    section = page[page.index('<h2 id="who-what">') : page.index("<h2>Most-engaged negative posts")]
    assert (
        '<td>#boycottinstagram</td><td class="num">1,234</td><td class="num">0</td><td class="num">new</td>' in section
    )
    assert '<td>#instagram</td><td class="num">800</td><td class="num">100</td><td class="num">×1.5</td>' in section
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in section and "<script>alert(1)" not in page
    assert "Linked domains" not in section  # an empty list is left out


def digest_of(analysis: Analysis) -> EmailMessage:
    """The digest of the analysis' last day."""
    period = latest_period(analysis.coverage.last_post, "day", analysis.milestones["announced"].tzinfo)  # type: ignore[arg-type]
    return build_digest(analysis, period, sender="m@example.org", recipients=["t@example.org"])


def test_the_digest_names_the_top_three_of_each_list() -> None:
    analysis = make_analysis()
    analysis.who_what, analysis.baseline_posts = WHO_WHAT, 500
    message = digest_of(analysis)
    text = message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert "Who and what since the announcement (× the baseline, per post):" in text
    assert "Hashtags: #boycottinstagram 1,234 (new), #instagram 800 (×1.5)" in text
    assert "Mentions: @instagram 40 (×1.0)" in text
    html = message.get_body(("html",)).get_content()  # type: ignore[union-attr]
    assert "Who and what since the announcement" in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html and "<script>alert(1)" not in html


def test_without_a_baseline_the_digest_gives_counts_and_says_why() -> None:
    analysis = make_analysis()
    analysis.who_what, analysis.baseline_posts = WHO_WHAT, 0
    message = digest_of(analysis)
    text = message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert "Who and what since the announcement (the baseline holds 0 posts: counts only):" in text
    assert "Hashtags: #boycottinstagram 1,234, #instagram 800\n" in text
    assert "(—)" not in text
