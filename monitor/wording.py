"""Sentences that describe a number, written once for the page, the charts and the mail.

A factor is only ever called "× the baseline" when the baseline holds enough posts to mean something;
otherwise every output names what the factor really is against, and says why.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import datetime
from zoneinfo import ZoneInfo

from monitor.analysis import MIN_BASELINE_POSTS, Analysis, Spike


def p_value(value: float | None) -> str:
    """'p < 0.001', 'p = 0.042', or '—' when a side had too few posts for a test."""
    if value is None:
        return "—"
    return "p < 0.001" if value < 0.001 else f"p = {value:.3f}"


BIN_NAMES = {"hour": "hour", "6h": "6-hour bin", "day": "day"}  # "one bar per …", "the window's median …"
PER_BIN = {"hour": "per hour", "6h": "per 6 hours", "day": "per day"}


def bin_name(bin_size: str) -> str:
    """'hour', '6-hour bin' or 'day': what one bar of a chart is."""
    return BIN_NAMES.get(bin_size, bin_size)


def per_bin(bin_size: str) -> str:
    """'per hour', 'per 6 hours' or 'per day': the unit of a volume."""
    return PER_BIN.get(bin_size, f"per {bin_size}")


def reference_name(analysis: Analysis) -> str:
    """What spike sizes are measured against: the baseline, or the window's median bin when it is thin."""
    return f"the window's median {bin_name(analysis.bin)}" if analysis.baseline_fallback else "the baseline"


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
