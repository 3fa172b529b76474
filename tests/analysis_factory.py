"""Hand-built Analysis objects on the Instagram 2012 timeline, for testing plots and reports without scoring."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd

from monitor.analysis import (
    BIN_COLUMNS,
    Analysis,
    AspectStat,
    Coverage,
    Driver,
    MilestoneShape,
    Shift,
    Spike,
    TopPost,
)

ANNOUNCED = datetime(2012, 12, 17, tzinfo=UTC)
MILESTONES = {
    "announced": ANNOUNCED,
    "reversed": datetime(2012, 12, 20, tzinfo=UTC),
    "effective": datetime(2013, 1, 16, tzinfo=UTC),
}


def hourly_bins(scale: float = 1.0, seed: int = 0, timezone: str = "UTC") -> pd.DataFrame:
    """About 44 days of hourly bins: quiet baseline, a storm after the announcement, relief, a smaller wave."""
    rng = np.random.default_rng(seed)
    index = pd.date_range(ANNOUNCED - timedelta(days=7), MILESTONES["effective"] + timedelta(days=7), freq="h")
    hours = (index - ANNOUNCED).total_seconds().to_numpy() / 3600
    storm = np.where(hours > 0, 60 * np.exp(-np.maximum(hours - 30, 0) / 22) * np.minimum(hours / 30, 1), 0)
    eff_hours = hours - 30 * 24
    wave = np.where(eff_hours > 0, 15 * np.exp(-eff_hours / 20), 0)
    volume = np.round((3 + storm + wave) * scale * rng.gamma(8, 1 / 8, len(index))).astype(int)
    reposts = np.round(volume * 0.3).astype(int)
    negative = np.clip(0.18 + 0.5 * storm / 60 + 0.2 * wave / 15 + rng.normal(0, 0.03, len(index)), 0, 1)
    mean = 0.3 - 1.1 * negative + rng.normal(0, 0.02, len(index))
    half = 1.96 * 0.5 / np.sqrt(np.maximum(volume, 1))
    frame = pd.DataFrame(
        {
            "volume": volume,
            "originals": volume - reposts,
            "reposts": reposts,
            "scored": np.round(volume * 0.95).astype(int),
            "mean_compound": mean,
            "ci_low": mean - half,
            "ci_high": mean + half,
            "negative_share": negative,
            "positive_share": 1 - negative - 0.2,
            "net_sentiment": 0.8 - 2 * negative,
            "churn_share": np.clip(0.01 + 0.2 * storm / 60, 0, 1),
            "reach_weighted_compound": mean * 0.9,
            "counted": np.nan,
        },
        index=index.tz_convert(timezone),
    )
    return frame[BIN_COLUMNS]


def days_from(bins: pd.DataFrame, zero: datetime) -> pd.DataFrame:
    frame = bins.copy()
    frame.index = pd.Index((bins.index - pd.Timestamp(zero)).total_seconds() / 86400, name="days")
    return frame


def distribution() -> pd.DataFrame:
    edges = np.linspace(-1, 1, 21)
    centres = (edges[:-1] + edges[1:]) / 2
    baseline = np.exp(-((centres - 0.3) ** 2) / 0.15)
    after = np.exp(-((centres + 0.45) ** 2) / 0.12) + 0.4 * np.exp(-((centres - 0.3) ** 2) / 0.15)
    return pd.DataFrame(
        {"left": edges[:-1], "right": edges[1:], "baseline": baseline / baseline.sum(), "after": after / after.sum()}
    )


def per_source(bins: pd.DataFrame, sources: tuple[str, ...]) -> pd.DataFrame:
    rows = []
    for position, source in enumerate(sources):
        share = 1.0 / (position + 1.5)
        for start, row in bins.iterrows():
            volume = int(row["volume"] * share)
            rows.append((start, source, volume, int(volume * 0.9), row["mean_compound"] + 0.05 * position))
    return pd.DataFrame(rows, columns=["bin", "source", "volume", "scored", "mean_compound"])


def shifts() -> list[Shift]:
    items = []
    for milestone, diff in (("announced", -0.42), ("reversed", -0.18), ("effective", -0.12)):
        for window in ("24h", "72h", "7d"):
            items.append(
                Shift(
                    milestone,
                    window,
                    "mean_compound",
                    0.21,
                    0.21 + diff,
                    diff,
                    diff - 0.05,
                    diff + 0.05,
                    0.0001,
                    410,
                    2900,
                )
            )
            items.append(Shift(milestone, window, "negative_share", 0.18, 0.18 - diff, -diff, -diff - 0.04, -diff + 0.04, 0.0001, 410, 2900))  # fmt: skip
        items.append(Shift(milestone, "24h", "volume", 2.9, 40.0, 37.1, 30.2, 44.0, None, 168, 24))
    return items


def spikes() -> list[Spike]:
    start = ANNOUNCED + timedelta(hours=14)
    return [
        Spike("volume", start, start + timedelta(hours=16), start + timedelta(hours=40), 71, 3, 24.5, 23.7),
        Spike("dip", start + timedelta(hours=2), start + timedelta(hours=18), start + timedelta(hours=30), -0.45, 0.2, -6.1, -0.65),
        Spike("volume", MILESTONES["effective"] + timedelta(hours=2), MILESTONES["effective"] + timedelta(hours=8), MILESTONES["effective"] + timedelta(hours=20), 19, 3, 6.2, 6.3),
    ]  # fmt: skip


def top_posts(text_of_first: str) -> list[TopPost]:
    texts = [
        text_of_first,
        "Quitting Instagram. Not letting them sell my photos. Bye",
        "Shame on Instagram, greedy and evil #boycottinstagram",
    ]
    moment = ANNOUNCED + timedelta(hours=20)
    return [
        TopPost(moment + timedelta(minutes=i), "simulated", f"user{i}", text, None, -0.8 + 0.1 * i, 900 - 100 * i)
        for i, text in enumerate(texts)
    ]


def make_analysis(
    scale: float = 1.0,
    seed: int = 0,
    sources: tuple[str, ...] = ("simulated",),
    first_post_text: str = "Instagram wants to sell my photos? Disgusting. #boycottinstagram",
    event: str = "instagram-tos-2012",
    timezone: str = "UTC",
    simulated: bool = True,
) -> Analysis:
    """A realistic Analysis for one event; `scale` and `seed` change the numbers."""
    bins = hourly_bins(scale, seed, timezone)
    posts = int(bins["volume"].sum())
    coverage = Coverage(
        posts=posts,
        scored=int(bins["scored"].sum()),
        reposts=int(bins["reposts"].sum()),
        not_scored_language=posts - int(bins["scored"].sum()),
        per_source={source: posts // len(sources) for source in sources},
        first_post=bins.index[0].to_pydatetime().astimezone(UTC),
        last_post=bins.index[-1].to_pydatetime().astimezone(UTC),
        simulated=simulated,
    )
    shape = MilestoneShape("announced", ANNOUNCED + timedelta(hours=30), 30.0, 16.0, 70.0, 900.0, 0.18, 0.64)
    return Analysis(
        event=event,
        title="Instagram terms of service change",
        platform="Instagram",
        timezone=timezone,
        bin="hour",
        milestones=dict(MILESTONES),
        align_on="effective",
        baseline_start=ANNOUNCED - timedelta(days=7),
        baseline_end=ANNOUNCED,
        bins=bins,
        per_source=per_source(bins, sources),
        days_from=days_from(bins, MILESTONES["effective"]),
        distribution=distribution(),
        shifts=shifts(),
        spikes=spikes(),
        shapes=[shape],
        drivers=[
            Driver(term, z, count, base)
            for term, z, count, base in [
                ("sell", 14.2, 820, 3),
                ("photos", 11.9, 990, 40),
                ("#boycottinstagram", 10.4, 410, 0),
                ("deleting", 8.8, 300, 2),
                ("account", 7.5, 350, 6),
                ("ads", 6.9, 260, 4),
                ("terms", 6.1, 500, 12),
                ("disgusting", 5.2, 120, 0),
                ("greedy", 4.4, 90, 0),
                ("rights", 3.9, 80, 1),
            ]
        ],  # fmt: skip
        aspects=[
            AspectStat("photos", 1900, 0.48, -0.41),
            AspectStat("ads", 900, 0.23, -0.35),
            AspectStat("privacy", 800, 0.20, -0.22),
        ],
        top_posts=top_posts(first_post_text),
        coverage=coverage,
        generated_at=datetime(2013, 1, 23, 12, 0, tzinfo=UTC),
    )
