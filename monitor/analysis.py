"""Scored posts → the numbers every report, digest and alert uses. Pure pandas: no I/O, no plotting.

The result types below are the contract between analysis, plots, report and digest.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from monitor.config import AlertsConfig, EventConfig

# Columns of Analysis.bins, one row per time bin (index: bin start, tz-aware, in the config's zone):
BIN_COLUMNS = [
    "volume",  # all posts in the bin (scored or not)
    "originals",  # posts that are not reposts
    "reposts",  # reposts (retweets, boosts)
    "scored",  # posts with a sentiment score
    "mean_compound",  # mean VADER compound of scored posts
    "ci_low",  # 95 % confidence band of mean_compound
    "ci_high",
    "negative_share",  # share of scored posts with compound <= -0.05
    "positive_share",  # share with compound >= 0.05
    "net_sentiment",  # positive_share - negative_share
    "churn_share",  # share of scored posts that say their author will leave
    "reach_weighted_compound",  # compound weighted by log1p(followers)
    "counted",  # posts counted by the platform's counts endpoint (NaN where not available)
]


@dataclass(frozen=True)
class Shift:
    """A metric after a milestone against the baseline, with its 95 % interval."""

    milestone: str  # e.g. "announced"
    window: str  # "24h", "72h" or "7d"
    metric: str  # "mean_compound", "negative_share" or "volume" (posts per hour)
    baseline: float  # the metric over the baseline window
    after: float  # the metric over the window after the milestone
    diff: float  # after - baseline
    ci_low: float  # 95 % interval of diff
    ci_high: float
    p_value: float | None  # two-sided; None when a side has too few posts
    n_baseline: int  # posts (or bins, for volume) behind each side
    n_after: int


@dataclass(frozen=True)
class Spike:
    """A bin run where volume breaks out (kind "volume") or sentiment breaks down (kind "dip")."""

    kind: str  # "volume" or "dip"
    start: datetime  # first bin over the threshold (aware, UTC)
    peak: datetime  # the most extreme bin
    end: datetime  # last bin over the threshold
    peak_value: float  # volume or mean compound at the peak
    baseline_value: float  # the baseline median of the same metric
    z: float  # robust z-score (median/MAD) at the peak
    size: float  # peak_value / baseline_value for volume; peak - baseline for dips

    def key(self) -> str:
        """Stable identity used to alert once per spike."""
        return f"{self.kind}:{self.start.isoformat()}"


@dataclass(frozen=True)
class Driver:
    """A term over-represented in negative posts after the announcement (weighted log-odds)."""

    term: str
    z: float  # z-score of the log-odds ratio with an informative Dirichlet prior
    count_after: int  # occurrences in negative posts after the announcement
    count_baseline: int  # occurrences in baseline posts


@dataclass(frozen=True)
class AspectStat:
    """How much of the conversation is about one aspect, and its tone."""

    aspect: str
    posts: int
    share: float  # of scored posts since the announcement
    mean_compound: float | None


@dataclass(frozen=True)
class TopPost:
    """A much-engaged negative post, for the report and the digest."""

    created_at: datetime
    source: str
    author: str | None
    text: str
    url: str | None
    compound: float
    engagement: int  # likes + reposts + replies


@dataclass(frozen=True)
class MilestoneShape:
    """The shape of the reaction after one milestone."""

    milestone: str
    peak_at: datetime | None  # the highest-volume bin after the milestone (before the next one)
    hours_to_peak: float | None
    half_life_hours: float | None  # time from the peak until volume first falls to half of it
    volume_before_24h: float | None  # posts in the 24 h before the milestone
    volume_after_24h: float | None  # posts in the 24 h after it
    negative_share_before_24h: float | None
    negative_share_after_24h: float | None


@dataclass
class Coverage:
    """What the numbers rest on."""

    posts: int = 0
    scored: int = 0
    reposts: int = 0
    not_scored_language: int = 0  # posts in languages outside scoring.languages
    not_scored_other: int = 0  # posts skipped for another reason (e.g. bots) or not scored yet
    per_source: dict[str, int] = field(default_factory=dict)
    counted: int | None = None  # posts counted by a counts endpoint over the same span, when known
    first_post: datetime | None = None
    last_post: datetime | None = None
    simulated: bool = False
    languages_excluded: dict[str, int] = field(default_factory=dict)  # language → posts not scored for it


@dataclass
class Analysis:
    """Everything computed for one event."""

    event: str
    title: str
    platform: str
    timezone: str
    bin: str  # "hour" or "day"
    milestones: dict[str, datetime]  # aware
    align_on: str  # milestone that is day 0 in days_from
    baseline_start: datetime
    baseline_end: datetime
    bins: pd.DataFrame  # BIN_COLUMNS, index = bin start in the config's zone
    per_source: pd.DataFrame  # columns: bin, source, volume, scored, mean_compound
    days_from: pd.DataFrame  # like bins, index = days (float) from the align_on milestone
    distribution: pd.DataFrame  # columns: left, right, baseline, after (share of posts per compound bin)
    shifts: list[Shift]
    spikes: list[Spike]
    shapes: list[MilestoneShape]
    drivers: list[Driver]
    aspects: list[AspectStat]
    top_posts: list[TopPost]
    coverage: Coverage
    generated_at: datetime
    # overall numbers: mean_compound, negative_share, positive_share, churn_share for the baseline and
    # since the announcement (keys "baseline" and "since_announced"), None where no post was scored
    totals: dict[str, dict[str, float | None]] = field(default_factory=dict)
    baseline_fallback: bool = False  # no bins in the baseline window: spikes are judged against all bins

    def per_network(self) -> pd.DataFrame:
        """Per-source series summed per network ("mastodon@a" and "mastodon@b" are both "mastodon").

        Columns: bin, network, volume, scored, mean_compound (over the network's scored posts).
        """
        grouped = _by_network(self.per_source, ["bin", "network"])
        return grouped[["bin", "network", "volume", "scored", "mean_compound"]]

    def network_totals(self) -> list[tuple[str, int, float, float | None]]:
        """(network, posts, share of posts, mean compound) per network, largest first: the tone side by side."""
        totals = _by_network(self.per_source, ["network"]).sort_values("volume", ascending=False)
        everything = float(totals["volume"].sum()) or 1.0
        columns = zip(totals["network"], totals["volume"], totals["mean_compound"], strict=True)
        return [
            (str(network), int(volume), float(volume) / everything, _finite_or_none(tone))
            for network, volume, tone in columns
        ]

    def summary(self) -> dict[str, Any]:
        """The numbers as JSON-serialisable data (times ISO 8601 UTC)."""
        return _summary(self)


# ---- the computation ---------------------------------------------------------------------------

NEGATIVE_AT = -0.05  # VADER's thresholds for a negative / positive text
POSITIVE_AT = 0.05
SHIFT_WINDOWS = {"24h": timedelta(hours=24), "72h": timedelta(hours=72), "7d": timedelta(days=7)}
SHIFT_METRICS = ("mean_compound", "negative_share", "volume")
BIN_WIDTH = {"hour": timedelta(hours=1), "day": timedelta(days=1)}
MAD_TO_SIGMA = 1.4826  # makes the MAD a consistent estimate of a normal distribution's sigma
# smallest robust scale: without it a flat baseline (MAD 0) would make any change an infinite z
SCALE_FLOOR = {"volume": 1.0, "dip": 0.05}
TOP_DRIVERS = 15
TOP_POSTS = 10
DISTRIBUTION_EDGES = np.linspace(-1.0, 1.0, 21)
_STOPWORD_TEXT = (
    "a an the and or but if of to in on at by for with from as is are was were be been being it its this that "
    "these those i me my we our you your he she they them their his her not no so do does did have has had will "
    "would can could should just im i'm it's dont don't rt amp via all any up out about what who how when than "
    "then there here too very more most some such only own same into over also get got"
)
_STOPWORDS = frozenset(_STOPWORD_TEXT.split())
_TOKEN = re.compile(r"#?[a-z][a-z0-9_']+")
_URL_OR_MENTION = re.compile(r"https?://\S+|www\.\S+|@\w+")

POST_COLUMNS = {
    "source": "", "post_id": "", "text": "", "author": None, "lang": None, "likes": 0, "reposts": 0,
    "replies": 0, "followers": 0, "url": None, "is_repost": False, "status": None, "compound": np.nan,
    "churn": False, "aspects": "",
}  # fmt: skip


def analyze(
    posts: pd.DataFrame,
    *,
    event: EventConfig,
    milestones: dict[str, datetime],
    tz: str,
    alerts: AlertsConfig,
    counts: pd.DataFrame | None = None,
    generated_at: datetime,
) -> Analysis:
    """Every number of the Analysis for one event's posts (one row per post, with its score columns).

    posts needs created_at (aware, or naive UTC) and text; the other POST_COLUMNS are filled in when missing.
    counts, when given, has columns source, bucket_start, count (hourly counts from a counts endpoint).
    """
    ordered = dict(sorted(milestones.items(), key=lambda item: item[1]))
    announced = ordered.get("announced", next(iter(ordered.values())))
    baseline_end = min(ordered.values())
    baseline_start = baseline_end - timedelta(days=event.baseline_days)
    frame = prepare_posts(posts, tz, event.bin)
    bins = bin_series(frame, tz, event.bin, counts)
    baseline_bins = bins[(bins.index >= baseline_start) & (bins.index < baseline_end)]
    align_on = event.align_on if event.align_on in ordered else "announced"
    return Analysis(
        event=event.name,
        title=event.title_or_name(),
        platform=event.platform,
        timezone=tz,
        bin=event.bin,
        milestones=ordered,
        align_on=align_on,
        baseline_start=baseline_start,
        baseline_end=baseline_end,
        bins=bins,
        per_source=per_source_series(frame),
        days_from=days_from(bins, ordered[align_on]),
        distribution=compound_distribution(frame, baseline_start, baseline_end, announced),
        shifts=shifts(frame, ordered, baseline_start, baseline_end),
        spikes=find_spikes(bins, baseline_bins if len(baseline_bins) else bins, alerts),
        shapes=milestone_shapes(frame, bins, ordered, event.bin),
        drivers=drivers(frame, baseline_start, baseline_end, announced),
        aspects=aspect_stats(frame, list(event.aspects), announced),
        top_posts=top_negative_posts(frame),
        coverage=coverage(frame, counts, event.simulated, event.name),
        generated_at=generated_at,
        totals=totals(frame, baseline_start, baseline_end, announced),
        baseline_fallback=not len(baseline_bins),
    )


def prepare_posts(posts: pd.DataFrame, tz: str, bin_size: str = "hour") -> pd.DataFrame:
    """A copy with every expected column, UTC times, a boolean `scored`, `engagement` and the `bin` start."""
    frame = posts.copy()
    for name, default in POST_COLUMNS.items():
        if name not in frame.columns:
            frame[name] = default
    frame["created_at"] = pd.to_datetime(frame["created_at"], utc=True)
    frame["compound"] = pd.to_numeric(frame["compound"], errors="coerce").astype(float)
    frame["scored"] = (frame["status"] == "scored") & frame["compound"].notna()
    frame["churn"] = frame["churn"].fillna(False).astype(bool)
    frame["is_repost"] = frame["is_repost"].fillna(False).astype(bool)
    for name in ("likes", "reposts", "replies", "followers"):
        frame[name] = pd.to_numeric(frame[name], errors="coerce").fillna(0).astype(float)
    frame["engagement"] = frame["likes"] + frame["reposts"] + frame["replies"]
    frame["aspects"] = frame["aspects"].fillna("").astype(str)
    frame["text"] = frame["text"].fillna("").astype(str)
    frame["bin"] = bin_starts(frame["created_at"], tz, bin_size)
    return frame.sort_values("created_at", kind="stable").reset_index(drop=True)


def bin_starts(times: pd.Series, tz: str, bin_size: str) -> pd.Series:
    """The start of each time's bin (hour or calendar day) in the zone tz."""
    local = times.dt.tz_convert(tz)
    if bin_size == "day":
        return local.dt.floor("D", ambiguous=False, nonexistent="shift_forward")
    # floor the wall clock, then step back by the same amount: exact for any offset, DST-safe
    wall = local.dt.tz_localize(None)
    return local - (wall - wall.dt.floor("h"))


def _bin_index(frame: pd.DataFrame, tz: str, bin_size: str) -> pd.DatetimeIndex:
    if frame.empty:
        return pd.DatetimeIndex([], tz=tz, name="bin")
    first, last = frame["bin"].min(), frame["bin"].max()
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


def _counted_per_bin(counts: pd.DataFrame | None, index: pd.DatetimeIndex, tz: str, bin_size: str) -> pd.Series:
    if counts is None or counts.empty or not len(index):
        return pd.Series(np.nan, index=index, dtype=float)
    starts = bin_starts(pd.to_datetime(counts["bucket_start"], utc=True), tz, bin_size)
    summed = pd.Series(counts["count"].to_numpy(), index=pd.DatetimeIndex(starts)).groupby(level=0).sum()
    return summed.reindex(index).astype(float)


def _by_network(per_source: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """Sum per-source rows by network (the part of the source name before "@"), pooling the mean compound."""
    frame = per_source.assign(network=per_source["source"].str.split("@").str[0])
    frame = frame.assign(weighted=frame["mean_compound"].fillna(0) * frame["scored"])
    grouped = frame.groupby(keys, as_index=False)[["volume", "scored", "weighted"]].sum()
    return grouped.assign(mean_compound=grouped["weighted"] / grouped["scored"].where(grouped["scored"] > 0))


def _finite_or_none(value: Any) -> float | None:
    return float(value) if value is not None and math.isfinite(float(value)) else None


def per_source_series(frame: pd.DataFrame) -> pd.DataFrame:
    """Long table: one row per bin and source with its volume, scored posts and mean compound."""
    if frame.empty:
        return pd.DataFrame(columns=["bin", "source", "volume", "scored", "mean_compound"])
    volume = frame.groupby(["bin", "source"]).size().rename("volume")
    scored = frame[frame["scored"]].groupby(["bin", "source"])["compound"]
    table = pd.concat([volume, scored.size().rename("scored"), scored.mean().rename("mean_compound")], axis=1)
    return table.assign(scored=table["scored"].fillna(0).astype(int)).reset_index()


def days_from(bins: pd.DataFrame, moment: datetime) -> pd.DataFrame:
    """The per-bin series indexed by days (float) from a milestone, so events can be overlaid."""
    shifted = bins.copy()
    shifted.index = pd.Index(
        (pd.DatetimeIndex(bins.index) - pd.Timestamp(moment)).total_seconds() / 86400.0, name="days"
    )
    return shifted


def _between(frame: pd.DataFrame, start: datetime, end: datetime) -> pd.DataFrame:
    times = frame["created_at"]
    return frame[(times >= pd.Timestamp(start)) & (times < pd.Timestamp(end))]


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


# ---- shifts against the baseline -----------------------------------------------------------------


def welch(after: np.ndarray, baseline: np.ndarray) -> tuple[float, float, float, float | None]:
    """mean(after) - mean(baseline) with its 95 % Welch interval and two-sided p-value.

    The interval is NaN and the p-value None when a side has fewer than two values; with no spread on
    either side the interval collapses to the difference and the p-value is undefined (None).
    """
    from scipy import stats

    if len(after) == 0 or len(baseline) == 0:
        return math.nan, math.nan, math.nan, None
    diff = float(np.mean(after) - np.mean(baseline))
    if len(after) < 2 or len(baseline) < 2:
        return diff, math.nan, math.nan, None
    var_after, var_baseline = np.var(after, ddof=1) / len(after), np.var(baseline, ddof=1) / len(baseline)
    standard_error = math.sqrt(var_after + var_baseline)
    if standard_error == 0:
        return diff, diff, diff, None
    dof = standard_error**4 / (var_after**2 / (len(after) - 1) + var_baseline**2 / (len(baseline) - 1))
    margin = float(stats.t.ppf(0.975, dof)) * standard_error
    p_value = float(2 * stats.t.sf(abs(diff) / standard_error, dof))  # what ttest_ind(equal_var=False) gives
    return diff, diff - margin, diff + margin, p_value


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


# ---- spikes and dips -------------------------------------------------------------------------------


def robust_z(values: pd.Series, reference: pd.Series, floor: float) -> tuple[pd.Series, float]:
    """(values - median) / (1.4826 MAD) of the reference, the scale floored; also the reference median."""
    reference = reference.dropna()
    if reference.empty:
        return pd.Series(np.nan, index=values.index), math.nan
    median = float(reference.median())
    scale = max(MAD_TO_SIGMA * float((reference - median).abs().median()), floor)
    return (values - median) / scale, median


def find_spikes(bins: pd.DataFrame, baseline_bins: pd.DataFrame, alerts: AlertsConfig) -> list[Spike]:
    """Volume breakouts and sentiment dips: runs of bins past the robust-z threshold, merged within the cool-down."""
    volume_z, volume_median = robust_z(bins["volume"].astype(float), baseline_bins["volume"].astype(float), 1.0)
    volume_hot = (volume_z > alerts.z_threshold) & (bins["volume"] >= alerts.min_volume)
    dip_reference = baseline_bins["mean_compound"][baseline_bins["scored"] > 0]
    dip_z, dip_median = robust_z(bins["mean_compound"], dip_reference, SCALE_FLOOR["dip"])
    dip_hot = (dip_z < -alerts.z_threshold) & (bins["scored"] >= alerts.min_volume)
    volume_runs = _runs(volume_hot, alerts.cooldown)
    dip_runs = _runs(dip_hot, alerts.cooldown)
    spikes = [_spike("volume", run, bins["volume"].astype(float), volume_z, volume_median) for run in volume_runs]
    spikes += [_spike("dip", run, bins["mean_compound"], dip_z, dip_median) for run in dip_runs]
    return sorted(spikes, key=lambda spike: (spike.start, spike.kind))


def _runs(hot: pd.Series, cooldown: timedelta) -> list[pd.DatetimeIndex]:
    """Consecutive hot bins, a run starting within the cool-down after the previous one's end joining it."""
    runs: list[list[pd.Timestamp]] = []
    previous: pd.Timestamp | None = None
    for moment in hot.index[hot.fillna(False).to_numpy(dtype=bool)]:
        if runs and previous is not None and moment - previous <= max(cooldown, _step(pd.DatetimeIndex(hot.index))):
            runs[-1].append(moment)
        else:
            runs.append([moment])
        previous = moment
    return [pd.DatetimeIndex(run) for run in runs]


def _step(index: pd.DatetimeIndex) -> timedelta:
    """The longest gap between neighbouring bins (a day can be 23 or 25 hours), so neighbours always join."""
    return index.to_series().diff().max() if len(index) > 1 else timedelta(0)


def _spike(kind: str, run: pd.DatetimeIndex, values: pd.Series, z: pd.Series, median: float) -> Spike:
    in_run = z.loc[run]
    peak: Any = in_run.idxmax() if kind == "volume" else in_run.idxmin()
    peak_value = float(values.loc[peak])
    size = (
        peak_value / median if kind == "volume" and median > 0 else peak_value - (0.0 if kind == "volume" else median)
    )
    return Spike(
        kind=kind,
        start=_utc(run[0]),
        peak=_utc(peak),
        end=_utc(run[-1]),
        peak_value=peak_value,
        baseline_value=median,
        z=float(z.loc[peak]),
        size=float(size),
    )


def _utc(moment: Any) -> datetime:
    return pd.Timestamp(moment).tz_convert("UTC").to_pydatetime()


# ---- the shape of the reaction ---------------------------------------------------------------------


def milestone_shapes(
    frame: pd.DataFrame, bins: pd.DataFrame, milestones: dict[str, datetime], bin_size: str
) -> list[MilestoneShape]:
    """Per milestone: the volume peak before the next milestone, its half-life, and the 24 h before vs after."""
    moments = list(milestones.items())
    shapes = []
    for position, (name, moment) in enumerate(moments):
        following = moments[position + 1][1] if position + 1 < len(moments) else None
        shapes.append(_shape(frame, bins, name, moment, following, BIN_WIDTH[bin_size]))
    return shapes


def _shape(
    frame: pd.DataFrame, bins: pd.DataFrame, name: str, moment: datetime, following: datetime | None, width: timedelta
) -> MilestoneShape:
    stamp = pd.Timestamp(moment)
    window = bins[bins.index > stamp - width]
    if following is not None:
        window = window[window.index < pd.Timestamp(following)]
    peak_at, hours_to_peak, half_life = None, None, None
    if len(window) and window["volume"].max() > 0:
        peak: Any = window["volume"].idxmax()
        peak_at, hours_to_peak = _utc(peak), max((peak - stamp) / pd.Timedelta(hours=1), 0.0)
        half_life = _half_life(bins["volume"], peak)
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


def _half_life(volume: pd.Series, peak: pd.Timestamp) -> float | None:
    """Hours from the peak bin to the first later bin with at most half its volume (None: not yet)."""
    later = volume[volume.index > peak]
    fallen = later[later <= volume.loc[peak] / 2]
    return None if fallen.empty else float((fallen.index[0] - peak) / pd.Timedelta(hours=1))


def _negative_share(frame: pd.DataFrame) -> float | None:
    scored = frame[frame["scored"]]["compound"]
    return float((scored <= NEGATIVE_AT).mean()) if len(scored) else None


# ---- drivers: Monroe, Colaresi & Quinn (2008), weighted log-odds with an informative Dirichlet prior ----


def tokens(text: str) -> list[str]:
    """Lower-cased words and #hashtags, without URLs, @mentions and stop words."""
    cleaned = _URL_OR_MENTION.sub(" ", text.lower())
    return [token for token in _TOKEN.findall(cleaned) if token.strip("#") not in _STOPWORDS]


def _term_counts(texts: Iterable[str]) -> Counter[str]:
    counts: Counter[str] = Counter()
    for text in texts:
        counts.update(tokens(text))
    return counts


def log_odds_z(focus: Counter[str], reference: Counter[str], prior: Counter[str]) -> dict[str, float]:
    """z-scores of the log-odds ratio of each term, focus against reference (Monroe et al. 2008, eq. 22)."""
    n_focus, n_reference, alpha_total = sum(focus.values()), sum(reference.values()), sum(prior.values())
    scores = {}
    for term in focus:
        alpha = prior[term]
        y_focus, y_reference = focus[term], reference[term]
        rest_focus, rest_reference = (
            n_focus + alpha_total - y_focus - alpha,
            n_reference + alpha_total - y_reference - alpha,
        )
        if rest_focus <= 0 or rest_reference <= 0:
            continue  # the term is the whole vocabulary: its odds are undefined
        log_focus = math.log((y_focus + alpha) / rest_focus)
        log_reference = math.log((y_reference + alpha) / rest_reference)
        variance = 1.0 / (y_focus + alpha) + 1.0 / (y_reference + alpha)
        scores[term] = (log_focus - log_reference) / math.sqrt(variance)
    return scores


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
    ranked = sorted(log_odds_z(focus, reference, prior).items(), key=lambda item: (-item[1], item[0]))
    chosen = [(term, z) for term, z in ranked if z > 0 and focus[term] >= 2][:top]
    return [Driver(term, float(z), focus[term], reference[term]) for term, z in chosen]


# ---- aspects, top posts, coverage, totals -------------------------------------------------------------


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
    return [
        TopPost(
            created_at=_utc(row["created_at"]),
            source=str(row["source"]),
            author=_text_or_none(row["author"]),
            text=str(row["text"]),
            url=_text_or_none(row["url"]),
            compound=float(row["compound"]),
            engagement=int(row["engagement"]),
        )
        for row in negative.to_dict("records")
    ]


def _text_or_none(value: Any) -> str | None:
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else str(value)


def coverage(frame: pd.DataFrame, counts: pd.DataFrame | None, simulated: bool, event: str = "") -> Coverage:
    """What the numbers rest on: posts per source, reposts, what was not scored and why, the span."""
    status = frame["status"].fillna("unscored")
    language = frame["lang"].where(frame["lang"].notna(), "unknown")
    excluded = language[status == "skipped:language"].value_counts()
    found = Coverage(
        posts=len(frame),
        scored=int(frame["scored"].sum()),
        reposts=int(frame["is_repost"].sum()),
        not_scored_language=int((status == "skipped:language").sum()),
        per_source={str(k): int(v) for k, v in frame["source"].value_counts().sort_index().items()},
        simulated=simulated,
        languages_excluded={str(k): int(v) for k, v in excluded.items()},
    )
    found.not_scored_other = found.posts - found.scored - found.not_scored_language
    if not frame.empty:
        found.first_post, found.last_post = _utc(frame["created_at"].min()), _utc(frame["created_at"].max())
    if counts is not None and not counts.empty:
        found.counted = int(counts["count"].sum())
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


# ---- the JSON summary ---------------------------------------------------------------------------------


def _summary(analysis: Analysis) -> dict[str, Any]:
    spikes = [asdict(spike) | {"key": spike.key()} for spike in analysis.spikes]
    document = {
        "event": analysis.event,
        "title": analysis.title,
        "platform": analysis.platform,
        "timezone": analysis.timezone,
        "bin": analysis.bin,
        "generated_at": analysis.generated_at,
        "milestones": analysis.milestones,
        "align_on": analysis.align_on,
        "baseline": {"start": analysis.baseline_start, "end": analysis.baseline_end},
        "baseline_fallback": analysis.baseline_fallback,
        "coverage": asdict(analysis.coverage),
        "totals": analysis.totals,
        "bins": len(analysis.bins),
        "latest_bin": _latest_bin(analysis.bins),
        "shifts": [asdict(shift) for shift in analysis.shifts],
        "spikes": spikes,
        "shapes": [asdict(shape) for shape in analysis.shapes],
        "drivers": [asdict(driver) for driver in analysis.drivers],
        "aspects": [asdict(aspect) for aspect in analysis.aspects],
        "top_posts": [asdict(post) for post in analysis.top_posts],
    }
    return _jsonable(document)


def _latest_bin(bins: pd.DataFrame) -> dict[str, Any] | None:
    if bins.empty:
        return None
    return {"start": bins.index[-1], **{str(key): value for key, value in bins.iloc[-1].items()}}


def _jsonable(value: Any) -> Any:
    """datetimes → ISO 8601 UTC ('Z'), NaN/inf → None, numpy scalars → Python ones, recursively."""
    if isinstance(value, dict):
        return {str(key): _jsonable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(item) for item in value]
    if isinstance(value, datetime):
        moment = value if value.tzinfo else value.replace(tzinfo=UTC)
        return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
