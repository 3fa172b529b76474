"""The in-memory analysis: every number of an Analysis computed from all posts at once, in pandas.

The product streams posts through monitor.analysis.AnalysisAccumulator in bounded memory; this plain
version is the independent reference it is tested against (every hand-worked case runs through both).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable
from dataclasses import replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

from monitor.analysis import (
    BIN_COLUMNS,
    BIN_WIDTH,
    DISTRIBUTION_EDGES,
    MIN_BASELINE_POSTS,
    NEGATIVE_AT,
    POSITIVE_AT,
    SHIFT_METRICS,
    SHIFT_WINDOWS,
    TOP_DRIVERS,
    TOP_POSTS,
    WHO_WHAT,
    WHO_WHAT_TOP,
    Analysis,
    AspectStat,
    Coverage,
    Driver,
    MilestoneShape,
    Shift,
    Standing,
    TopPost,
    _count_languages,
    _counted_between,
    _counted_per_bin,
    _peak,
    _top_post,
    _utc,
    data_end,
    days_from,
    find_spikes,
    milestone_bends,
    partial_bin,
    post_entities,
    prepare_posts,
    rank_drivers,
    resolve_bin,
    spike_reference,
    split_window,
    standings,
    tokens,
    welch,
)
from monitor.config import event_window

if TYPE_CHECKING:
    from monitor.config import AlertsConfig, EventConfig


def _between(frame: pd.DataFrame, start: datetime, end: datetime) -> pd.DataFrame:
    """The posts of frame created in [start, end)."""
    times = frame["created_at"]
    return frame[(times >= pd.Timestamp(start)) & (times < pd.Timestamp(end))]


def analyze(
    posts: pd.DataFrame,
    *,
    event: EventConfig,
    milestones: dict[str, datetime],
    tz: str,
    alerts: AlertsConfig,
    counts: pd.DataFrame | None = None,
    generated_at: datetime,
    collected_until: datetime | None = None,
) -> Analysis:
    """Every number of the Analysis for one event's posts (one row per post, with its score columns), in memory.

    The pipeline streams through AnalysisAccumulator instead; this plain version is the reference the
    accumulator is tested against (tests/test_analysis.py runs every hand-worked case through both).

    posts needs created_at (aware, or naive UTC) and text; the other POST_COLUMNS are filled in when missing.
    counts, when given, has columns source, bucket_start, count (hourly counts from a counts endpoint).
    """
    ordered = dict(sorted(milestones.items(), key=lambda item: item[1]))
    announced = ordered.get("announced", next(iter(ordered.values())))
    baseline_end = min(ordered.values())
    baseline_start = baseline_end - timedelta(days=event.baseline_days)
    window = event_window(event, ordered, ZoneInfo(tz))
    bin_size = resolve_bin(event.bin, window)
    frame, before, after = split_window(prepare_posts(posts, tz, bin_size), *window)
    bins = bin_series(frame, tz, bin_size, counts)
    reference, baseline_posts = spike_reference(bins, baseline_start, baseline_end)
    found = coverage(frame, counts, event.simulated, event.name)
    found.before_window, found.after_window = before, after
    align_on = event.align_on if event.align_on in ordered else "announced"
    end = data_end(found.last_post, collected_until, window[1], posts_after=after > 0)
    partial = partial_bin(bins, bin_size, end)
    return Analysis(
        event=event.name,
        title=event.title_or_name(),
        platform=event.platform,
        timezone=tz,
        bin=bin_size,
        milestones=ordered,
        align_on=align_on,
        baseline_start=baseline_start,
        baseline_end=baseline_end,
        bins=bins,
        per_source=per_source_series(frame),
        days_from=days_from(bins, ordered[align_on]),
        distribution=compound_distribution(frame, baseline_start, baseline_end, announced),
        shifts=shifts(frame, ordered, baseline_start, baseline_end),
        spikes=find_spikes(bins, reference, alerts),
        shapes=milestone_shapes(frame, bins, ordered, bin_size, partial),
        drivers=drivers(frame, baseline_start, baseline_end, announced),
        aspects=aspect_stats(frame, list(event.aspects), announced),
        top_posts=top_negative_posts(frame[frame["created_at"] >= pd.Timestamp(announced)]),
        coverage=found,
        generated_at=generated_at,
        totals=totals(frame, baseline_start, baseline_end, announced),
        baseline_fallback=baseline_posts < MIN_BASELINE_POSTS,
        baseline_posts=baseline_posts,
        window_start=window[0],
        window_end=window[1],
        who_what=who_what(frame, baseline_start, baseline_end, announced),
        data_end=end,
    )


def who_what(
    frame: pd.DataFrame, baseline_start: datetime, baseline_end: datetime, announced: datetime
) -> dict[str, list[Standing]]:
    """Top hashtags, mentions, domains and accounts since the announcement against the baseline, post by post."""
    since = frame[frame["created_at"] >= pd.Timestamp(announced)]
    baseline = frame[
        (frame["created_at"] >= pd.Timestamp(baseline_start)) & (frame["created_at"] < pd.Timestamp(baseline_end))
    ]
    counted = {name: _who_what_of(part) for name, part in (("since", since), ("baseline", baseline))}
    posts = (len(since), len(baseline))
    return {
        kind: standings(counted["since"][kind], counted["baseline"][kind], posts, WHO_WHAT_TOP) for kind in WHO_WHAT
    }


def _who_what_of(part: pd.DataFrame) -> dict[str, Counter[str]]:
    counts: dict[str, Counter[str]] = {kind: Counter() for kind in WHO_WHAT}
    for row in part.itertuples():
        for kind, names in post_entities(row.text).items():
            counts[kind].update(names)
        if isinstance(row.author, str) and row.author:
            counts["active_accounts"][row.author] += 1
            if not row.is_repost and row.engagement > 0:
                counts["engaged_accounts"][row.author] += int(row.engagement)
    return counts


def _bin_index(frame: pd.DataFrame, tz: str, bin_size: str) -> pd.DatetimeIndex:
    if frame.empty:
        return pd.DatetimeIndex([], tz=tz, name="bin")
    first, last = frame["bin"].min(), frame["bin"].max()
    if bin_size == "6h":  # wall-clock quarters of each local day, built independently of analysis.bin_index
        days = pd.date_range(first.tz_localize(None).floor("D"), last.tz_localize(None), freq="D")
        starts = [day + pd.Timedelta(hours=h) for day in days for h in (0, 6, 12, 18)]
        local = pd.DatetimeIndex(starts).tz_localize(tz, ambiguous=False, nonexistent="shift_forward")
        return pd.DatetimeIndex(local[(local >= first) & (local <= last)], name="bin")
    freq = "D" if bin_size == "day" else "h"
    return pd.date_range(first, last, freq=freq, tz=tz, name="bin")


def bin_series(frame: pd.DataFrame, tz: str, bin_size: str, counts: pd.DataFrame | None = None) -> pd.DataFrame:
    """BIN_COLUMNS for every bin from the first post to the last (empty bins have volume 0)."""
    index = _bin_index(frame, tz, bin_size)
    groups = frame.groupby("bin")
    scored = frame[frame["scored"]].copy()
    scored["negative"] = scored["compound"] <= NEGATIVE_AT
    scored["positive"] = scored["compound"] >= POSITIVE_AT
    scored["weight"] = np.log1p(scored["followers"].clip(lower=0))
    scored["weighted"] = scored["weight"] * scored["compound"]
    by_bin = scored.groupby("bin")
    bins = pd.DataFrame(index=index)
    bins["volume"] = groups.size().reindex(index, fill_value=0).astype(int)
    bins["reposts"] = groups["is_repost"].sum().reindex(index, fill_value=0).astype(int)
    bins["originals"] = bins["volume"] - bins["reposts"]
    bins["scored"] = by_bin.size().reindex(index, fill_value=0).astype(int)
    bins["mean_compound"] = by_bin["compound"].mean().reindex(index)
    half_width = 1.96 * by_bin["compound"].std(ddof=1).reindex(index) / np.sqrt(bins["scored"])
    bins["ci_low"] = bins["mean_compound"] - half_width
    bins["ci_high"] = bins["mean_compound"] + half_width
    bins["negative_share"] = by_bin["negative"].mean().reindex(index)
    bins["positive_share"] = by_bin["positive"].mean().reindex(index)
    bins["net_sentiment"] = bins["positive_share"] - bins["negative_share"]
    bins["churn_share"] = by_bin["churn"].mean().reindex(index)
    weights = by_bin["weight"].sum().reindex(index)
    bins["reach_weighted_compound"] = (by_bin["weighted"].sum().reindex(index) / weights).where(weights > 0)
    bins["counted"] = _counted_per_bin(counts, index, tz, bin_size)
    return bins[BIN_COLUMNS]


def per_source_series(frame: pd.DataFrame) -> pd.DataFrame:
    """Long table: one row per bin and source with its volume, scored posts and mean compound."""
    if frame.empty:
        return pd.DataFrame(columns=["bin", "source", "volume", "scored", "mean_compound"])
    volume = frame.groupby(["bin", "source"]).size().rename("volume")
    scored = frame[frame["scored"]].groupby(["bin", "source"])["compound"]
    table = pd.concat([volume, scored.size().rename("scored"), scored.mean().rename("mean_compound")], axis=1)
    return table.assign(scored=table["scored"].fillna(0).astype(int)).reset_index()


def compound_distribution(
    frame: pd.DataFrame, baseline_start: datetime, baseline_end: datetime, announced: datetime
) -> pd.DataFrame:
    """Share of scored posts per compound bin (width 0.1), baseline against everything since the announcement."""
    scored = frame[frame["scored"]]
    sides = {
        "baseline": _between(scored, baseline_start, baseline_end)["compound"],
        "after": scored[scored["created_at"] >= pd.Timestamp(announced)]["compound"],
    }
    table = pd.DataFrame({"left": DISTRIBUTION_EDGES[:-1], "right": DISTRIBUTION_EDGES[1:]})
    for name, values in sides.items():
        histogram, _ = np.histogram(values.to_numpy(), bins=DISTRIBUTION_EDGES)
        table[name] = histogram / histogram.sum() if histogram.sum() else 0.0
    return table


def hourly_counts(frame: pd.DataFrame, start: datetime, end: datetime) -> np.ndarray:
    """Posts in each hour of [start, end), the window clipped to the hours the data covers."""
    if frame.empty:
        return np.zeros(0)
    first = frame["created_at"].min().floor("h")
    last = frame["created_at"].max()
    start_at, end_at = max(pd.Timestamp(start), first), min(pd.Timestamp(end), last + pd.Timedelta(microseconds=1))
    hours = math.ceil((end_at - start_at) / pd.Timedelta(hours=1)) if end_at > start_at else 0
    offsets = (_between(frame, start_at, end_at)["created_at"] - start_at) // pd.Timedelta(hours=1)
    return np.bincount(offsets.to_numpy(dtype=np.int64), minlength=hours)[:hours].astype(float)


def _metric_values(frame: pd.DataFrame, metric: str, start: datetime, end: datetime) -> np.ndarray:
    if metric == "volume":
        return hourly_counts(frame, start, end)
    scored = _between(frame[frame["scored"]], start, end)["compound"].to_numpy(dtype=float)
    return scored if metric == "mean_compound" else (scored <= NEGATIVE_AT).astype(float)


def shifts(
    frame: pd.DataFrame, milestones: dict[str, datetime], baseline_start: datetime, baseline_end: datetime
) -> list[Shift]:
    """Each metric in the 24 h, 72 h and 7 days after each milestone against the baseline."""
    found = []
    for metric in SHIFT_METRICS:
        baseline = _metric_values(frame, metric, baseline_start, baseline_end)
        for name, moment in milestones.items():
            for window, length in SHIFT_WINDOWS.items():
                after = _metric_values(frame, metric, moment, moment + length)
                diff, low, high, p_value = welch(after, baseline)
                found.append(
                    Shift(
                        milestone=name,
                        window=window,
                        metric=metric,
                        baseline=_mean(baseline),
                        after=_mean(after),
                        diff=diff,
                        ci_low=low,
                        ci_high=high,
                        p_value=p_value,
                        n_baseline=len(baseline),
                        n_after=len(after),
                    )
                )
    return found


def _mean(values: np.ndarray) -> float:
    return float(np.mean(values)) if len(values) else math.nan


def milestone_shapes(
    frame: pd.DataFrame,
    bins: pd.DataFrame,
    milestones: dict[str, datetime],
    bin_size: str,
    partial: pd.Timestamp | None = None,
) -> list[MilestoneShape]:
    """Per milestone: the volume peak before the next milestone, its half-life, the 24 h before vs after, and
    (after the first) whether it bent the curves; the trends come from the bins, as in the accumulator."""
    moments = list(milestones.items())
    shapes = []
    for position, (name, moment) in enumerate(moments):
        following = moments[position + 1][1] if position + 1 < len(moments) else None
        shape = _shape(frame, bins, name, moment, following, BIN_WIDTH[bin_size], partial)
        negative, volume = milestone_bends(bins, list(milestones.values()), position, bin_size, partial)
        shapes.append(replace(shape, negative_share_bend=negative, volume_bend=volume))
    return shapes


def _shape(
    frame: pd.DataFrame,
    bins: pd.DataFrame,
    name: str,
    moment: datetime,
    following: datetime | None,
    width: timedelta,
    partial: pd.Timestamp | None,
) -> MilestoneShape:
    peak_at, hours_to_peak, half_life = _peak(bins, moment, following, width, partial)
    before = _between(frame, moment - timedelta(hours=24), moment)
    after = _between(frame, moment, moment + timedelta(hours=24))
    return MilestoneShape(
        milestone=name,
        peak_at=peak_at,
        hours_to_peak=hours_to_peak,
        half_life_hours=half_life,
        volume_before_24h=float(len(before)) if not frame.empty else None,
        volume_after_24h=float(len(after)) if not frame.empty else None,
        negative_share_before_24h=_negative_share(before),
        negative_share_after_24h=_negative_share(after),
    )


def _negative_share(frame: pd.DataFrame) -> float | None:
    scored = frame[frame["scored"]]["compound"]
    return float((scored <= NEGATIVE_AT).mean()) if len(scored) else None


def _term_counts(texts: Iterable[str]) -> Counter[str]:
    counts: Counter[str] = Counter()
    for text in texts:
        counts.update(tokens(text))
    return counts


def drivers(
    frame: pd.DataFrame, baseline_start: datetime, baseline_end: datetime, announced: datetime, top: int = TOP_DRIVERS
) -> list[Driver]:
    """Terms over-represented in negative posts since the announcement against the baseline's posts.

    The prior is the event's whole scored conversation, so words common everywhere are shrunk towards
    no difference and rare words need many occurrences to rank.
    """
    scored = frame[frame["scored"]]
    since = scored[scored["created_at"] >= pd.Timestamp(announced)]
    focus = _term_counts(since[since["compound"] <= NEGATIVE_AT]["text"])
    reference = _term_counts(_between(scored, baseline_start, baseline_end)["text"])
    prior = _term_counts(scored["text"])
    return rank_drivers(focus, reference, prior, top)


def aspect_stats(frame: pd.DataFrame, aspect_names: list[str], announced: datetime) -> list[AspectStat]:
    """Per aspect: scored posts since the announcement tagged with it, their share and mean compound."""
    scored = frame[frame["scored"] & (frame["created_at"] >= pd.Timestamp(announced))]
    tags = scored["aspects"].str.split(",")
    stats = []
    for name in aspect_names:
        tagged = scored[tags.apply(lambda names, aspect=name: aspect in names)] if len(scored) else scored
        share = len(tagged) / len(scored) if len(scored) else 0.0
        mean = float(tagged["compound"].mean()) if len(tagged) else None
        stats.append(AspectStat(aspect=name, posts=len(tagged), share=share, mean_compound=mean))
    return stats


def top_negative_posts(frame: pd.DataFrame, top: int = TOP_POSTS) -> list[TopPost]:
    """The most-engaged negative posts, one per text (a repost's engagement is its original's)."""
    negative = frame[frame["scored"] & (frame["compound"] <= NEGATIVE_AT)]
    negative = negative.sort_values(["engagement", "compound"], ascending=[False, True], kind="stable")
    negative = negative.drop_duplicates("text").head(top)
    return [_top_post(row) for row in negative.to_dict("records")]


def coverage(frame: pd.DataFrame, counts: pd.DataFrame | None, simulated: bool, event: str = "") -> Coverage:
    """What the numbers rest on: posts per source, reposts, what was not scored and why, the span."""
    status = frame["status"].fillna("unscored")
    language = frame["lang"].where(frame["lang"].notna(), "unknown")
    excluded = language[status == "skipped:language"].value_counts()
    found = Coverage(
        posts=len(frame),
        scored=int(frame["scored"].sum()),
        reposts=int(frame["is_repost"].sum()),
        quotes=int(frame["is_quote"].sum()),
        not_scored_language=int((status == "skipped:language").sum()),
        unscored=int((status == "unscored").sum()),
        per_source={str(k): int(v) for k, v in frame["source"].value_counts().sort_index().items()},
        simulated=simulated,
        languages_excluded={str(k): int(v) for k, v in excluded.items()},
    )
    _count_languages(found, frame)
    found.not_scored_other = found.posts - found.scored - found.not_scored_language - found.unscored
    if not frame.empty:
        found.first_post, found.last_post = _utc(frame["created_at"].min()), _utc(frame["created_at"].max())
    found.counted = _counted_between(counts, found.first_post, found.last_post)
    return found


def totals(
    frame: pd.DataFrame, baseline_start: datetime, baseline_end: datetime, announced: datetime
) -> dict[str, dict[str, float | None]]:
    """Overall tone of the baseline and of everything since the announcement."""
    scored = frame[frame["scored"]]
    sides = {
        "baseline": _between(scored, baseline_start, baseline_end),
        "since_announced": scored[scored["created_at"] >= pd.Timestamp(announced)],
    }
    return {name: _tone(side) for name, side in sides.items()}


def _tone(scored: pd.DataFrame) -> dict[str, float | None]:
    if scored.empty:
        return {"posts": 0, "mean_compound": None, "negative_share": None, "positive_share": None, "churn_share": None}
    compound = scored["compound"]
    return {
        "posts": len(scored),
        "mean_compound": float(compound.mean()),
        "negative_share": float((compound <= NEGATIVE_AT).mean()),
        "positive_share": float((compound >= POSITIVE_AT).mean()),
        "churn_share": float(scored["churn"].mean()),
    }
