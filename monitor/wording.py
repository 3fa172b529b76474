"""Sentences that describe a number, written once for the page, the charts and the mail.

A factor is only ever called "× the baseline" when the baseline holds enough posts to mean something;
otherwise every output names what the factor really is against, and says why.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from monitor.analysis import (
    BENT,
    MIN_BASELINE_POSTS,
    Analysis,
    CurveBend,
    Shift,
    Spike,
    Standing,
    checked_class,
    churn_share_adjusted,
)
from monitor.examples import EXAMPLE_POOL

if TYPE_CHECKING:
    from monitor.drilldown import SpikeDetail


def p_value(value: float | None) -> str:
    """'p < 0.001', 'p = 0.042', or '—' when a side had too few posts for a test."""
    if value is None:
        return "—"
    return "p < 0.001" if value < 0.001 else f"p = {value:.3f}"


BIN_NAMES = {"hour": "hour", "6h": "6-hour bin", "day": "day"}  # "one bar per …", "the window's median …"
PER_BIN = {"hour": "per hour", "6h": "per 6 hours", "day": "per day"}
STEP_BY_STEP = {"hour": "Hour by hour", "6h": "Every 6 hours", "day": "Day by day"}  # a timeline's heading in text


def bin_name(bin_size: str) -> str:
    """'hour', '6-hour bin' or 'day': what one bar of a chart is."""
    return BIN_NAMES.get(bin_size, bin_size)


def step_by_step(bin_size: str) -> str:
    """'Hour by hour', 'Every 6 hours' or 'Day by day': the heading of a timeline written as text."""
    return STEP_BY_STEP.get(bin_size, bin_size)


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
    """'6,384 posts before 2 Nov 2022 are outside the event window and not analysed.' (None when none are);
    an edge that is not midnight is given with its time ('2,745 posts from 10 Nov 2022, 20:00 UTC on')."""
    coverage, tz = analysis.coverage, ZoneInfo(analysis.timezone)
    if not coverage.outside_window or analysis.window_start is None or analysis.window_end is None:
        return None
    parts = []
    if coverage.before_window:
        parts.append(f"{coverage.before_window:,} posts before {edge(analysis.window_start, tz)}")
    if coverage.after_window:
        parts.append(f"{coverage.after_window:,} posts from {edge(analysis.window_end, tz)} on")
    verb = "is" if coverage.outside_window == 1 else "are"
    return f"{' and '.join(parts)} {verb} outside the event window and not analysed."


def unscored_note(analysis: Analysis) -> str | None:
    """'1,204 of 5,618 posts are not scored yet: run `backlash score`.' (None when every post has been seen)."""
    coverage = analysis.coverage
    if not coverage.unscored:
        return None
    verb = "is" if coverage.unscored == 1 else "are"
    return f"{coverage.unscored:,} of {coverage.posts:,} posts {verb} not scored yet: run `backlash score`."


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


def edge(moment: datetime, tz: ZoneInfo) -> str:
    """A window's edge: '2 Nov 2022' when it is midnight in tz, else '27 Oct 2022, 20:00 UTC'."""
    local = moment.astimezone(tz)
    return day(moment, tz) + ("" if (local.hour, local.minute) == (0, 0) else clock(local))


def clock(local: datetime) -> str:
    """', 20:00 UTC': a local time's clock and zone, as written after its day."""
    return f", {local:%H:%M} {local.tzname()}"


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
            shown = ", ".join(f"{i.name} {number(i.count)}{_change_in_brackets(i, analysis)}" for i in items)
            lines.append(f"{WHO_WHAT_TITLES[kind].split(' (')[0]}: {shown}")
    return lines


def _change_in_brackets(item: Standing, analysis: Analysis) -> str:
    """' (×1.5)' or ' (new)'; nothing when there is no baseline (the heading says so once)."""
    return f" ({change_note(item, analysis)})" if analysis.baseline_posts else ""


def who_what_heading(analysis: Analysis) -> str:
    """The mail's heading of the who-and-what lines: what the bracketed change compares, or that nothing is."""
    if analysis.baseline_posts:
        return "Who and what since the announcement (× the baseline, per post)"
    return "Who and what since the announcement (the baseline holds 0 posts: counts only)"


# ---- numbers as words: shares, changes, the verdict ------------------------------------------------


def share(value: float | None) -> str:
    """'27 %', one decimal below 10 % ('0.5 %', '1.2 %'), '–' when unknown; no line break inside."""
    if value is None or not math.isfinite(value):
        return "–"
    percent = value * 100
    if percent == 0:
        return "0\u00a0%"
    return f"{percent:.1f}\u00a0%" if abs(percent) < 10 else f"{percent:.0f}\u00a0%"


def points(now: float | None, before: float | None) -> str:
    """The change between two shares in percentage points: '+4 pts', '+0.7 pts' when both are below 10 %."""
    if now is None or before is None or not (math.isfinite(now) and math.isfinite(before)):
        return "–"
    return points_diff(now - before, small=max(abs(now), abs(before)) < 0.1)


def points_diff(diff: float, small: bool = False) -> str:
    """A difference of shares (0.04) as '+4 pts' ('+0.7 pts' when small or under one point)."""
    digits = 1 if small or abs(diff) < 0.01 else 0
    text = f"{diff * 100:+.{digits}f}"
    return ("±0" if float(text) == 0 else text.replace("-", "−")) + " pts"


def key_shift(shifts: Sequence[Shift], metric: str) -> Shift | None:
    """The shift a reader looks for first: a week after the announcement, else the longest window after it,
    else any; one that could be computed (both sides had posts) before one that could not."""
    candidates = [s for s in shifts if s.metric == metric]
    rank = {"7d": 0, "72h": 1, "24h": 2}
    candidates.sort(key=lambda s: (not finite_shift(s), s.milestone != "announced", rank.get(s.window, 9)))
    return candidates[0] if candidates else None


def finite_shift(shift: Shift) -> bool:
    """Both sides had posts: the difference and its interval are numbers."""
    return all(math.isfinite(value) for value in (shift.diff, shift.ci_low, shift.ci_high))


def shift_direction(shift: Shift) -> str:
    """A shift whose interval excludes zero: worse (more negative), better, or louder (volume); else same."""
    if not finite_shift(shift) or shift.ci_low <= 0 <= shift.ci_high:
        return "same"
    rising = shift.ci_low > 0
    if shift.metric == "volume":
        return "louder" if rising else "same"
    worse = rising if shift.metric == "negative_share" else not rising
    return "worse" if worse else "better"


DIRECTION_WORDS = {"worse": "worse than before", "better": "better than before", "same": "no clear change"}


def moment(value: datetime, analysis: Analysis) -> str:
    """'28 Oct 2022, 00:00 UTC' (a day bin: '28 Oct 2022')."""
    tz = ZoneInfo(analysis.timezone)
    return day(value, tz) + ("" if analysis.bin == "day" else clock(value.astimezone(tz)))


WINDOW_WORDS = {"24h": "24 hours", "72h": "72 hours", "7d": "7 days"}


def loudness(analysis: Analysis) -> str:
    """How loud: the busiest bin since the announcement, when, and against what (its spike, or the baseline)."""
    bins = analysis.bins
    announced = analysis.milestones.get("announced", analysis.baseline_end)
    after = bins["volume"][bins.index >= announced]
    top = int(after.max()) if len(after) else 0
    if not top:
        return "Loudest: no posts since the announcement yet."
    peak_at = after.index[int(after.to_numpy().argmax())].to_pydatetime()
    busiest = f"{top:,} posts {per_bin(analysis.bin)} on {moment(peak_at, analysis)}"
    spikes = [s for s in analysis.spikes if s.kind == "volume"]
    around = next((s for s in spikes if s.start <= peak_at <= s.end), None)
    count = f"{len(spikes)} volume spike{'s' if len(spikes) != 1 else ''} in all" if spikes else "no volume spike"
    if around is not None:
        return f"Loudest since the announcement: {busiest}, {spike_size(around, analysis)} ({count})."
    baseline = bins["volume"][(bins.index >= analysis.baseline_start) & (bins.index < analysis.baseline_end)]
    typical = float(baseline.mean()) if len(baseline) else 0.0
    if analysis.baseline_fallback or not typical:
        return f"Loudest since the announcement: {busiest} ({count})."
    factor = top / typical
    return f"Loudest since the announcement: {busiest}, ×{factor:.1f} the baseline's average ({count})."


def negativity(analysis: Analysis) -> str:
    """How negative, and whether better or worse: the key negative-share shift with its interval."""
    since = analysis.totals.get("since_announced", {}).get("negative_share")
    shift = key_shift(analysis.shifts, "negative_share")
    if shift is None or not finite_shift(shift):
        held = f"{analysis.baseline_posts:,} posts"
        return f"Negative: {share(since)} of scored posts since the announcement; no baseline to compare with ({held})."
    when = day(analysis.milestones[shift.milestone], ZoneInfo(analysis.timezone), year=False)
    low, high = points_diff(shift.ci_low, True).removesuffix(" pts"), points_diff(shift.ci_high, True)
    return (
        f"Negative: {share(shift.after)} of scored posts in the {WINDOW_WORDS.get(shift.window, shift.window)} "
        f"after {shift.milestone} ({when}), {points_diff(shift.diff, True)} vs the baseline's {share(shift.baseline)} "
        f"(95 % interval {low} to {high}): {DIRECTION_WORDS.get(shift_direction(shift), 'no clear change')}."
    )


def leaving(analysis: Analysis) -> str:
    """How many say they will leave: a lower bound (the rules find about a third of such posts), or, once a
    person has checked a sample, with the check's precision and recall and the share adjusted for them."""
    since = analysis.totals.get("since_announced", {})
    churn, scored = since.get("churn_share"), since.get("posts") or 0
    if churn is None:
        return "Say they will leave: no scored posts since the announcement yet."
    flagged = f"Say they will leave: {share(churn)} of scored posts since the announcement ({round(churn * scored):,} of {int(scored):,})"
    checked = checked_note(analysis, "churn", "yes", "churn intent")
    if checked is None:
        return f"{flagged}, a lower bound."
    adjusted = adjusted_churn_note(analysis)
    return f"{flagged}; {checked}" + (f"; {adjusted}." if adjusted else ".")


def anger(analysis: Analysis, aspects: int = 3, terms: int = 5) -> str:
    """What people are angry about: the most-discussed aspects with their tone, and the top negative terms."""
    found = sorted((a for a in analysis.aspects if a.posts), key=lambda a: a.share, reverse=True)[:aspects]
    about = "; ".join(
        f"{a.aspect} ({share(a.share)} of posts, tone {a.mean_compound:+.2f})".replace("-", "−")
        if a.mean_compound is not None
        else f"{a.aspect} ({share(a.share)} of posts)"
        for a in found
    )
    words = ", ".join(f"“{d.term}”" for d in analysis.drivers[:terms])
    parts = ([f"Talked about most: {about}."] if about else []) + ([f"Words that mark the negative posts: {words}."] if words else [])
    return " ".join(parts) or "No aspects found and no words that mark the negative posts yet."


def bends(analysis: Analysis) -> list[str]:
    """One sentence per later milestone that bent the negative share's or the volume's trend (none otherwise)."""
    found = []
    for shape in analysis.shapes:
        for bend in (shape.negative_share_bend, shape.volume_bend):
            if bend is not None and bend.verdict == BENT:
                found.append(bend_sentence(shape.milestone, analysis.milestones[shape.milestone], bend, analysis))
    return found


def bend_sentence(milestone: str, at: datetime, bend: CurveBend, analysis: Analysis) -> str:
    """'Negativity turned down after reversed (20 Dec): its trend went from +20 pts to −20 pts a day (3 days before
    against 3 days after; change −40 pts, 95 % interval −75 to −5).'"""
    before, after, change = bend.slope_before or 0.0, bend.slope_after or 0.0, bend.change or 0.0
    low, high = bend.ci_low or 0.0, bend.ci_high or 0.0
    unit = "a day" if bend.metric == "negative_share" else "posts an hour a day"
    days_before = span_words(at - bend.before_from) if bend.before_from else "the days"
    days_after = span_words(bend.after_to - at) if bend.after_to else "the days"
    interval = " to ".join(_slope(bend.metric, end, (low, high)).removesuffix(" pts") for end in (low, high))
    return (
        f"{'Negativity' if bend.metric == 'negative_share' else 'Volume'} {_turn(before, after)} after {milestone} "
        f"({day(at, ZoneInfo(analysis.timezone), year=False)}): its trend went from {_slope(bend.metric, before)} to "
        f"{_slope(bend.metric, after)} {unit} ({days_before} before against {days_after} after; "
        f"change {_slope(bend.metric, change)}, 95 % interval {interval})."
    )


def _slope(metric: str, value: float, shown: tuple[float, ...] = ()) -> str:
    """A slope's number: the negative share's in points ('+1.2 pts', one decimal when it and the numbers shown
    beside it are under 10 points), the volume's in posts an hour ('−3.6')."""
    if metric == "negative_share":
        return points_diff(value, small=max(abs(number) for number in (value, *shown)) < 0.1)
    text = f"{value:+.1f}"
    return "±0" if float(text) == 0 else text.replace("-", "−")


def _turn(before: float, after: float) -> str:
    """How a trend changed: 'turned down', 'turned up', 'fell faster', 'rose more slowly', …"""
    if before >= 0 > after:
        return "turned down"
    if before <= 0 < after:
        return "turned up"
    if before < 0:
        return "fell faster" if after < before else "fell more slowly"
    return "rose faster" if after > before else "rose more slowly"


def span_words(length: timedelta) -> str:
    """'3 days', '1.5 days', '18 hours'."""
    hours = length.total_seconds() / 3600
    if hours < 24:
        return f"{hours:.0f} hours"
    days = hours / 24
    return f"{days:.0f} days" if days == round(days) else f"{days:.1f} days"


def partial_bin_label(analysis: Analysis) -> str | None:
    """'last bin partial (to 12:19)' for a chart's legend, None when the last bin is whole."""
    if analysis.partial_bin() is None or analysis.data_end is None:
        return None
    return f"last bin partial (to {analysis.data_end.astimezone(ZoneInfo(analysis.timezone)):%H:%M})"


def partial_bin_note(analysis: Analysis) -> str | None:
    """'The last bar (27 Nov 2022, 12:00 UTC) is partial: the data end at 12:19, so it is short, not a fall.'

    When the window's end cuts the bar (later posts are outside it), the window is named, not the data.
    """
    start = analysis.partial_bin()
    if start is None or analysis.data_end is None:
        return None
    end = f"{analysis.data_end.astimezone(ZoneInfo(analysis.timezone)):%H:%M}"
    cut = "the event window ends" if analysis.data_end == analysis.window_end else "the data end"
    return (
        f"The last bar ({moment(start.to_pydatetime(), analysis)}) is partial: {cut} at {end}, "
        "so it is short, not a fall."
    )


def verdict(analysis: Analysis) -> list[str]:
    """The story in four sentences: how loud, how negative and which way, who will leave, about what; then a
    sentence for each milestone that bent a curve."""
    return [loudness(analysis), negativity(analysis), leaving(analysis), anger(analysis), *bends(analysis)]


def sources_text(analysis: Analysis, number: Callable[[int], str] = "{:,}".format) -> str:
    """'archive 5,618, x 120': posts per source, for the page's and the mail's coverage ('' without posts)."""
    return ", ".join(f"{name} {number(count)}" for name, count in sorted(analysis.coverage.per_source.items()))


def feeds_text(analysis: Analysis, number: Callable[[int], str] = "{:,}".format) -> str:
    """'mastodon@a #tag 40, mastodon@b #tag 0': statuses read per feed, the feeds that gave no post included."""
    return ", ".join(f"{feed} {number(n)}" for feed, n in analysis.coverage.feeds_read.items())


# ---- the drill-down: one spike's window ---------------------------------------------------------------


def spike_volume_note(detail: SpikeDetail, analysis: Analysis) -> str:
    """'1,234 posts in 6 hours, ×5.1 the 240 expected at the baseline's median (40 per hour)' for a volume
    spike; '1,234 posts in 6 hours' for a dip (its size is a tone, said beside it)."""
    hours = (detail.end - detail.start).total_seconds() / 3600
    span = f"{detail.posts:,} posts in {hours:,.0f} hour{'' if round(hours) == 1 else 's'}"
    if detail.expected is None:
        return span
    median = "the baseline's median" if not analysis.baseline_fallback else reference_name(analysis)
    if detail.expected <= 0:
        return f"{span}, from silence ({median} had no posts)"
    rate = f"{detail.spike.baseline_value:,.0f} {per_bin(analysis.bin)}"
    return f"{span}, ×{detail.posts / detail.expected:.1f} the {detail.expected:,.0f} expected at {median} ({rate})"


def repost_note(detail: SpikeDetail) -> str:
    """'12 % were reposts (150 of 1,234)', or 'no reposts'."""
    if not detail.reposts:
        return "no reposts"
    return f"{share(detail.repost_share)} were reposts ({detail.reposts:,} of {detail.posts:,})"


def driver_examples_note() -> str:
    """Where a driver term's example posts come from (the analysis keeps only the most engaged negative posts)."""
    return (
        f"Each word's examples are its most engaged posts among the {EXAMPLE_POOL:,} most engaged negative posts "
        "since the announcement."
    )


def no_driver_example() -> str:
    """What a driver term's examples say when none of the kept negative posts has it."""
    return f"No example among the {EXAMPLE_POOL:,} most engaged negative posts since the announcement."


def term_reference(analysis: Analysis) -> str:
    """What a spike's words are compared with: the baseline, or the rest of the window when the baseline is thin."""
    return "the rest of the window (too few posts before the announcement)" if analysis.baseline_fallback else "the baseline"
