"""Sentences that describe a number, written once for the page, the charts and the mail.

A factor is only ever called "× the baseline" when the baseline holds enough posts to mean something;
otherwise every output names what the factor really is against, and says why.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from monitor.analysis import MIN_BASELINE_POSTS, Analysis, Spike, Standing, checked_class, churn_share_adjusted


def p_value(value: float | None) -> str:
    """'p < 0.001', 'p = 0.042', or '—' when a side had too few posts for a test."""
    if value is None:
        return "—"
    return "p < 0.001" if value < 0.001 else f"p = {value:.3f}"


def reference_name(analysis: Analysis) -> str:
    """What spike sizes are measured against: the baseline, or the window's median bin when it is thin."""
    return f"the window's median {analysis.bin}" if analysis.baseline_fallback else "the baseline"


def spike_size(spike: Spike, analysis: Analysis) -> str:
    """'×4.2 the baseline', '×4.2 the window's median hour', '−0.31 vs the baseline'."""
    reference = reference_name(analysis)
    if spike.kind != "volume":
        return f"{spike.size:+.2f} vs {reference}".replace("-", "−")
    if not math.isfinite(spike.size):
        return f"from silence ({reference} had no posts)"
    return f"×{spike.size:.1f} {reference}"


def short_spike_size(spike: Spike, analysis: Analysis) -> str:
    """A chart label: '×5' against the baseline, '×5 median' against the window's median bin."""
    if not math.isfinite(spike.size):
        return "from silence"
    return f"×{spike.size:.0f}" + (" median" if analysis.baseline_fallback else "")


def baseline_note(analysis: Analysis) -> str | None:
    """None when the baseline is sound; else one sentence saying what it holds and how to fix it."""
    if not analysis.baseline_fallback:
        return None
    tz = ZoneInfo(analysis.timezone)
    span = f"{day(analysis.baseline_start, tz, year=False)} – {day(analysis.baseline_end, tz)}"
    held = f"{analysis.baseline_posts:,} posts"
    if analysis.baseline_posts:
        held = f"only {held} (fewer than {MIN_BASELINE_POSTS})"
    return (
        f"The baseline {span} holds {held}: nothing is compared with it and spikes are measured against "
        f"{reference_name(analysis)}. Import earlier posts or set baseline_days."
    )


def window_note(analysis: Analysis) -> str | None:
    """'6,384 posts before 2 Nov 2022 are outside the event window and not analysed.' (None when none are)."""
    coverage, tz = analysis.coverage, ZoneInfo(analysis.timezone)
    if not coverage.outside_window or analysis.window_start is None or analysis.window_end is None:
        return None
    parts = []
    if coverage.before_window:
        parts.append(f"{coverage.before_window:,} posts before {day(analysis.window_start, tz)}")
    if coverage.after_window:
        parts.append(f"{coverage.after_window:,} posts from {day(analysis.window_end, tz)} on")
    verb = "is" if coverage.outside_window == 1 else "are"
    return f"{' and '.join(parts)} {verb} outside the event window and not analysed."


def language_note(analysis: Analysis, number: Callable[[int], str] = "{:,}".format) -> str:
    """How each post's language was known: '120 tagged by the source, 9,500 identified, 300 undetermined …'."""
    coverage = analysis.coverage
    return (
        f"{number(coverage.language_tagged)} tagged by the source, {number(coverage.language_guessed)} identified, "
        f"{number(coverage.language_undetermined)} undetermined (too little text: kept and scored)"
    )


def day(moment: datetime, tz: ZoneInfo, year: bool = True) -> str:
    """'9 Nov 2022' (or '9 Nov') in tz."""
    local = moment.astimezone(tz)
    return f"{local.day} {local:%b %Y}" if year else f"{local.day} {local:%b}"


def checked_note(analysis: Analysis, kind: str, name: str, what: str) -> str | None:
    """'churn intent checked by hand on 200 posts: precision 0.82 [0.71, 0.90], recall 0.64 [0.45, 0.80]' (None if unchecked)."""
    checked = checked_class(analysis.validation, kind, name)
    if checked is None or analysis.validation is None:
        return None
    labelled = (analysis.validation.get(kind) or {}).get("labelled", 0)
    measures = [f"{label} {_estimate(checked[label])}" for label in ("precision", "recall")]
    stale = "" if analysis.validation.get("current_scorer", True) else " (with an earlier scorer version)"
    return f"{what} checked by hand on {labelled:,} posts{stale}: {', '.join(measures)}"


def adjusted_churn_note(analysis: Analysis) -> str | None:
    """'4.10% [2.00%, 7.50%] adjusted for the hand-checked precision and recall (flagged share × precision ÷ recall): an estimate'."""
    adjusted = churn_share_adjusted(analysis)
    if adjusted is None or adjusted["value"] is None:
        return None
    low, high = adjusted["low"], adjusted["high"]
    span = f" [{low:.2%}, {high:.2%}]" if low is not None and high is not None else ""
    return (
        f"{adjusted['value']:.2%}{span} adjusted for the hand-checked precision and recall "
        "(flagged share × precision ÷ recall): an estimate"
    )


def _estimate(estimate: dict[str, float | None]) -> str:
    value, low, high = estimate.get("value"), estimate.get("low"), estimate.get("high")
    if value is None or low is None or high is None:
        return "— (no post in the class)"
    return f"{value:.2f} [{low:.2f}, {high:.2f}]"


WHO_WHAT_TITLES = {
    "hashtags": "Hashtags",
    "mentions": "Mentions",
    "domains": "Linked domains",
    "active_accounts": "Most active accounts (posts)",
    "engaged_accounts": "Most engaged accounts (likes + reposts + replies of their posts)",
}


def change_note(item: Standing, analysis: Analysis) -> str:
    """'×3.2' (per post, against the baseline), 'new' (absent from the baseline), or '—' (no baseline at all)."""
    if item.change is not None:
        return f"×{item.change:.1f}"
    return "new" if analysis.baseline_posts else "—"


def who_what_rows(analysis: Analysis) -> list[dict[str, Any]]:
    """Each who-and-what list with a title and rows of name, count, baseline count and change, for the page."""
    return [
        {
            "title": WHO_WHAT_TITLES.get(kind, kind),
            "rows": [(i.name, f"{i.count:,}", f"{i.baseline:,}", change_note(i, analysis)) for i in items],
        }
        for kind, items in analysis.who_what.items()
        if items
    ]


def who_what_short(analysis: Analysis, number: Callable[[int], str] = "{:,}".format, top: int = 3) -> list[str]:
    """'Hashtags: #boycottinstagram 1,234 (new), #instagram 800 (×1.5)' — one line per list, for the mail."""
    lines = []
    for kind in ("hashtags", "mentions", "domains", "active_accounts"):
        items = analysis.who_what.get(kind, [])[:top]
        if items:
            shown = ", ".join(f"{i.name} {number(i.count)} ({change_note(i, analysis)})" for i in items)
            lines.append(f"{WHO_WHAT_TITLES[kind].split(' (')[0]}: {shown}")
    return lines
