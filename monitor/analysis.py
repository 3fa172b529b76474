"""Scored posts → the numbers every report, digest and alert uses. Pure pandas: no I/O, no plotting.

The result types below are the contract between analysis, plots, report and digest.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

from monitor.config import event_window
from monitor.examples import ASPECT, BIN_ENGAGED, BIN_NEGATIVE, POOL, DrillSums, Keep, KeptList, examples_of, top_rows
from monitor.language import UNDETERMINED
from monitor.scoring import primary_language

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
class Standing:
    """One hashtag, mention, linked domain or account: how much since the announcement, and against the baseline."""

    name: str  # "#boycottinstagram", "@instagram", "nytimes.com" or an author
    count: int  # posts since the announcement (engaged accounts: likes + reposts + replies of their own posts)
    baseline: int  # the same in the baseline window
    change: float | None  # per post since the announcement ÷ per post in the baseline; None when the baseline had none


@dataclass(frozen=True)
class CurveBend:
    """Whether a milestone bent a metric's curve: the trend in the days before it against the days after.

    Each side is a least-squares line over its bins (segmented regression of an interrupted time series):
    the negative share weighted by each bin's scored posts, posts per hour unweighted. The interval of the
    change of slope uses the residual variance pooled over both sides and Student's t with bins − 4 degrees
    of freedom; neighbouring bins are not independent, so it is, if anything, too narrow.
    """

    metric: str  # "negative_share" (slopes: share per day, 0.01 = 1 point) or "volume" (posts per hour, per day)
    before_from: datetime | None  # the bins fitted before the milestone start here (None: no bin)
    after_to: datetime | None  # and those after it end here
    bins_before: int  # bins fitted on each side (negative share: bins with a scored post)
    bins_after: int
    posts_before: int  # scored posts (negative share) or posts (volume) in them
    posts_after: int
    slope_before: float | None  # per day; None with fewer than two bins
    slope_after: float | None
    change: float | None  # slope_after - slope_before
    ci_low: float | None  # 95 % interval of change; None when the verdict is "cannot tell"
    ci_high: float | None
    verdict: str  # "bent" (the interval excludes 0), "no clear change", "cannot tell (too few posts)" or "(too few bins)"


@dataclass(frozen=True)
class MilestoneShape:
    """The shape of the reaction after one milestone."""

    milestone: str
    peak_at: datetime | None  # the highest-volume bin after the milestone (before the next one)
    hours_to_peak: float | None
    half_life_hours: float | None  # time from the peak until volume first falls to half of it (whole bins only)
    volume_before_24h: float | None  # posts in the 24 h before the milestone
    volume_after_24h: float | None  # posts in the 24 h after it
    negative_share_before_24h: float | None
    negative_share_after_24h: float | None
    # did the milestone bend the curve? For every milestone but the first (a reversal, a pause, an effective date)
    negative_share_bend: CurveBend | None = None
    volume_bend: CurveBend | None = None


@dataclass
class Coverage:
    """What the numbers rest on."""

    posts: int = 0
    scored: int = 0
    reposts: int = 0
    quotes: int = 0  # posts quoting another post (their text is their own, unlike reposts)
    not_scored_language: int = 0  # posts in languages outside scoring.languages
    not_scored_other: int = 0  # posts the current scorer skipped for another reason (e.g. bots)
    unscored: int = 0  # posts the current scorer has not seen yet: `backlash score` was not run since
    before_window: int = 0  # posts stored for the event but older than its window: not analysed
    after_window: int = 0  # posts at or after the window's end: not analysed
    language_tagged: int = 0  # scored or skipped posts whose source gave a language tag
    language_guessed: int = 0  # posts without a tag whose language was identified with confidence
    language_undetermined: int = 0  # posts without a tag and too little or unclear text: kept as "und" and scored
    per_source: dict[str, int] = field(default_factory=dict)
    counted: int | None = None  # posts a counts endpoint counted in the hours from first_post to last_post, if known
    first_post: datetime | None = None
    last_post: datetime | None = None
    simulated: bool = False
    languages_excluded: dict[str, int] = field(default_factory=dict)  # language → posts not scored for it
    # feed → statuses read from it (Mastodon: each instance's hashtag timeline), with the feeds that gave no post
    feeds_read: dict[str, int] = field(default_factory=dict)

    @property
    def outside_window(self) -> int:
        return self.before_window + self.after_window


@dataclass
class Analysis:
    """Everything computed for one event."""

    event: str
    title: str
    platform: str
    timezone: str
    bin: str  # "hour", "6h" or "day" (never "auto": resolved from the window's length)
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
    # fewer than MIN_BASELINE_POSTS posts in the baseline: spikes are judged against every bin of the window
    baseline_fallback: bool = False
    baseline_posts: int = 0  # posts in the baseline window
    window_start: datetime | None = None  # the analysed span (Config.window_utc); posts outside are only counted
    window_end: datetime | None = None
    # who and what since the announcement: WHO_WHAT lists → their top Standing entries
    who_what: dict[str, list[Standing]] = field(default_factory=dict)
    # the latest hand check of our labels (`backlash validate`): per-class precision and recall, or None
    validation: dict[str, Any] | None = None
    # until when the data run (see data_end()): a last bin that ends later is partial
    data_end: datetime | None = None
    # what the page's drill-down takes from the analysis instead of reading posts again (None: not built
    # by AnalysisAccumulator); not in summary.json
    drill: DrillSums | None = None

    def partial_bin(self) -> pd.Timestamp | None:
        """The last bin's start when the data stop before that bin ends (its bar is short), else None."""
        return partial_bin(self.bins, self.bin, self.data_end)

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
MIN_BASELINE_POSTS = 30  # fewer posts than this in the baseline and its median hour says nothing
SHIFT_WINDOWS = {"24h": timedelta(hours=24), "72h": timedelta(hours=72), "7d": timedelta(days=7)}
SHIFT_METRICS = ("mean_compound", "negative_share", "volume")
BIN_WIDTH = {"hour": timedelta(hours=1), "6h": timedelta(hours=6), "day": timedelta(days=1)}
# `bin: auto`: the finest bin whose window stays readable (at most ~120 bars): hours up to 5 days, 6 h up to 30
AUTO_BIN_LIMITS = ((timedelta(days=5), "hour"), (timedelta(days=30), "6h"))
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
    "then there here too very more most some such only own same into over also get got gets getting going "
    "today now still even much many one us am been being want wants let lets make makes"
)
_STOPWORDS = frozenset(_STOPWORD_TEXT.split())
_TOKEN = re.compile(r"#?[a-z][a-z0-9_']+")
_URL_OR_MENTION = re.compile(r"https?://\S+|www\.\S+|@\w+")

POST_COLUMNS = {
    "source": "", "post_id": "", "text": "", "author": None, "lang": None, "likes": 0, "reposts": 0,
    "replies": 0, "followers": 0, "url": None, "is_repost": False, "is_quote": False, "status": None, "compound": np.nan,
    "churn": False, "aspects": "", "lang_tag": None,
}  # fmt: skip


def split_window(frame: pd.DataFrame, start: datetime, end: datetime) -> tuple[pd.DataFrame, int, int]:
    """The posts inside [start, end), and how many fall before and after it (counted, never binned)."""
    before = frame["created_at"] < pd.Timestamp(start)
    after = frame["created_at"] >= pd.Timestamp(end)
    return frame[~(before | after)].reset_index(drop=True), int(before.sum()), int(after.sum())


def spike_reference(bins: pd.DataFrame, baseline_start: datetime, baseline_end: datetime) -> tuple[pd.DataFrame, int]:
    """The bins spikes are judged against, and the posts in the baseline.

    The baseline's bins when it holds at least MIN_BASELINE_POSTS posts; otherwise every bin of the window,
    and every page, chart and mail then says so instead of calling anything "× the baseline".
    """
    baseline = bins[(bins.index >= baseline_start) & (bins.index < baseline_end)]
    posts = int(baseline["volume"].sum())
    return (baseline if posts >= MIN_BASELINE_POSTS else bins), posts


def resolve_bin(setting: str, window: tuple[datetime, datetime]) -> str:
    """The bin an event uses: its `bin` setting, or for "auto" the finest that keeps the window readable."""
    if setting != "auto":
        return setting
    length = window[1] - window[0]
    return next((name for limit, name in AUTO_BIN_LIMITS if length <= limit), "day")


def bin_index(first: pd.Timestamp, last: pd.Timestamp, tz: str, bin_size: str) -> pd.DatetimeIndex:
    """Every bin start from first to last; 6 h bins follow the wall clock (00, 06, 12, 18) across DST."""
    if bin_size == "6h":
        hours = pd.date_range(first, last, freq="h", tz=tz)
        return pd.DatetimeIndex(bin_starts(hours.to_series(), tz, "6h").unique(), name="bin")
    return pd.date_range(first, last, freq="D" if bin_size == "day" else "h", tz=tz, name="bin")


def prepare_posts(posts: pd.DataFrame, tz: str, bin_size: str = "hour") -> pd.DataFrame:
    """A copy with every expected column, UTC times, a boolean `scored`, `engagement` and the `bin` start."""
    frame = posts.copy()
    for name, default in POST_COLUMNS.items():
        if name not in frame.columns:
            frame[name] = default
    frame["created_at"] = pd.to_datetime(frame["created_at"], utc=True)
    frame["compound"] = pd.to_numeric(frame["compound"], errors="coerce").astype(float)
    frame["scored"] = (frame["status"] == "scored") & frame["compound"].notna()
    frame["churn"] = frame["churn"].astype(object).fillna(False).astype(bool)  # 0/1/NaN from the store, or bools
    frame["is_repost"] = frame["is_repost"].fillna(False).astype(bool)
    frame["is_quote"] = frame["is_quote"].fillna(False).astype(bool)
    for name in ("likes", "reposts", "replies", "followers"):
        frame[name] = pd.to_numeric(frame[name], errors="coerce").fillna(0).astype(float)
    frame["engagement"] = frame["likes"] + frame["reposts"] + frame["replies"]
    frame["aspects"] = frame["aspects"].fillna("").astype(str)
    frame["text"] = frame["text"].fillna("").astype(str)
    frame["bin"] = bin_starts(frame["created_at"], tz, bin_size)
    return frame.sort_values("created_at", kind="stable").reset_index(drop=True)


def bin_starts(times: pd.Series, tz: str, bin_size: str) -> pd.Series:
    """The start of each time's bin (hour, 6 wall-clock hours or calendar day) in the zone tz."""
    local = times.dt.tz_convert(tz)
    if bin_size in ("day", "6h"):  # pandas floors the wall clock, then places it in the zone again
        return local.dt.floor("D" if bin_size == "day" else "6h", ambiguous=False, nonexistent="shift_forward")
    # floor the wall clock, then step back by the same amount: exact for any offset, DST-safe
    wall = local.dt.tz_localize(None)
    return local - (wall - wall.dt.floor("h"))


def data_end(
    last_post: datetime | None, collected_until: datetime | None, window_end: datetime | None, *, posts_after: bool = False
) -> datetime | None:
    """Until when the data run: the last collect run's start for a live collection (if after the last post),
    else the last post (an archive says nothing about the time after it); never past the window's end.

    posts_after: posts after the window are stored, so the data run on past it — they end at the window's end,
    whatever the last post inside it (a bin the window cuts is short because of the window).
    """
    if posts_after and window_end is not None:
        return window_end
    if last_post is None:
        return None
    end = max(last_post, collected_until) if collected_until is not None else last_post
    return end if window_end is None else min(end, window_end)


PARTIAL_SLACK = 0.01  # data that stop within the last 1 % of a bin (an archive's last post at 23:58) fill it


def partial_bin(bins: pd.DataFrame, bin_size: str, end: datetime | None) -> pd.Timestamp | None:
    """The last bin's start when the data stop before it ends (by more than PARTIAL_SLACK of a bin), else None."""
    if bins.empty or end is None:
        return None
    start = pd.Timestamp(bins.index[-1])
    stop = start + (pd.DateOffset(days=1) if bin_size == "day" else BIN_WIDTH[bin_size])  # a DST day: 23 or 25 h
    return start if pd.Timestamp(end) < stop - BIN_WIDTH[bin_size] * PARTIAL_SLACK else None


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


def days_from(bins: pd.DataFrame, moment: datetime) -> pd.DataFrame:
    """The per-bin series indexed by days (float) from a milestone, so events can be overlaid."""
    shifted = bins.copy()
    shifted.index = pd.Index(
        (pd.DatetimeIndex(bins.index) - pd.Timestamp(moment)).total_seconds() / 86400.0, name="days"
    )
    return shifted


# ---- shifts against the baseline -----------------------------------------------------------------


def welch(after: np.ndarray, baseline: np.ndarray) -> tuple[float, float, float, float | None]:
    """mean(after) - mean(baseline) with its 95 % Welch interval and two-sided p-value.

    The interval is NaN and the p-value None when a side has fewer than two values; with no spread on
    either side the interval collapses to the difference and the p-value is undefined (None).
    """
    return welch_moments(_moments(after), _moments(baseline))


def _moments(values: np.ndarray) -> tuple[int, float, float]:
    """(n, mean, variance with ddof 1), NaN where undefined."""
    n = len(values)
    return n, float(np.mean(values)) if n else math.nan, float(np.var(values, ddof=1)) if n > 1 else math.nan


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


def _peak(
    bins: pd.DataFrame, moment: datetime, following: datetime | None, width: timedelta, partial: pd.Timestamp | None
) -> tuple[datetime | None, float | None, float | None]:
    """The highest-volume bin after a milestone (before the next one), hours to it, and its half-life.

    A partial last bin can be the peak (its count is a floor) but never where the volume fell to half.
    """
    stamp = pd.Timestamp(moment)
    window = bins[bins.index > stamp - width]
    if following is not None:
        window = window[window.index < pd.Timestamp(following)]
    if not len(window) or window["volume"].max() <= 0:
        return None, None, None
    peak: Any = window["volume"].idxmax()
    whole = bins["volume"] if partial is None else bins["volume"].drop(partial)
    return _utc(peak), max((peak - stamp) / pd.Timedelta(hours=1), 0.0), _half_life(whole, peak, bins["volume"].loc[peak])


def _half_life(volume: pd.Series, peak: pd.Timestamp, peak_volume: float) -> float | None:
    """Hours from the peak bin to the first later bin with at most half its volume (None: not yet)."""
    later = volume[volume.index > peak]
    fallen = later[later <= peak_volume / 2]
    return None if fallen.empty else float((fallen.index[0] - peak) / pd.Timedelta(hours=1))


# the days on each side of a milestone whose trends are compared (fewer when another milestone is nearer)
TREND_SPAN = {"hour": timedelta(days=3), "6h": timedelta(days=3), "day": timedelta(days=7)}
MIN_TREND_BINS = 3  # per side: a line through two points has no residual to judge it by
MIN_TREND_POSTS = MIN_BASELINE_POSTS  # per side, as for the baseline: fewer and a trend says nothing
BENT, NO_CLEAR_CHANGE = "bent", "no clear change"
FEW_POSTS, FEW_BINS = "cannot tell (too few posts)", "cannot tell (too few bins)"  # the verdicts without an interval


@dataclass(frozen=True)
class TrendSide:
    """The bins fitted on one side of a milestone: days from it (bin middles), values, weights, posts."""

    days: np.ndarray
    values: np.ndarray
    weights: np.ndarray
    posts: int
    start: datetime | None
    end: datetime | None


def milestone_bends(
    bins: pd.DataFrame, moments: list[datetime], position: int, bin_size: str, partial: pd.Timestamp | None
) -> tuple[CurveBend | None, CurveBend | None]:
    """curve_bends at moments[position] over TREND_SPAN each side, cut at the neighbouring milestones
    (so one milestone's jump is not read as the next one's trend); (None, None) for the first milestone."""
    if position == 0:
        return None, None
    span, moment = TREND_SPAN[bin_size], moments[position]
    start = max(moment - span, moments[position - 1])
    end = moment + span if position + 1 == len(moments) else min(moment + span, moments[position + 1])
    return curve_bends(bins, (start, moment, end), bin_size, partial)


def curve_bends(
    bins: pd.DataFrame, span: tuple[datetime, datetime, datetime], bin_size: str, partial: pd.Timestamp | None
) -> tuple[CurveBend, CurveBend]:
    """The negative share's and the volume's CurveBend at span's middle moment, span = (from, moment, to).

    Only bins wholly inside each side count; a partial last bin is left out of the volume (its count is short).
    """
    start, moment, end = (pd.Timestamp(moment) for moment in span)
    width = BIN_WIDTH[bin_size]
    starts = pd.DatetimeIndex(bins.index)
    sides = [bins[(starts >= start) & (starts + width <= moment)], bins[(starts >= moment) & (starts + width <= end)]]
    negative = [_trend_side(side[side["scored"] > 0], moment, "negative_share", width) for side in sides]
    whole = [side if partial is None else side.drop(partial, errors="ignore") for side in sides]
    volume = [_trend_side(side, moment, "volume", width) for side in whole]
    return _bend("negative_share", *negative), _bend("volume", *volume)


def _trend_side(side: pd.DataFrame, moment: pd.Timestamp, metric: str, width: timedelta) -> TrendSide:
    """A side's bins as days from the moment (bin middles) and values: posts per hour (weight 1) or the
    negative share (weight: the bin's scored posts)."""
    index = pd.DatetimeIndex(side.index)
    days = ((index + width / 2 - moment) / pd.Timedelta(days=1)).to_numpy(dtype=float)
    if metric == "volume":
        values, weights = side["volume"].to_numpy(dtype=float) / (width / HOUR), np.ones(len(side))
    else:
        values, weights = side[metric].to_numpy(dtype=float), side["scored"].to_numpy(dtype=float)
    posts = int(side["volume" if metric == "volume" else "scored"].sum())
    first, last = (_utc(index[0]), _utc(index[-1] + width)) if len(index) else (None, None)
    return TrendSide(days, values, weights, posts, first, last)


def _line(side: TrendSide) -> tuple[float, float, float] | None:
    """Weighted least squares: (slope, residual sum of squares, weighted spread of the days), or None."""
    total = float(side.weights.sum())
    if len(side.days) < 2 or total <= 0:
        return None
    centre = float(np.sum(side.weights * side.days) / total)
    level = float(np.sum(side.weights * side.values) / total)
    spread = float(np.sum(side.weights * (side.days - centre) ** 2))
    if spread <= 0:
        return None
    slope = float(np.sum(side.weights * (side.days - centre) * (side.values - level)) / spread)
    residuals = side.values - level - slope * (side.days - centre)
    return slope, float(np.sum(side.weights * residuals**2)), spread


def _bend(metric: str, before: TrendSide, after: TrendSide) -> CurveBend:
    lines = _line(before), _line(after)
    slopes = [None if line is None else line[0] for line in lines]
    change = None if None in slopes else float(slopes[1] - slopes[0])  # type: ignore[operator]
    lacking = _too_little(before, after, *lines)
    interval = None if lacking else _slope_change_interval(len(before.days) + len(after.days), *lines)  # type: ignore[arg-type]
    verdict = lacking or (NO_CLEAR_CHANGE if interval and interval[0] <= 0 <= interval[1] else BENT)
    return CurveBend(
        metric=metric,
        before_from=before.start,
        after_to=after.end,
        bins_before=len(before.days),
        bins_after=len(after.days),
        posts_before=before.posts,
        posts_after=after.posts,
        slope_before=slopes[0],
        slope_after=slopes[1],
        change=change,
        ci_low=None if interval is None else interval[0],
        ci_high=None if interval is None else interval[1],
        verdict=verdict,
    )


def _too_little(before: TrendSide, after: TrendSide, *lines: tuple[float, float, float] | None) -> str | None:
    """Why the sides cannot be compared (FEW_POSTS or FEW_BINS), or None when they can."""
    if any(side.posts < MIN_TREND_POSTS for side in (before, after)):
        return FEW_POSTS
    if any(len(side.days) < MIN_TREND_BINS for side in (before, after)) or None in lines:
        return FEW_BINS
    return None


def _slope_change_interval(bins: int, *lines: tuple[float, float, float]) -> tuple[float, float]:
    """The 95 % interval of the change of slope, the residual variance pooled over both sides (bins − 4 degrees
    of freedom). Student's t from scipy.special, as welch_moments: what scipy.stats.t.ppf calls, bit for bit,
    without the second it takes to import scipy.stats."""
    from scipy.special import stdtrit

    (slope_before, rss_before, spread_before), (slope_after, rss_after, spread_after) = lines
    freedom = bins - 4
    error = math.sqrt((rss_before + rss_after) / freedom * (1 / spread_before + 1 / spread_after))
    margin = float(stdtrit(freedom, 0.975)) * error
    change = slope_after - slope_before
    return change - margin, change + margin


# ---- drivers: Monroe, Colaresi & Quinn (2008), weighted log-odds with an informative Dirichlet prior ----


def tokens(text: str) -> list[str]:
    """Lower-cased words and #hashtags, without URLs, @mentions and stop words."""
    cleaned = _URL_OR_MENTION.sub(" ", text.lower())
    return [token for token in _TOKEN.findall(cleaned) if token.strip("#") not in _STOPWORDS]


def log_odds_z(
    focus: Counter[str], reference: Counter[str], prior: Counter[str], dropped: Mapping[str, int] | None = None
) -> dict[str, float]:
    """z-scores of the log-odds ratio of each term, focus against reference (Monroe et al. 2008, eq. 22).

    `dropped` holds the counts of terms no longer in the counters (see TermCounts), so the totals stay whole.
    """
    extra = dropped or {}
    n_focus = sum(focus.values()) + extra.get("focus", 0)
    n_reference = sum(reference.values()) + extra.get("reference", 0)
    alpha_total = sum(prior.values()) + extra.get("prior", 0)
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


def rank_drivers(
    focus: Counter[str],
    reference: Counter[str],
    prior: Counter[str],
    top: int,
    dropped: Mapping[str, int] | None = None,
) -> list[Driver]:
    """The top terms by log-odds z among those used at least twice in the focus posts."""
    ranked = sorted(log_odds_z(focus, reference, prior, dropped).items(), key=lambda item: (-item[1], item[0]))
    chosen = [(term, z) for term, z in ranked if z > 0 and focus[term] >= 2][:top]
    return [Driver(term, float(z), focus[term], reference[term]) for term, z in chosen]


# ---- aspects, top posts, coverage, totals -------------------------------------------------------------


def _top_post(row: dict[Any, Any]) -> TopPost:
    return TopPost(
        created_at=_utc(row["created_at"]),
        source=str(row["source"]),
        author=_text_or_none(row["author"]),
        text=str(row["text"]),
        url=_text_or_none(row["url"]),
        compound=float(row["compound"]),
        engagement=int(row["engagement"]),
    )


def _text_or_none(value: Any) -> str | None:
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else str(value)


def _count_languages(cover: Coverage, frame: pd.DataFrame) -> None:
    """How the language of each judged post was known: the source's tag, our confident guess, or "und"."""
    tags = frame["lang_tag"]
    tagged = tags.isin([tag for tag in tags.dropna().unique() if primary_language(str(tag)) is not None])
    judged = frame["status"].notna() & frame["lang"].notna()
    undetermined = judged & ~tagged & (frame["lang"] == UNDETERMINED)
    cover.language_tagged += int((judged & tagged).sum())
    cover.language_undetermined += int(undetermined.sum())
    cover.language_guessed += int((judged & ~tagged).sum()) - int(undetermined.sum())


def _counted_between(counts: pd.DataFrame | None, first: datetime | None, last: datetime | None) -> int | None:
    """Posts the counts endpoint counted in the hours from `first`'s to `last`'s (the span of the posts read).

    Counts stored for hours outside that span (the rest of X's 7 days, a longer window) are left out,
    so posts read and posts counted compare like with like; None without posts or without a counted hour there.
    """
    if counts is None or counts.empty or first is None or last is None:
        return None
    starts = pd.to_datetime(counts["bucket_start"], utc=True)
    inside = (starts >= pd.Timestamp(first).floor("h")) & (starts <= pd.Timestamp(last).floor("h"))
    return int(counts.loc[inside.to_numpy(), "count"].sum()) if inside.any() else None


# ---- the JSON summary ---------------------------------------------------------------------------------


SERIES_COLUMNS = [
    "volume", "originals", "reposts", "scored", "mean_compound", "ci_low", "ci_high", "negative_share", "churn_share",
]  # fmt: skip

SERIES_FIELDS = ["bin", *SERIES_COLUMNS, "partial"]  # a series row's keys, in order


def series_rows(analysis: Analysis) -> list[dict[str, Any]]:
    """The per-bin series behind the charts (bin start, then SERIES_COLUMNS; None where a bin has no scored post;
    partial: true for a last bin the data stop inside, whose counts are short)."""
    bins = analysis.bins[SERIES_COLUMNS]
    partial = analysis.partial_bin()
    return [
        {
            "bin": start.to_pydatetime(),
            **{name: _series_value(name, value) for name, value in zip(SERIES_COLUMNS, row, strict=True)},
            "partial": start == partial,
        }
        for start, row in zip(bins.index, bins.itertuples(index=False, name=None), strict=True)
    ]


def _series_value(name: str, value: Any) -> int | float | None:
    return int(value) if name in _SERIES_COUNTS else _finite_or_none(value)


_SERIES_COUNTS = frozenset({"volume", "originals", "reposts", "scored"})


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
        "window": {"start": analysis.window_start, "end": analysis.window_end},
        "data_end": analysis.data_end,
        "baseline": {"start": analysis.baseline_start, "end": analysis.baseline_end, "posts": analysis.baseline_posts},
        "baseline_fallback": analysis.baseline_fallback,
        "coverage": asdict(analysis.coverage) | {"outside_window": analysis.coverage.outside_window},
        "totals": analysis.totals,
        "bins": len(analysis.bins),
        "latest_bin": _latest_bin(analysis),
        "series": series_rows(analysis),
        "shifts": [asdict(shift) for shift in analysis.shifts],
        "spikes": spikes,
        "shapes": [asdict(shape) for shape in analysis.shapes],
        "drivers": [asdict(driver) for driver in analysis.drivers],
        "aspects": [asdict(aspect) for aspect in analysis.aspects],
        "top_posts": [asdict(post) for post in analysis.top_posts],
        "who_what": {kind: [asdict(item) for item in items] for kind, items in analysis.who_what.items()},
        "validation": analysis.validation,
        "churn_share_adjusted": churn_share_adjusted(analysis),
    }
    return jsonable(document)


def churn_share_adjusted(analysis: Analysis) -> dict[str, float | None] | None:
    """The churn share since the announcement corrected by the hand-checked precision and recall, if checked.

    value: flagged share × precision ÷ recall; low and high take precision and recall at their interval's ends.
    """
    from monitor.agreement import adjusted_share

    reported = analysis.totals.get("since_announced", {}).get("churn_share")
    yes = checked_class(analysis.validation, "churn", "yes")
    if reported is None or yes is None:
        return None
    precision, recall = yes["precision"], yes["recall"]
    value = adjusted_share(reported, precision["value"], recall["value"])
    if value is None:
        return None
    low = adjusted_share(reported, precision["low"], recall["high"])
    return {"value": value, "low": low, "high": adjusted_share(reported, precision["high"], recall["low"])}


def checked_class(validation: dict[str, Any] | None, kind: str, name: str) -> dict[str, Any] | None:
    """One class's precision and recall from a stored hand check, or None."""
    checked = (validation or {}).get(kind) or {}
    return next((item for item in checked.get("per_class", []) if item["name"] == name), None)


def _latest_bin(analysis: Analysis) -> dict[str, Any] | None:
    bins = analysis.bins
    if bins.empty:
        return None
    row = {str(key): value for key, value in bins.iloc[-1].items()}
    return {"start": bins.index[-1], **row, "partial": analysis.partial_bin() is not None}


def jsonable(value: Any) -> Any:
    """datetimes → ISO 8601 UTC ('Z'), NaN/inf → None, numpy scalars → Python ones, recursively."""
    if isinstance(value, dict):
        return {str(key): jsonable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(item) for item in value]
    if isinstance(value, datetime):
        moment = value if value.tzinfo else value.replace(tzinfo=UTC)
        return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


# ---- the same numbers from chunks: per-bin and per-window sums, bounded memory ------------------------

HOUR = pd.Timedelta(hours=1)
_SUM_COLUMNS = [
    "volume",
    "reposts",
    "scored",
    "total",
    "squares",
    "negative",
    "positive",
    "churn",
    "weight",
    "weighted",
]
_SOURCE_SUMS = ["volume", "scored", "total"]


@dataclass
class WindowSums:
    """What the numbers need from the posts of one time window [start, end): counts, moments, hours, histogram."""

    start: datetime
    end: datetime | None  # None: open-ended
    posts: int = 0
    scored: int = 0
    mean: float = 0.0  # of the scored posts' compound (Chan et al.'s parallel moments: exact merges, stable)
    m2: float = 0.0  # sum of squared deviations from the mean
    negative: int = 0
    positive: int = 0
    churn: int = 0
    by_offset: Counter[int] = field(default_factory=Counter)  # posts per hour counted from start
    by_hour: Counter[int] = field(default_factory=Counter)  # posts per UTC hour (hours since the epoch)
    histogram: np.ndarray = field(default_factory=lambda: np.zeros(len(DISTRIBUTION_EDGES) - 1, dtype=np.int64))

    def add(self, chunk: ChunkArrays) -> None:
        """Count the posts of a prepared chunk that fall in the window."""
        start = pd.Timestamp(self.start).value
        inside = chunk.times >= start
        if self.end is not None:
            inside &= chunk.times < pd.Timestamp(self.end).value
        if not inside.any():
            return
        times = chunk.times[inside]
        self.posts += len(times)
        self.by_offset.update(_hour_numbers(times - start))
        self.by_hour.update(_hour_numbers(times))
        scored = inside & chunk.scored
        compound = chunk.compound[scored]
        if len(compound):
            chunk_mean = float(np.mean(compound))
            chunk_m2 = float(np.sum((compound - chunk_mean) ** 2))
            self._merge_moments(len(compound), chunk_mean, chunk_m2)
            self.negative += int((compound <= NEGATIVE_AT).sum())
            self.positive += int((compound >= POSITIVE_AT).sum())
            self.churn += int(chunk.churn[scored].sum())
            self.histogram += np.histogram(compound, bins=DISTRIBUTION_EDGES)[0]

    def merge(self, other: WindowSums) -> None:
        """Fold in the same window's sums from other chunks."""
        self.posts += other.posts
        self._merge_moments(other.scored, other.mean, other.m2)
        self.negative, self.positive = self.negative + other.negative, self.positive + other.positive
        self.churn += other.churn
        self.by_offset.update(other.by_offset)
        self.by_hour.update(other.by_hour)
        self.histogram = self.histogram + other.histogram

    def _merge_moments(self, n: int, mean: float, m2: float) -> None:
        if n == 0:
            return
        if self.scored == 0:
            self.scored, self.mean, self.m2 = n, mean, m2
            return
        total = self.scored + n
        delta = mean - self.mean
        self.m2 += m2 + delta * delta * self.scored * n / total
        self.mean += delta * n / total
        self.scored = total

    def moments(self, metric: str) -> tuple[int, float, float]:
        """(n, mean, variance with ddof 1) of compound or of the negative indicator (0/1) over scored posts."""
        n = self.scored
        if metric == "negative_share":
            mean = self.negative / n if n else math.nan
            return n, mean, (self.negative * (1 - mean) / (n - 1)) if n > 1 else math.nan
        return n, (self.mean if n else math.nan), (self.m2 / (n - 1) if n > 1 else math.nan)

    def hourly(self, first: pd.Timestamp | None, last: pd.Timestamp | None) -> np.ndarray:
        """What hourly_counts gives for this window: posts per hour, clipped to the hours the data covers."""
        if first is None or last is None:
            return np.zeros(0)
        first_hour = first.floor("h")
        start = pd.Timestamp(self.start)
        start_at = max(start, first_hour)
        end_at = (
            last + pd.Timedelta(microseconds=1)
            if self.end is None
            else min(pd.Timestamp(self.end), last + pd.Timedelta(microseconds=1))
        )
        hours = math.ceil((end_at - start_at) / HOUR) if end_at > start_at else 0
        counts = np.zeros(hours)
        offsets: Iterable[tuple[int, int]] = self.by_offset.items()
        if start_at != start:  # the data starts after the window: hours count from the first post's hour
            origin = (first_hour - pd.Timestamp(0, tz="UTC")) // HOUR
            offsets = ((hour - origin, posts) for hour, posts in self.by_hour.items())
        for offset, posts in offsets:
            if 0 <= offset < hours:
                counts[offset] += posts
        return counts

    def tone(self) -> dict[str, float | None]:
        """What _tone gives for the window's scored posts."""
        if not self.scored:
            return {
                "posts": 0,
                "mean_compound": None,
                "negative_share": None,
                "positive_share": None,
                "churn_share": None,
            }
        n = self.scored
        return {
            "posts": n,
            "mean_compound": self.mean,
            "negative_share": self.negative / n,
            "positive_share": self.positive / n,
            "churn_share": self.churn / n,
        }


def _hour_numbers(nanoseconds: np.ndarray) -> Counter[int]:
    """How many times (ns from some origin) fall in each whole hour after it."""
    hours, posts = np.unique(nanoseconds // 3_600_000_000_000, return_counts=True)
    return Counter({int(hour): int(n) for hour, n in zip(hours, posts, strict=True)})


@dataclass(frozen=True)
class ChunkArrays:
    """The columns the window sums read, as NumPy arrays (times: ns since the epoch, UTC)."""

    times: np.ndarray
    scored: np.ndarray
    compound: np.ndarray
    churn: np.ndarray

    def between(self, start: datetime, end: datetime) -> np.ndarray:
        """Which posts were created in [start, end)."""
        return (self.times >= pd.Timestamp(start).value) & (self.times < pd.Timestamp(end).value)

    @classmethod
    def of(cls, frame: pd.DataFrame) -> ChunkArrays:
        times = frame["created_at"].dt.tz_convert("UTC").dt.tz_localize(None).to_numpy(dtype="datetime64[ns]")
        return cls(
            times=times.astype(np.int64),
            scored=frame["scored"].to_numpy(dtype=bool),
            compound=frame["compound"].to_numpy(dtype=float),
            churn=frame["churn"].to_numpy(dtype=bool),
        )


def welch_moments(
    after: tuple[int, float, float], baseline: tuple[int, float, float]
) -> tuple[float, float, float, float | None]:
    """welch() from each side's (n, mean, variance with ddof 1) instead of its values.

    Student's t from scipy.special (what scipy.stats.t calls, bit for bit): importing scipy.stats costs a report
    about a second.
    """
    from scipy.special import stdtr, stdtrit

    (n_after, mean_after, var_after), (n_baseline, mean_baseline, var_baseline) = after, baseline
    if n_after == 0 or n_baseline == 0:
        return math.nan, math.nan, math.nan, None
    diff = float(mean_after - mean_baseline)
    if n_after < 2 or n_baseline < 2:
        return diff, math.nan, math.nan, None
    se_after, se_baseline = var_after / n_after, var_baseline / n_baseline
    standard_error = math.sqrt(se_after + se_baseline)
    if standard_error == 0:
        return diff, diff, diff, None
    dof = standard_error**4 / (se_after**2 / (n_after - 1) + se_baseline**2 / (n_baseline - 1))
    margin = float(stdtrit(dof, 0.975)) * standard_error
    p_value = float(2 * stdtr(dof, -abs(diff) / standard_error))
    return diff, diff - margin, diff + margin, p_value


_TOP_COLUMNS = ["created_at", "source", "post_id", "author", "text", "url", "compound", "engagement"]
_TOP_ORDER = {"engagement": False, "compound": True, "created_at": True, "source": True, "post_id": True}
_TOP_KEEP = Keep(TOP_POSTS, _TOP_ORDER)


TERM_LIMIT = 300_000  # distinct terms kept for the drivers; past it the rarest are dropped


@dataclass
class TermCounts:
    """The drivers' term counts (focus, reference, prior), bounded in memory.

    The vocabulary of millions of posts keeps growing (typos, hashtags, names). Past `limit` distinct
    terms, the terms seen least often overall are dropped until half the limit is left; their counts
    stay in `dropped`, so the totals in the log-odds are whole. A dropped term was rarer than every
    kept one, far from the top drivers; below the limit nothing is dropped and the numbers are exact.
    """

    limit: int = TERM_LIMIT
    focus: Counter[str] = field(default_factory=Counter)  # terms of negative scored posts since the announcement
    reference: Counter[str] = field(default_factory=Counter)  # terms of scored baseline posts
    prior: Counter[str] = field(default_factory=Counter)  # terms of all scored posts
    dropped: Counter[str] = field(default_factory=Counter)  # counter name → counts of the dropped terms

    def add(self, focus: Counter[str], reference: Counter[str], prior: Counter[str]) -> None:
        self.focus.update(focus)
        self.reference.update(reference)
        self.prior.update(prior)
        self._bound()

    def merge(self, other: TermCounts) -> None:
        self.dropped.update(other.dropped)
        self.add(other.focus, other.reference, other.prior)

    def _bound(self) -> None:
        floor = 0
        while len(self.prior) > (self.limit // 2 if floor else self.limit):
            floor += 1
            rare = [term for term, count in self.prior.items() if count <= floor]
            for name in ("focus", "reference", "prior"):
                counter: Counter[str] = getattr(self, name)
                self.dropped[name] += sum(counter.pop(term, 0) for term in rare)

    def drivers(self, top: int) -> list[Driver]:
        return rank_drivers(self.focus, self.reference, self.prior, top, self.dropped)


class AnalysisAccumulator:
    """Every number of an Analysis, fed chunk by chunk in bounded memory: per-bin and per-window sums, term
    counts, a few top posts. The one place an Analysis is built.

    add() takes frames of posts (one row per post with its score columns: POST_COLUMNS; any order, any
    size); merge() folds in an accumulator fed with other chunks (e.g. Dask partitions); finish() gives the
    Analysis that the in-memory reference (tests/analysis_reference.py) gives on all
    the posts at once — counts and terms identical, means and variances up to floating-point summation order.
    """

    def __init__(
        self,
        *,
        event: EventConfig,
        milestones: dict[str, datetime],
        tz: str,
        alerts: AlertsConfig,
        term_limit: int = TERM_LIMIT,
    ) -> None:
        self.event, self.tz, self.alerts = event, tz, alerts
        self.milestones = dict(sorted(milestones.items(), key=lambda item: item[1]))
        self.announced = self.milestones.get("announced", next(iter(self.milestones.values())))
        self.baseline_end = min(self.milestones.values())
        self.baseline_start = self.baseline_end - timedelta(days=event.baseline_days)
        self.window = event_window(event, self.milestones, ZoneInfo(tz))
        self.bin = resolve_bin(event.bin, self.window)
        self.windows = {span: WindowSums(*span) for span in self._spans()}
        self.bin_sums: pd.DataFrame | None = None
        self.source_sums: pd.DataFrame | None = None
        self.terms = TermCounts(limit=term_limit)
        self.aspect_sums = {name: (0, 0.0) for name in event.aspects}  # tagged posts since announced, compound sum
        self.top = KeptList(_TOP_KEEP, same="text")
        self.negative_examples = KeptList(POOL)  # EXAMPLE_POOL most engaged negative posts since announced
        self.aspect_examples = {name: KeptList(ASPECT) for name in event.aspects}
        self.bin_engaged = KeptList(BIN_ENGAGED)  # per bin, its most engaged and most negative scored posts
        self.bin_negative = KeptList(BIN_NEGATIVE)
        self.who = WhoWhatCounts()
        self.cover = Coverage(simulated=event.simulated)
        self.first: pd.Timestamp | None = None
        self.last: pd.Timestamp | None = None

    def _spans(self) -> list[tuple[datetime, datetime | None]]:
        spans: list[tuple[datetime, datetime | None]] = [
            (self.baseline_start, self.baseline_end),
            (self.announced, None),
        ]
        for moment in self.milestones.values():
            spans.append((moment - timedelta(hours=24), moment))
            spans += [(moment, moment + length) for length in SHIFT_WINDOWS.values()]
        return list(dict.fromkeys(spans))

    # ---- feeding ----

    def add(self, posts: pd.DataFrame) -> AnalysisAccumulator:
        """Fold one chunk of posts in."""
        if posts.empty:
            return self
        frame, before, after = split_window(prepare_posts(posts, self.tz, self.bin), *self.window)
        self.cover.before_window += before
        self.cover.after_window += after
        if frame.empty:
            return self
        self._add_bins(frame)
        arrays = ChunkArrays.of(frame)
        for window in self.windows.values():
            window.add(arrays)
        # which posts count where, as masks over the chunk: filtering the frame copied every column each time
        scored, since = arrays.scored, arrays.times >= pd.Timestamp(self.announced).value
        baseline = arrays.between(self.baseline_start, self.baseline_end)
        negative = since & scored & (arrays.compound <= NEGATIVE_AT)
        texts = TextCodes.of(frame["text"])
        self.terms.add(focus=texts.terms(negative), reference=texts.terms(scored & baseline), prior=texts.terms(scored))
        self._add_aspects(frame, since & scored)
        self.top.add(top_rows(frame, _TOP_KEEP, "text", negative)[_TOP_COLUMNS])
        _feed(self.negative_examples, frame, negative)
        _feed(self.bin_engaged, frame, scored)
        _feed(self.bin_negative, frame, scored)
        self.who.add(frame, texts, since, baseline)
        self._add_coverage(frame)
        return self

    def _add_bins(self, frame: pd.DataFrame) -> None:
        scored = frame["scored"]
        compound = frame["compound"].where(scored, 0.0)
        weight = np.log1p(frame["followers"].clip(lower=0)).where(scored, 0.0)
        parts = pd.DataFrame(
            {
                "bin": frame["bin"],
                "source": frame["source"].astype(str),
                "volume": 1,
                "reposts": frame["is_repost"].astype(int),
                "scored": scored.astype(int),
                "total": compound,
                "squares": compound * compound,
                "negative": (scored & (frame["compound"] <= NEGATIVE_AT)).astype(int),
                "positive": (scored & (frame["compound"] >= POSITIVE_AT)).astype(int),
                "churn": (scored & frame["churn"]).astype(int),
                "weight": weight,
                "weighted": weight * compound,
            }
        )
        self.bin_sums = _add_sums(self.bin_sums, parts.groupby("bin")[_SUM_COLUMNS].sum())
        self.source_sums = _add_sums(self.source_sums, parts.groupby(["bin", "source"])[_SOURCE_SUMS].sum())

    def _add_aspects(self, frame: pd.DataFrame, since: np.ndarray) -> None:
        """Posts, compound sums and examples of each aspect among the scored posts since the announcement
        (`since`); a chunk holds a handful of distinct aspect lists, each looked at once."""
        codes, lists = pd.factorize(frame["aspects"])
        for name, (posts, total) in self.aspect_sums.items():
            tagged = since & np.isin(codes, [code for code, found in enumerate(lists) if f",{name}," in f",{found},"])
            self.aspect_sums[name] = (posts + int(tagged.sum()), total + float(frame["compound"][tagged].sum()))
            _feed(self.aspect_examples[name], frame, tagged)

    def _add_coverage(self, frame: pd.DataFrame) -> None:
        status = frame["status"].fillna("unscored")
        language = status == "skipped:language"
        lang = frame["lang"].where(frame["lang"].notna(), "unknown")
        cover = self.cover
        cover.posts += len(frame)
        cover.scored += int(frame["scored"].sum())
        cover.reposts += int(frame["is_repost"].sum())
        cover.quotes += int(frame["is_quote"].sum())
        cover.not_scored_language += int(language.sum())
        cover.unscored += int(frame["status"].isna().sum())
        _add_counts(cover.per_source, frame["source"].value_counts())
        _add_counts(cover.languages_excluded, lang[language].value_counts())
        _count_languages(cover, frame)
        first, last = frame["created_at"].min(), frame["created_at"].max()
        self.first = first if self.first is None else min(self.first, first)
        self.last = last if self.last is None else max(self.last, last)

    def state(self) -> dict[str, Any]:
        """The sums fed so far as plain data (no settings): what a stored part of the analysis keeps."""
        return {name: getattr(self, name) for name in _STATE}

    def restore(self, state: dict[str, Any]) -> AnalysisAccumulator:
        """Take the sums of state() from an accumulator of the same event and settings."""
        for name in _STATE:
            setattr(self, name, state[name])
        return self

    def merge(self, other: AnalysisAccumulator) -> AnalysisAccumulator:
        """Fold in an accumulator of the same event fed with other posts."""
        self.bin_sums = _add_sums(self.bin_sums, other.bin_sums)
        self.source_sums = _add_sums(self.source_sums, other.source_sums)
        for span, window in other.windows.items():
            self.windows[span].merge(window)
        self.terms.merge(other.terms)
        for name, (posts, total) in other.aspect_sums.items():
            mine = self.aspect_sums[name]
            self.aspect_sums[name] = (mine[0] + posts, mine[1] + total)
        self.top.merge(other.top)
        self.negative_examples.merge(other.negative_examples)
        for name, found in other.aspect_examples.items():
            self.aspect_examples[name].merge(found)
        self.bin_engaged.merge(other.bin_engaged)
        self.bin_negative.merge(other.bin_negative)
        self.who.merge(other.who)
        self._merge_coverage(other)
        return self

    def _merge_coverage(self, other: AnalysisAccumulator) -> None:
        for name in _COVERAGE_COUNTS:
            setattr(self.cover, name, getattr(self.cover, name) + getattr(other.cover, name))
        _add_counts(self.cover.per_source, other.cover.per_source)
        _add_counts(self.cover.languages_excluded, other.cover.languages_excluded)
        for moment in (other.first, other.last):
            if moment is not None:
                self.first = moment if self.first is None else min(self.first, moment)
                self.last = moment if self.last is None else max(self.last, moment)

    # ---- the numbers ----

    def finish(
        self,
        counts: pd.DataFrame | None = None,
        *,
        generated_at: datetime,
        feeds_read: dict[str, int] | None = None,
        collected_until: datetime | None = None,
    ) -> Analysis:
        """The Analysis of every post added (counts: hourly counts from a counts endpoint, columns source,
        bucket_start, count; feeds_read: the store's, for coverage; collected_until: the start of the event's
        last collect run, if it was collected live)."""
        bins = self.bins(counts)
        reference, baseline_posts = spike_reference(bins, self.baseline_start, self.baseline_end)
        last = None if self.last is None else _utc(self.last)
        end = data_end(last, collected_until, self.window[1], posts_after=self.cover.after_window > 0)
        partial = partial_bin(bins, self.bin, end)
        align_on = self.event.align_on if self.event.align_on in self.milestones else "announced"
        return Analysis(
            event=self.event.name,
            title=self.event.title_or_name(),
            platform=self.event.platform,
            timezone=self.tz,
            bin=self.bin,
            milestones=self.milestones,
            align_on=align_on,
            baseline_start=self.baseline_start,
            baseline_end=self.baseline_end,
            bins=bins,
            per_source=self.per_source(),
            days_from=days_from(bins, self.milestones[align_on]),
            distribution=self.distribution(),
            shifts=self.shifts(),
            spikes=find_spikes(bins, reference, self.alerts),
            shapes=self.shapes(bins, partial),
            drivers=self.terms.drivers(TOP_DRIVERS),
            aspects=self.aspects(),
            top_posts=[_top_post(row) for row in _records(self.top.rows())],
            coverage=self.coverage(counts, feeds_read or {}),
            generated_at=generated_at,
            totals={"baseline": self._baseline.tone(), "since_announced": self._since.tone()},
            baseline_fallback=baseline_posts < MIN_BASELINE_POSTS,
            baseline_posts=baseline_posts,
            window_start=self.window[0],
            window_end=self.window[1],
            who_what=self.who.standings(),
            data_end=end,
            drill=DrillSums(
                self.terms.reference, self.terms.prior, self.negative_examples.rows(),
                {name: kept.rows() for name, kept in self.aspect_examples.items()}, self.bin_engaged.rows(),
                self.bin_negative.rows(),
            ),  # fmt: skip
        )

    @property
    def _baseline(self) -> WindowSums:
        return self.windows[(self.baseline_start, self.baseline_end)]

    @property
    def _since(self) -> WindowSums:
        return self.windows[(self.announced, None)]

    def bins(self, counts: pd.DataFrame | None = None) -> pd.DataFrame:
        """BIN_COLUMNS from the per-bin sums, every bin from the first post's to the last's."""
        if self.bin_sums is None or self.bin_sums.empty:
            index = pd.DatetimeIndex([], tz=self.tz, name="bin")
            sums = pd.DataFrame(0, index=index, columns=_SUM_COLUMNS)
        else:
            index = bin_index(self.bin_sums.index.min(), self.bin_sums.index.max(), self.tz, self.bin)
            sums = self.bin_sums.reindex(index, fill_value=0)
        return bins_from_sums(sums, _counted_per_bin(counts, index, self.tz, self.bin))

    def per_source(self) -> pd.DataFrame:
        if self.source_sums is None or self.source_sums.empty:
            return pd.DataFrame(columns=["bin", "source", "volume", "scored", "mean_compound"])
        sums = self.source_sums.sort_index()
        table = pd.DataFrame(
            {
                "volume": sums["volume"].astype(int),
                "scored": sums["scored"].astype(int),
                "mean_compound": (sums["total"] / sums["scored"]).where(sums["scored"] > 0),
            }
        )
        return table.reset_index()

    def distribution(self) -> pd.DataFrame:
        table = pd.DataFrame({"left": DISTRIBUTION_EDGES[:-1], "right": DISTRIBUTION_EDGES[1:]})
        for name, window in (("baseline", self._baseline), ("after", self._since)):
            histogram = window.histogram
            table[name] = histogram / histogram.sum() if histogram.sum() else 0.0
        return table

    def shifts(self) -> list[Shift]:
        found = []
        for metric in SHIFT_METRICS:
            for name, moment in self.milestones.items():
                for window, length in SHIFT_WINDOWS.items():
                    found.append(self._shift(metric, name, window, self.windows[(moment, moment + length)]))
        return found

    def _shift(self, metric: str, milestone: str, window: str, after: WindowSums) -> Shift:
        if metric == "volume":
            before_hours, after_hours = (
                self._baseline.hourly(self.first, self.last),
                after.hourly(self.first, self.last),
            )
            before, later = _moments(before_hours), _moments(after_hours)
            diff, low, high, p_value = welch(after_hours, before_hours)
        else:
            before, later = self._baseline.moments(metric), after.moments(metric)
            diff, low, high, p_value = welch_moments(later, before)
        return Shift(
            milestone=milestone,
            window=window,
            metric=metric,
            baseline=before[1],
            after=later[1],
            diff=diff,
            ci_low=low,
            ci_high=high,
            p_value=p_value,
            n_baseline=before[0],
            n_after=later[0],
        )

    def shapes(self, bins: pd.DataFrame, partial: pd.Timestamp | None) -> list[MilestoneShape]:
        moments = list(self.milestones.items())
        shapes = []
        for position, (name, moment) in enumerate(moments):
            following = moments[position + 1][1] if position + 1 < len(moments) else None
            peak_at, hours_to_peak, half_life = _peak(bins, moment, following, BIN_WIDTH[self.bin], partial)
            before = self.windows[(moment - timedelta(hours=24), moment)]
            after = self.windows[(moment, moment + timedelta(hours=24))]
            any_posts = self.cover.posts > 0
            negative_bend, volume_bend = milestone_bends(bins, list(self.milestones.values()), position, self.bin, partial)
            shapes.append(
                MilestoneShape(
                    milestone=name,
                    peak_at=peak_at,
                    hours_to_peak=hours_to_peak,
                    half_life_hours=half_life,
                    volume_before_24h=float(before.posts) if any_posts else None,
                    volume_after_24h=float(after.posts) if any_posts else None,
                    negative_share_before_24h=before.negative / before.scored if before.scored else None,
                    negative_share_after_24h=after.negative / after.scored if after.scored else None,
                    negative_share_bend=negative_bend,
                    volume_bend=volume_bend,
                )
            )
        return shapes

    def aspects(self) -> list[AspectStat]:
        scored = self._since.scored
        return [
            AspectStat(
                aspect=name,
                posts=posts,
                share=posts / scored if scored else 0.0,
                mean_compound=total / posts if posts else None,
            )
            for name, (posts, total) in self.aspect_sums.items()
        ]

    def coverage(self, counts: pd.DataFrame | None, feeds_read: dict[str, int]) -> Coverage:
        found = Coverage(**{**asdict(self.cover), "per_source": dict(sorted(self.cover.per_source.items()))})
        found.feeds_read = dict(sorted(feeds_read.items()))
        found.languages_excluded = dict(Counter(self.cover.languages_excluded).most_common())
        found.not_scored_other = found.posts - found.scored - found.not_scored_language - found.unscored
        if self.first is not None and self.last is not None:
            found.first_post, found.last_post = _utc(self.first), _utc(self.last)
        found.counted = _counted_between(counts, found.first_post, found.last_post)
        return found


_STATE = (
    "bin_sums", "source_sums", "windows", "terms", "aspect_sums", "top", "negative_examples", "aspect_examples",
    "bin_engaged", "bin_negative", "who", "cover", "first", "last",
)  # fmt: skip
_COVERAGE_COUNTS = (
    "posts", "scored", "reposts", "quotes", "not_scored_language", "unscored", "before_window", "after_window",
    "language_tagged", "language_guessed", "language_undetermined",
)  # fmt: skip


# ---- statistics of a span of bins (the digest's periods and baseline) -----------------------------------


@dataclass(frozen=True)
class WindowStats:
    """Volume and tone over a time window, summed or weighted over Analysis.bins."""

    posts: int
    scored: int
    hours: float
    mean_compound: float | None
    negative_share: float | None
    churn_share: float | None

    def posts_over(self, hours: float) -> float:
        """Posts scaled to a window of another length (e.g. the baseline week → one day)."""
        return self.posts * hours / self.hours if self.hours else 0.0


NO_BASELINE = WindowStats(posts=0, scored=0, hours=0.0, mean_compound=None, negative_share=None, churn_share=None)


def window_stats(bins: pd.DataFrame, start: datetime, end: datetime) -> WindowStats:
    """Sum volume and average the tone (weighted by scored posts) of the bins starting in [start, end)."""
    window = bins[(bins.index >= start) & (bins.index < end)]
    weights = window["scored"].fillna(0) if "scored" in window else pd.Series(dtype=float)
    return WindowStats(
        posts=int(window["volume"].fillna(0).sum()),
        scored=int(weights.sum()),
        hours=(end - start).total_seconds() / 3600,
        mean_compound=_weighted_mean(window, "mean_compound", weights),
        negative_share=_weighted_mean(window, "negative_share", weights),
        churn_share=_weighted_mean(window, "churn_share", weights),
    )


def _weighted_mean(window: pd.DataFrame, column: str, weights: pd.Series) -> float | None:
    if column not in window:
        return None
    values = window[column]
    usable = values.notna() & (weights > 0)
    total = float(weights[usable].sum())
    return float((values[usable] * weights[usable]).sum() / total) if total else None



def bins_from_sums(sums: pd.DataFrame, counted: pd.Series) -> pd.DataFrame:
    """BIN_COLUMNS from per-bin sums (_SUM_COLUMNS): means, 95 % bands and shares."""
    n = sums["scored"]
    bins = pd.DataFrame(index=sums.index)
    for name in ("volume", "reposts", "scored"):
        bins[name] = sums[name].astype(int)
    bins["originals"] = bins["volume"] - bins["reposts"]
    bins["mean_compound"] = (sums["total"] / n).where(n > 0)
    variance = ((sums["squares"] - sums["total"] ** 2 / n) / (n - 1)).clip(lower=0).where(n > 1)
    half_width = 1.96 * np.sqrt(variance) / np.sqrt(n)
    bins["ci_low"] = bins["mean_compound"] - half_width
    bins["ci_high"] = bins["mean_compound"] + half_width
    for share, column in (("negative_share", "negative"), ("positive_share", "positive"), ("churn_share", "churn")):
        bins[share] = (sums[column] / n).where(n > 0)
    bins["net_sentiment"] = bins["positive_share"] - bins["negative_share"]
    bins["reach_weighted_compound"] = (sums["weighted"] / sums["weight"]).where(sums["weight"] > 0)
    bins["counted"] = counted
    return bins[BIN_COLUMNS]


def _add_sums(mine: pd.DataFrame | None, other: pd.DataFrame | None) -> pd.DataFrame | None:
    """Per-bin sums of both; rows of the same bin added (the other's after mine), the others kept as they are.

    Stacking and grouping only where bins repeat: aligning two frames (DataFrame.add) cost more than the
    sums themselves when a report merges a few dozen days.
    """
    if other is None or other.empty:
        return mine
    if mine is None:
        return other
    stacked = pd.concat([mine, other])
    if stacked.index.is_unique:
        return stacked
    return stacked.groupby(level=list(range(stacked.index.nlevels)), sort=False).sum()


def _feed(kept: KeptList, posts: pd.DataFrame, rows: np.ndarray) -> None:
    """Feed the posts of the rows (a mask) into a kept list of example posts (monitor/examples.py)."""
    if rows.any():
        kept.add(examples_of(posts, kept.keep, tokens, rows))


def _records(rows: pd.DataFrame | None) -> list[dict[Any, Any]]:
    return [] if rows is None else rows.to_dict("records")


def _add_counts(counts: dict[str, int], more: Any) -> None:
    for key, value in more.items():
        counts[str(key)] = counts.get(str(key), 0) + int(value)


@dataclass
class TextCodes:
    """A chunk's texts coded once (reposts repeat texts): what the terms and the who-and-what read per distinct
    text, each tokenized or parsed once however many posts and masks share it."""

    codes: np.ndarray  # per post, its text's number
    texts: list[str]  # the distinct texts by number
    tokens: dict[int, list[str]] = field(default_factory=dict)
    entities: dict[int, dict[str, set[str]]] = field(default_factory=dict)

    @classmethod
    def of(cls, texts: pd.Series) -> TextCodes:
        codes, distinct = pd.factorize(texts)
        return cls(codes, [str(text) for text in distinct])

    def posts(self, rows: np.ndarray) -> Iterator[tuple[int, int]]:
        """(text number, posts with that text) among the rows (a mask), for the texts they hold."""
        found = np.bincount(self.codes[rows], minlength=len(self.texts))
        for code in np.flatnonzero(found):
            yield int(code), int(found[code])

    def terms(self, rows: np.ndarray) -> Counter[str]:
        """The terms (tokens) of the rows' texts, each text's counted once per post."""
        counts: Counter[str] = Counter()
        for code, posts in self.posts(rows):
            if code not in self.tokens:
                self.tokens[code] = tokens(self.texts[code])
            for term in self.tokens[code]:
                counts[term] += posts
        return counts

    def named(self, rows: np.ndarray) -> dict[str, Counter[str]]:
        """Per kind of post_entities (hashtags, mentions, domains), name → the rows' posts that have it."""
        counts: dict[str, Counter[str]] = {kind: Counter() for kind in ("hashtags", "mentions", "domains")}
        for code, posts in self.posts(rows):
            if code not in self.entities:
                self.entities[code] = post_entities(self.texts[code])
            for kind, names in self.entities[code].items():
                for name in names:
                    counts[kind][name] += posts
        return counts


# ---- who and what: hashtags, mentions, linked domains, accounts ----------------------------------------------

WHO_WHAT = ("hashtags", "mentions", "domains", "active_accounts", "engaged_accounts")
WHO_WHAT_TOP = 10
WHO_WHAT_LIMIT = 100_000  # distinct names kept per list; past it the least seen are dropped (as in TermCounts)
_HASHTAG = re.compile(r"(?<![\w&])#(\w*[^\W\d_]\w*)")
_MENTION = re.compile(r"(?<![\w@])@(\w{1,50})")
_DOMAIN = re.compile(r"https?://(?:www\.)?([a-z0-9.-]+\.[a-z]{2,})", re.IGNORECASE)
_REPOST_PREFIX = re.compile(r"^RT @\w{1,50}:")  # X's repost text names the original's author: not a mention


def post_entities(text: str) -> dict[str, set[str]]:
    """The hashtags, mentions and linked domains of one text, lower-cased, each once."""
    return {
        "hashtags": {"#" + tag.lower() for tag in _HASHTAG.findall(text)},
        "mentions": {"@" + name.lower() for name in _MENTION.findall(_REPOST_PREFIX.sub("", text, count=1))},
        "domains": {_readable_domain(domain.lower().rstrip(".")) for domain in _DOMAIN.findall(text)},
    }


LINK_SHORTENERS = frozenset({"t.co", "bit.ly", "buff.ly", "ow.ly", "tinyurl.com", "dlvr.it", "ift.tt", "goo.gl"})


def _readable_domain(domain: str) -> str:
    """A shortener hides where a link goes (X wraps every link in t.co): say so rather than rank it as a site."""
    return f"{domain} (shortened link: site unknown)" if domain in LINK_SHORTENERS else domain


def who_what_counts(frame: pd.DataFrame, texts: TextCodes, rows: np.ndarray) -> dict[str, Counter[str]]:
    """Per WHO_WHAT list, name → posts among the rows (a mask) (engaged accounts: likes + reposts + replies of
    their own, non-repost posts).

    A repost's engagement is the original's (X repeats the original's counts on it), so only originals count there.
    """
    counts = {**texts.named(rows), "active_accounts": Counter(), "engaged_accounts": Counter()}
    authors = frame["author"]
    known = rows & (authors.notna() & (authors != "")).to_numpy()
    codes, names = pd.factorize(authors[known])
    posts = np.bincount(codes, minlength=len(names))
    counts["active_accounts"].update({str(name): int(n) for name, n in zip(names, posts, strict=True)})
    own = ~frame["is_repost"].to_numpy()[known]
    engaged = np.bincount(codes[own], weights=frame["engagement"].to_numpy()[known][own], minlength=len(names))
    counts["engaged_accounts"].update({str(name): int(n) for name, n in zip(names, engaged, strict=True) if n > 0})
    return counts


def standings(after: Counter[str], baseline: Counter[str], posts: tuple[int, int], top: int) -> list[Standing]:
    """The `top` names by count since the announcement, with their baseline count and change per post."""
    posts_after, posts_baseline = posts
    ranked = sorted((item for item in after.items() if item[1] > 0), key=lambda item: (-item[1], item[0]))[:top]
    found = []
    for name, count in ranked:
        before = baseline.get(name, 0)
        rate_before = before / posts_baseline if posts_baseline else 0.0
        change = (count / posts_after) / rate_before if rate_before and posts_after else None
        found.append(Standing(name, int(count), int(before), change))
    return found


@dataclass
class WhoWhatCounts:
    """who_what_counts since the announcement and in the baseline, summed over chunks, bounded in memory.

    Past `limit` names in a list, those seen least often (both windows together) are dropped until half the limit
    is left: far from the top ten. Below the limit the counts are exact.
    """

    limit: int = WHO_WHAT_LIMIT
    after: dict[str, Counter[str]] = field(default_factory=lambda: {kind: Counter() for kind in WHO_WHAT})
    baseline: dict[str, Counter[str]] = field(default_factory=lambda: {kind: Counter() for kind in WHO_WHAT})
    posts_after: int = 0
    posts_baseline: int = 0

    def add(self, frame: pd.DataFrame, texts: TextCodes, since: np.ndarray, baseline: np.ndarray) -> None:
        """Count the posts of a chunk since the announcement and in the baseline (masks)."""
        self.posts_after += int(since.sum())
        self.posts_baseline += int(baseline.sum())
        self._update(who_what_counts(frame, texts, since), who_what_counts(frame, texts, baseline))

    def merge(self, other: WhoWhatCounts) -> None:
        self.posts_after += other.posts_after
        self.posts_baseline += other.posts_baseline
        self._update(other.after, other.baseline)

    def _update(self, after: dict[str, Counter[str]], baseline: dict[str, Counter[str]]) -> None:
        for kind in WHO_WHAT:
            self.after[kind].update(after[kind])
            self.baseline[kind].update(baseline[kind])
            self._bound(kind)

    def _bound(self, kind: str) -> None:
        after, baseline = self.after[kind], self.baseline[kind]
        floor = 0
        while len(after.keys() | baseline.keys()) > (self.limit // 2 if floor else self.limit):
            floor += 1
            for name in [name for name in after.keys() | baseline.keys() if after[name] + baseline[name] <= floor]:
                after.pop(name, None)
                baseline.pop(name, None)

    def standings(self, top: int = WHO_WHAT_TOP) -> dict[str, list[Standing]]:
        posts = (self.posts_after, self.posts_baseline)
        return {kind: standings(self.after[kind], self.baseline[kind], posts, top) for kind in WHO_WHAT}
