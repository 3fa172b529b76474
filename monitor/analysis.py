"""Scored posts → the numbers every report, digest and alert uses. Pure pandas: no I/O, no plotting.

The result types below are the contract between analysis, plots, report and digest.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import pandas as pd

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
    per_source: pd.DataFrame  # columns: bin, source, volume, mean_compound
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

    def summary(self) -> dict[str, Any]:
        """The numbers as JSON-serialisable data (times ISO 8601 UTC)."""
        raise NotImplementedError
