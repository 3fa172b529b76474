"""Analysis on hand-worked frames: every number checked against a value worked out by hand."""

from __future__ import annotations

import json
import math
import types
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from monitor.analysis import (
    BIN_COLUMNS,
    Analysis,
    AnalysisAccumulator,
    bin_index,
    bin_starts,
    data_end,
    partial_bin,
    resolve_bin,
    welch,
)
from monitor.config import AlertsConfig, EventConfig, parse_config
from monitor.pipeline import analyze_event, open_workspace, score
from monitor.posts import Post
from tests.analysis_reference import analyze, drivers
from tests.conftest import BASE_CONFIG

ANNOUNCED = datetime(2012, 12, 17, tzinfo=UTC)
MILESTONES = {
    "announced": ANNOUNCED,
    "reversed": datetime(2012, 12, 20, tzinfo=UTC),
    "effective": datetime(2013, 1, 16, tzinfo=UTC),
}
EVENT = EventConfig(
    name="instagram-tos-2012",
    platform="Instagram",
    milestones={name: moment for name, moment in MILESTONES.items()},
    aspects={"ads": ["ad", "ads"], "photos": ["photo*"]},
    bin="hour",  # the hand-worked cases count hours
)
GENERATED = datetime(2013, 2, 1, tzinfo=UTC)


def post(at: datetime, compound: float | None = 0.1, **fields: Any) -> dict[str, Any]:
    row = {"created_at": at, "compound": compound, "status": "scored" if compound is not None else None}
    row |= {"source": "x", "post_id": f"{at.isoformat()}-{fields.get('n', 0)}", "text": "just words"}
    return row | {key: value for key, value in fields.items() if key != "n"}


PATHS = {"path": "in-memory"}


@pytest.fixture(autouse=True, params=["in-memory", "chunked"])
def analysis_path(request: pytest.FixtureRequest) -> None:
    """Every hand-worked number is checked on both paths: analyze() on one frame, and the accumulator fed
    five chunks in reverse order (so bins, windows and top posts straddle chunks)."""
    PATHS["path"] = request.param


def run(rows: list[dict[str, Any]], event: EventConfig = EVENT, **options: Any) -> Analysis:
    frame = pd.DataFrame(rows) if rows else pd.DataFrame(columns=["created_at", "text"])
    options.setdefault("alerts", AlertsConfig())
    options.setdefault("counts", None)
    if PATHS["path"] == "chunked":
        return run_chunked(frame, event, max(len(frame) // 5, 1), **options)
    return analyze(frame, event=event, milestones=MILESTONES, tz="UTC", generated_at=GENERATED, **options)


def run_chunked(
    frame: pd.DataFrame, event: EventConfig, size: int, alerts: Any, counts: Any, collected_until: Any = None
) -> Analysis:
    accumulator = AnalysisAccumulator(event=event, milestones=MILESTONES, tz="UTC", alerts=alerts)
    for end in range(len(frame), 0, -size):
        accumulator.add(frame.iloc[max(end - size, 0) : end])
    return accumulator.finish(counts, generated_at=GENERATED, collected_until=collected_until)


def hour(day: int, at: int, minute: int = 0) -> datetime:
    return datetime(2012, 12, day, at, minute, tzinfo=UTC)


# ---- per-bin numbers -------------------------------------------------------------------------------


def test_one_bin_of_four_posts() -> None:
    rows = [
        post(hour(18, 5, 1), -0.5, n=1, churn=True),
        post(hour(18, 5, 2), 0.0, n=2, is_repost=True),
        post(hour(18, 5, 3), 0.5, n=3),
        post(hour(18, 5, 4), 0.6, n=4, followers=99),
    ]
    bins = run(rows).bins
    assert list(bins.columns) == BIN_COLUMNS
    row = bins.loc[pd.Timestamp(hour(18, 5))]
    assert (row["volume"], row["originals"], row["reposts"], row["scored"]) == (4, 3, 1, 4)
    assert row["mean_compound"] == pytest.approx(0.15)
    assert row["negative_share"] == 0.25 and row["positive_share"] == 0.5 and row["net_sentiment"] == 0.25
    assert row["churn_share"] == 0.25
    assert row["reach_weighted_compound"] == pytest.approx(0.6)  # only the 99-follower post has weight
    half_width = 1.96 * math.sqrt(0.77 / 3) / 2
    assert (row["ci_low"], row["ci_high"]) == (pytest.approx(0.15 - half_width), pytest.approx(0.15 + half_width))
    assert math.isnan(row["counted"])


def test_empty_bins_are_kept_with_zero_volume() -> None:
    bins = run([post(hour(18, 1)), post(hour(18, 4))]).bins
    assert list(bins["volume"]) == [1, 0, 0, 1]
    assert math.isnan(bins["mean_compound"].iloc[1])


def test_day_bins_follow_the_config_zone_across_daylight_saving() -> None:
    times = pd.Series(pd.to_datetime(["2012-12-18T07:00:00Z", "2013-03-10T20:00:00Z", "2013-03-10T07:30:00Z"]))
    starts = bin_starts(times, "America/Los_Angeles", "day")
    assert [stamp.isoformat() for stamp in starts] == [
        "2012-12-17T00:00:00-08:00",
        "2013-03-10T00:00:00-08:00",
        "2013-03-09T00:00:00-08:00",
    ]
    hours = bin_starts(pd.Series(pd.to_datetime(["2012-12-18T07:45:00Z"])), "Asia/Kolkata", "hour")
    assert hours.iloc[0].isoformat() == "2012-12-18T13:00:00+05:30"


@pytest.mark.parametrize(
    ("days", "expected"), [(3, "hour"), (5, "hour"), (6, "6h"), (30, "6h"), (31, "day"), (400, "day")]
)
def test_auto_bin_follows_the_window_length(days: int, expected: str) -> None:
    start = datetime(2022, 11, 1, tzinfo=UTC)
    assert resolve_bin("auto", (start, start + timedelta(days=days))) == expected
    assert resolve_bin("day", (start, start + timedelta(days=1))) == "day"


def test_six_hour_bins_on_both_paths_count_every_post_and_keep_empty_quarters() -> None:
    rows = [post(hour(18, 1), -0.5, n=1), post(hour(18, 5, 59), 0.5, n=2), post(hour(18, 6), 0.1, n=3)]
    rows += [post(hour(19, 23, 30), 0.2, n=4)]
    analysis = run(rows, EVENT.model_copy(update={"bin": "6h"}))
    bins = analysis.bins
    assert analysis.bin == "6h"
    assert [stamp.hour for stamp in bins.index[:4]] == [0, 6, 12, 18]
    assert bins.loc[pd.Timestamp(hour(18, 0)), "volume"] == 2
    assert bins.loc[pd.Timestamp(hour(18, 6)), "volume"] == 1
    assert bins.loc[pd.Timestamp(hour(18, 12)), "volume"] == 0
    assert int(bins["volume"].sum()) == 4 and len(bins) == 8


def test_six_hour_bins_follow_the_wall_clock_across_daylight_saving() -> None:
    times = pd.Series(pd.to_datetime(["2013-03-10T05:30:00Z", "2013-03-10T13:30:00Z", "2013-03-10T19:00:00Z"]))
    starts = bin_starts(times, "America/Los_Angeles", "6h")
    assert [stamp.isoformat() for stamp in starts] == [
        "2013-03-09T18:00:00-08:00",
        "2013-03-10T06:00:00-07:00",
        "2013-03-10T12:00:00-07:00",
    ]
    index = bin_index(starts.iloc[0], starts.iloc[-1], "America/Los_Angeles", "6h")
    assert [stamp.hour for stamp in index] == [18, 0, 6, 12]


# ---- shifts against the baseline -----------------------------------------------------------------------


def shift_rows() -> list[dict[str, Any]]:
    baseline = [post(hour(16, 21 + i, 10), value, n=i) for i, value in enumerate([0.2, 0.4, 0.6])]
    after = [post(hour(17, 0, 10 * (i + 1)), value, n=i) for i, value in enumerate([-0.2, -0.4, -0.6])]
    return baseline + after


def find(analysis: Analysis, milestone: str, window: str, metric: str) -> Any:
    return next(s for s in analysis.shifts if (s.milestone, s.window, s.metric) == (milestone, window, metric))


def test_shift_of_mean_compound_with_welch_interval_and_p_value() -> None:
    shift = find(run(shift_rows()), "announced", "24h", "mean_compound")
    assert (shift.baseline, shift.after, shift.diff) == (pytest.approx(0.4), pytest.approx(-0.4), pytest.approx(-0.8))
    # both sides: variance 0.04 over 3 posts; se = sqrt(2 * 0.04 / 3); Welch df = 4; t(0.975, 4) = 2.7764451
    margin = 2.7764451051977934 * math.sqrt(2 * 0.04 / 3)
    assert shift.ci_low == pytest.approx(-0.8 - margin) and shift.ci_high == pytest.approx(-0.8 + margin)
    assert shift.p_value == pytest.approx(0.0080499, rel=1e-4)  # t = -4.899 on 4 df
    assert (shift.n_baseline, shift.n_after) == (3, 3)


def test_shift_of_negative_share_without_spread_has_a_point_interval() -> None:
    shift = find(run(shift_rows()), "announced", "72h", "negative_share")
    assert (shift.baseline, shift.after, shift.diff) == (0.0, 1.0, 1.0)
    assert (shift.ci_low, shift.ci_high, shift.p_value) == (1.0, 1.0, None)


def test_shift_of_volume_counts_posts_per_hour_within_the_data() -> None:
    shift = find(run(shift_rows()), "announced", "7d", "volume")
    # baseline: 21h, 22h, 23h on Dec 16 with one post each (the window starts at the first post's hour);
    # after: the data ends in the first hour after the announcement, which has three posts
    assert (shift.baseline, shift.after, shift.diff, shift.n_baseline, shift.n_after) == (1.0, 3.0, 2.0, 3, 1)
    assert math.isnan(shift.ci_low) and shift.p_value is None


def test_a_window_without_posts_has_no_numbers() -> None:
    shift = find(run(shift_rows()), "effective", "24h", "mean_compound")
    assert shift.n_after == 0 and math.isnan(shift.after) and shift.p_value is None


def test_welch_on_two_known_samples() -> None:
    diff, low, high, p_value = welch(pd.Series([2.0, 4.0]).to_numpy(), pd.Series([1.0, 1.0, 1.0]).to_numpy())
    assert diff == 2.0 and p_value == pytest.approx(0.2951672, rel=1e-5)  # t = 1.4142 on 1 df
    assert low == pytest.approx(2.0 - 12.706204736 * 1.0) and high == pytest.approx(2.0 + 12.706204736)


# ---- spikes and dips ------------------------------------------------------------------------------------


def hourly(volumes: dict[datetime, int], compound: float = 0.1, dips: dict[datetime, float] | None = None) -> list:
    rows = []
    for start, count in volumes.items():
        value = (dips or {}).get(start, compound)
        rows += [post(start + timedelta(seconds=i), value, n=i) for i in range(count)]
    return rows


def series(first: datetime, hours: int, level: int = 20, wobble: int = 2) -> dict[datetime, int]:
    return {first + timedelta(hours=h): level + (wobble if h % 2 else 0) for h in range(hours)}


def test_a_planted_spike_is_found_at_its_bin_and_a_dip_too() -> None:
    volumes = series(ANNOUNCED - timedelta(days=7), 24 * 10)
    spike_at, dip_at = hour(18, 5), hour(19, 10)
    volumes[spike_at] = 80
    analysis = run(hourly(volumes, dips={dip_at: -0.8}))
    assert [(s.kind, s.start, s.peak, s.end) for s in analysis.spikes] == [
        ("volume", spike_at, spike_at, spike_at),
        ("dip", dip_at, dip_at, dip_at),
    ]
    volume, dip = analysis.spikes
    # baseline: 20 and 22 posts per hour, median 21, MAD 1 → scale 1.4826
    assert volume.baseline_value == 21.0 and volume.z == pytest.approx((80 - 21) / 1.4826)
    assert volume.size == pytest.approx(80 / 21) and volume.peak_value == 80
    # baseline compound 0.1 everywhere: MAD 0, so the 0.05 floor is the scale
    assert dip.size == pytest.approx(-0.9) and dip.z == pytest.approx(-0.9 / 0.05)
    assert volume.key() == "volume:2012-12-18T05:00:00+00:00"


def test_a_flat_series_has_no_spikes() -> None:
    assert run(hourly(series(ANNOUNCED - timedelta(days=7), 24 * 9, wobble=0))).spikes == []


def test_spikes_below_the_volume_floor_do_not_count() -> None:
    volumes = series(ANNOUNCED - timedelta(days=7), 24 * 9, level=2, wobble=1)
    volumes[hour(18, 5)] = 15
    assert run(hourly(volumes)).spikes == []
    assert len(run(hourly(volumes), alerts=AlertsConfig(min_volume=10)).spikes) == 1


def test_spikes_within_the_cooldown_merge_and_later_ones_do_not() -> None:
    volumes = series(ANNOUNCED - timedelta(days=7), 24 * 9)
    volumes[hour(18, 5)], volumes[hour(18, 8)], volumes[hour(18, 20)] = 80, 90, 70
    spikes = run(hourly(volumes)).spikes
    assert [(s.start, s.peak, s.end) for s in spikes] == [
        (hour(18, 5), hour(18, 8), hour(18, 8)),
        (hour(18, 20), hour(18, 20), hour(18, 20)),
    ]


# ---- the shape of the reaction ---------------------------------------------------------------------------


def test_time_to_peak_half_life_and_before_after() -> None:
    volumes = {hour(16, 23): 5, hour(17, 0): 10, hour(17, 1): 40, hour(17, 2): 30, hour(17, 3): 15}
    rows = hourly(volumes)
    rows += [post(hour(16, 22), -0.5, n=99)]  # one negative post among the six before the announcement
    # collected live until 04:00, so the 03:00 hour is whole
    shape = next(s for s in run(rows, collected_until=hour(17, 4)).shapes if s.milestone == "announced")
    assert shape.peak_at == hour(17, 1) and shape.hours_to_peak == 1.0
    assert shape.half_life_hours == 2.0  # 40 at 01:00, first at or below 20 is 15 at 03:00
    assert (shape.volume_before_24h, shape.volume_after_24h) == (6.0, 95.0)
    assert shape.negative_share_before_24h == pytest.approx(1 / 6) and shape.negative_share_after_24h == 0.0


def shares_at(day: int, negative: int, scored: int = 10) -> list[dict[str, Any]]:
    """`scored` posts in the hour from noon on a December day, `negative` of them negative."""
    return [post(hour(day, 12, i), -0.5 if i < negative else 0.1, n=i) for i in range(scored)]


def test_a_reversal_that_turns_negativity_around_bent_the_curve() -> None:
    # Negative shares 0.2, 0.5, 0.6 in three noon hours a day apart before the reversal (20 Dec), 0.6, 0.3, 0.2
    # after, 10 posts each. By hand (days 0, 1, 2; equal weights): slopes +0.2 and −0.2 a day; residuals
    # ∓1/30, ±2/30 on each side, so RSS = 2 × 10 × 6/900 = 0.1333 on 6 − 4 = 2 degrees of freedom: σ² = 0.0667;
    # spread of the days 10 × 2 = 20 per side; SE of the change √(0.0667 × (1/20 + 1/20)) = 0.08165;
    # t(0.975, 2) = 4.3027: −0.4 ± 0.3513.
    rows = [row for day, bad in ((17, 2), (18, 5), (19, 6), (20, 6), (21, 3), (22, 2)) for row in shares_at(day, bad)]
    shapes = {shape.milestone: shape for shape in run(rows).shapes}
    assert shapes["announced"].negative_share_bend is None and shapes["announced"].volume_bend is None
    bend = shapes["reversed"].negative_share_bend
    assert bend is not None
    assert (bend.bins_before, bend.bins_after, bend.posts_before, bend.posts_after) == (3, 3, 30, 30)
    assert (bend.before_from, bend.after_to) == (hour(17, 12), hour(22, 13))
    assert bend.slope_before == pytest.approx(0.2) and bend.slope_after == pytest.approx(-0.2)
    assert bend.change == pytest.approx(-0.4)
    assert (bend.ci_low, bend.ci_high) == (pytest.approx(-0.4 - 0.3513, abs=1e-4), pytest.approx(-0.4 + 0.3513, abs=1e-4))
    assert bend.verdict == "bent"
    effective = shapes["effective"].negative_share_bend  # 16 Jan: no post in the days around it
    assert effective is not None and effective.verdict == "cannot tell (too few posts)"
    assert (effective.bins_before, effective.slope_before, effective.ci_low) == (0, None, None)


def test_a_trend_that_goes_on_through_the_milestone_is_no_clear_change_and_few_posts_cannot_tell() -> None:
    steady = [row for day, bad in ((17, 2), (18, 4), (19, 6), (20, 7), (21, 8), (22, 10)) for row in shares_at(day, bad, 12)]
    bend = next(s for s in run(steady).shapes if s.milestone == "reversed").negative_share_bend
    # By hand: shares 2/12, 4/12, 6/12 (slope 1/6, no residual), then 7/12, 8/12, 10/12 (slope 1/8, residuals
    # 1/72, −2/72, 1/72: RSS 12 × 6/5184 = 0.013889); σ² = 0.006944, spread 24 per side, SE 0.024056;
    # change −1/24 ± 4.3027 × 0.024056 = −0.04167 ± 0.10351: the interval holds 0.
    assert bend is not None and bend.change == pytest.approx(-1 / 24)
    assert (bend.ci_low, bend.ci_high) == (pytest.approx(-0.14518, abs=1e-4), pytest.approx(0.06184, abs=1e-4))
    assert bend.verdict == "no clear change"
    thin = [row for day, bad in ((17, 2), (18, 5), (19, 6), (20, 6), (21, 3), (22, 2)) for row in shares_at(day, bad, 9)]
    bend = next(s for s in run(thin).shapes if s.milestone == "reversed").negative_share_bend
    assert bend is not None and bend.posts_before == 27 and bend.verdict == "cannot tell (too few posts)"
    assert bend.ci_low is None and bend.slope_before == pytest.approx(2 / 9)  # (6/9 − 2/9) / 2: slopes still given


DAY_EVENT = EventConfig(**{**EVENT.model_dump(), "bin": "day"})
PER_DAY = {17: 24, 18: 60, 19: 72, 20: 72, 21: 48, 22: 36}  # 1, 2.5, 3 posts an hour, then 3, 2, 1.5


def per_day_posts() -> list[dict[str, Any]]:
    return [post(hour(day, 0) + timedelta(minutes=i), 0.1, n=i) for day, count in PER_DAY.items() for i in range(count)]


def test_volume_rising_before_the_reversal_and_falling_after_it_bent_the_curve() -> None:
    # Day bins, posts per hour 1, 2.5, 3 then 3, 2, 1.5. By hand: slopes +1.0 and −0.75 posts an hour a day;
    # RSS 1/6 + 1/24 = 0.2083 on 2 degrees of freedom; spread 2 per side; SE √(0.1042 × 1) = 0.32275;
    # −1.75 ± 4.3027 × 0.32275 = −1.75 ± 1.3887. Collected live until 23 Dec: the 22nd is whole.
    analysis = run(per_day_posts(), DAY_EVENT, collected_until=datetime(2012, 12, 23, 1, tzinfo=UTC))
    reversed_ = next(s for s in analysis.shapes if s.milestone == "reversed")
    volume = reversed_.volume_bend
    assert volume is not None and (volume.bins_before, volume.bins_after, volume.posts_after) == (3, 3, 156)
    assert (volume.slope_before, volume.slope_after) == (pytest.approx(1.0), pytest.approx(-0.75))
    assert (volume.ci_low, volume.ci_high) == (pytest.approx(-3.1387, abs=1e-4), pytest.approx(-0.3613, abs=1e-4))
    assert volume.verdict == "bent"
    negative = reversed_.negative_share_bend  # no negative post at all: flat at 0 on both sides, exactly
    assert negative is not None and (negative.change, negative.ci_low, negative.ci_high) == (0.0, 0.0, 0.0)
    assert negative.verdict == "no clear change"
    assert analysis.partial_bin() is None and not any(row["partial"] for row in analysis.summary()["series"])


def test_a_partial_last_bin_is_marked_and_never_read_as_a_drop() -> None:
    # The same archive without a collect run: the data end with the last post, 22 Dec 00:35, so the 22nd is
    # partial (36 posts in 35 minutes, not a fall to 1.5 an hour): left out of the volume trend and the half-life.
    analysis = run(per_day_posts(), DAY_EVENT)
    assert analysis.data_end == hour(22, 0, 35)
    assert analysis.partial_bin() == pd.Timestamp(hour(22, 0))
    summary = analysis.summary()
    assert summary["data_end"] == "2012-12-22T00:35:00Z"
    assert [row["partial"] for row in summary["series"]] == [False] * 5 + [True]
    reversed_ = next(s for s in analysis.shapes if s.milestone == "reversed")
    assert reversed_.peak_at == hour(20, 0) and reversed_.half_life_hours is None  # 48 and 36 are above half of 72
    volume = reversed_.volume_bend
    assert volume is not None and volume.bins_after == 2 and volume.after_to == hour(22, 0)
    assert volume.verdict == "cannot tell (too few bins)" and volume.ci_low is None


@pytest.mark.parametrize(
    ("last_post", "collected", "window_end", "partial"),
    [
        ((14, 10), None, None, True),  # an archive that stops at 14:10 in the 12:00–18:00 bin
        ((14, 10), (18, 30), None, False),  # collected live until after the bin's end: whole
        ((14, 10), (15, 0), None, True),  # collected until 15:00: still running
        ((14, 10), (20, 0), (16, 0), True),  # the window ends at 16:00, inside the bin
        ((17, 57), None, None, False),  # within the bin's last 1 % (3.6 minutes): whole
    ],
)
def test_the_data_end_is_the_last_collect_run_or_the_last_post(
    last_post: tuple[int, int], collected: tuple[int, int] | None, window_end: tuple[int, int] | None, partial: bool
) -> None:
    at = {name: None if value is None else hour(18, *value) for name, value in
          (("last", last_post), ("collected", collected), ("window", window_end))}  # fmt: skip
    end = data_end(at["last"], at["collected"], at["window"])
    expected = min(v for v in (max(at["last"], at["collected"] or at["last"]), at["window"]) if v is not None)
    assert end == expected
    bins = pd.DataFrame({"volume": [5, 3]}, index=pd.DatetimeIndex([hour(18, 6), hour(18, 12)]))
    assert partial_bin(bins, "6h", end) == (pd.Timestamp(hour(18, 12)) if partial else None)


def test_posts_after_the_window_make_the_data_run_to_its_end_whatever_the_last_post_inside_it() -> None:
    last, window_end = hour(18, 14, 10), hour(18, 16, 0)
    assert data_end(last, None, window_end, posts_after=True) == window_end
    assert data_end(None, None, window_end, posts_after=True) == window_end  # every post is after the window
    assert data_end(last, None, window_end) == last
    assert data_end(last, None, None, posts_after=True) == last  # no window: nothing is after it


# ---- drivers, aspects, top posts ------------------------------------------------------------------------


def test_a_planted_negative_term_tops_the_drivers() -> None:
    rows = [post(hour(12, 10, i), 0.4, n=i, text="lovely photos of friends and family") for i in range(30)]
    rows += [post(hour(18, 10, i), -0.6, n=i, text="they hijack our photos, hijack!") for i in range(20)]
    rows += [post(hour(18, 11, i), -0.4, n=i, text="sad about photos and friends") for i in range(20)]
    rows += [post(hour(18, 12, i), 0.5, n=i, text="cheerful positive") for i in range(5)]
    found = run(rows).drivers
    assert found[0].term == "hijack" and found[0].count_after == 40 and found[0].count_baseline == 0
    ranks = {driver.term: driver.z for driver in found}
    assert ranks["hijack"] > ranks["sad"] > ranks.get("photos", 0.0)  # photos is common in the baseline too
    assert all(driver.z > 0 for driver in found) and len(found) <= 15


def test_drivers_use_the_monroe_formula() -> None:
    frame = pd.DataFrame(
        [post(hour(12, 1), 0.5, text="calm calm day"), post(hour(18, 1), -0.5, n=1, text="angry angry calm")]
    )
    frame = frame.assign(scored=True)
    (driver,) = drivers(frame, ANNOUNCED - timedelta(days=7), ANNOUNCED, ANNOUNCED)
    # focus (negative, after): angry 2, calm 1 (n 3); reference (baseline): calm 2, day 1 (n 3)
    # prior = both together: angry 2, calm 3, day 1 (alpha0 6)
    delta = math.log((2 + 2) / (3 + 6 - 2 - 2)) - math.log((0 + 2) / (3 + 6 - 0 - 2))
    assert driver.term == "angry" and driver.z == pytest.approx(delta / math.sqrt(1 / 4 + 1 / 2))


def test_aspect_shares_and_mean_sentiment() -> None:
    rows = [post(hour(18, 1, i), -0.5, n=i, aspects="ads") for i in range(4)]
    rows += [post(hour(18, 2, i), -0.2, n=i, aspects="ads,photos") for i in range(2)]
    rows += [post(hour(18, 3, i), 0.3, n=i, aspects="") for i in range(4)]
    rows += [post(hour(12, 3), 0.3, aspects="ads")]  # baseline: not counted
    stats = {stat.aspect: stat for stat in run(rows).aspects}
    assert (stats["ads"].posts, stats["ads"].share) == (6, 0.6)
    assert stats["ads"].mean_compound == pytest.approx(-0.4)
    assert (stats["photos"].posts, stats["photos"].share, stats["photos"].mean_compound) == (2, 0.2, -0.2)


def test_top_posts_are_the_most_engaged_negative_ones_once_per_text() -> None:
    rows = [
        post(hour(18, 1), -0.5, n=1, text="awful", likes=10, reposts=5, replies=1, author="a", url="u1"),
        post(hour(18, 2), -0.5, n=2, text="awful", likes=3, author="b"),
        post(hour(18, 3), -0.9, n=3, text="terrible", likes=2),
        post(hour(18, 4), 0.9, n=4, text="great", likes=100),
    ]
    top = run(rows).top_posts
    assert [(p.text, p.engagement, p.author, p.url) for p in top] == [
        ("awful", 16, "a", "u1"),
        ("terrible", 2, None, None),
    ]


# ---- alignment, distribution, coverage, edge cases ------------------------------------------------------


def test_days_from_the_effective_date() -> None:
    analysis = run([post(datetime(2013, 1, 17, 12, tzinfo=UTC)), post(datetime(2013, 1, 15, 18, tzinfo=UTC))])
    assert analysis.align_on == "effective"
    assert analysis.days_from.index[0] == -0.25 and analysis.days_from.index[-1] == 1.5
    assert analysis.days_from["volume"].iloc[-1] == 1


def test_compound_distribution_is_shares_per_tenth() -> None:
    rows = [post(hour(12, 1), 0.65), post(hour(12, 2), 0.61, n=2), post(hour(18, 1), -0.95), post(hour(18, 2), 1.0)]
    table = run(rows).distribution
    assert len(table) == 20 and table["baseline"].sum() == pytest.approx(1.0)
    assert table.loc[table["left"].round(1) == 0.6, "baseline"].item() == 1.0
    assert table["after"].iloc[0] == 0.5 and table["after"].iloc[-1] == 0.5


def test_coverage_counts_what_was_not_scored_and_why() -> None:
    rows = [
        post(hour(18, 1), 0.2, n=1, source="x", is_quote=True),
        post(hour(18, 2), None, n=2, source="x", status="skipped:language", lang="fr", is_quote=True),
        post(hour(18, 3), None, n=3, source="archive", status="skipped:bot"),
        post(hour(18, 4), None, n=4, source="archive", is_repost=True),
    ]
    counts = pd.DataFrame({"source": ["x", "x"], "bucket_start": [hour(18, 1), hour(18, 2)], "count": [50, 70]})
    analysis = run(rows, counts=counts)
    cover = analysis.coverage
    assert (cover.posts, cover.scored, cover.reposts, cover.not_scored_language, cover.not_scored_other) == (
        4,
        1,
        1,
        1,
        1,  # the bot: a skip, not a post still waiting for `score`
    )
    assert cover.unscored == 1  # no status by this scorer yet
    assert cover.per_source == {"archive": 2, "x": 2} and cover.languages_excluded == {"fr": 1}
    assert cover.quotes == 2
    assert (cover.first_post, cover.last_post, cover.counted) == (hour(18, 1), hour(18, 4), 120)
    assert list(analysis.bins["counted"]) == [50.0, 70.0, pytest.approx(math.nan, nan_ok=True)] + [
        pytest.approx(math.nan, nan_ok=True)
    ]


def test_coverage_counted_covers_only_the_hours_of_the_posts_read() -> None:
    rows = [post(hour(18, 1, 40), 0.2, n=1), post(hour(18, 4, 59), 0.1, n=2)]  # posts span 01:40–04:59
    counted = {hour(17, 23): 900, hour(18, 1): 50, hour(18, 2): 0, hour(18, 3): 0, hour(18, 4): 7, hour(18, 5): 800}
    counts = pd.DataFrame({"source": "x", "bucket_start": list(counted), "count": list(counted.values())})
    assert run(rows, counts=counts).coverage.counted == 50 + 0 + 0 + 7  # the hours 01:00 to 04:00
    assert run(rows, counts=counts[counts["count"] > 100]).coverage.counted is None  # no counted hour in the span
    assert run([], counts=counts).coverage.counted is None  # no posts, no span


@pytest.mark.parametrize(
    "rows",
    [
        [],
        [post(hour(18, 1))],  # a single bin, no baseline
        [post(hour(18, 1), None), post(hour(19, 2), None, n=2)],  # nothing scored
        [post(hour(12, 1), -0.3)],  # only baseline
    ],
    ids=["no posts", "single bin", "all unscored", "only baseline"],
)
def test_edge_cases_give_a_serialisable_summary(rows: list[dict[str, Any]]) -> None:
    analysis = run(rows)
    document = json.loads(json.dumps(analysis.summary(), allow_nan=False))
    assert document["event"] == "instagram-tos-2012" and document["coverage"]["posts"] == len(rows)
    assert document["milestones"]["announced"] == "2012-12-17T00:00:00Z"
    assert analysis.spikes == []


def test_summary_lists_spikes_as_objects_with_utc_times() -> None:
    volumes = series(ANNOUNCED - timedelta(days=7), 24 * 9)
    volumes[hour(18, 5)] = 80
    summary = json.loads(json.dumps(run(hourly(volumes)).summary(), allow_nan=False))
    (spike,) = summary["spikes"]
    assert spike["start"] == spike["peak"] == spike["end"] == "2012-12-18T05:00:00Z"
    assert spike["size"] == pytest.approx(80 / 21) and spike["kind"] == "volume"
    assert summary["baseline"] == {"start": "2012-12-10T00:00:00Z", "end": "2012-12-17T00:00:00Z", "posts": 21 * 24 * 7}
    assert {shift["metric"] for shift in summary["shifts"]} == {"mean_compound", "negative_share", "volume"}


# ---- from the store --------------------------------------------------------------------------------------


def test_analyze_event_reads_the_store_with_current_scores(tmp_path: Path) -> None:
    config = parse_config({**BASE_CONFIG, "database": f"sqlite:///{tmp_path / 'db.sqlite'}"}, tmp_path)
    ws = open_workspace(config=config)
    posts = [
        Post(source="x", id="1", created_at=hour(12, 1), text="What a lovely day", lang="en"),
        Post(source="x", id="2", created_at=hour(18, 1), text="They will sell my photos for ads, awful", lang="en"),
        Post(source="x", id="3", created_at=hour(18, 2), text="Je quitte Instagram", lang="fr"),
    ]
    ws.store.add_posts("instagram-tos-2012", posts)
    score(ws, workers=1)
    analysis = analyze_event(ws, "instagram-tos-2012")
    ws.close()
    assert analysis.coverage.scored == 2 and analysis.coverage.languages_excluded == {"fr": 1}
    assert int(analysis.bins["volume"].sum()) == 3
    stats = {stat.aspect: stat for stat in analysis.aspects}
    assert stats["ads"].posts == 1 and stats["photos"].posts == 1 and stats["ads"].mean_compound < 0
    assert analysis.totals["baseline"]["mean_compound"] > 0 > analysis.totals["since_announced"]["mean_compound"]


def test_networks_pool_instances_and_weigh_tone_by_scored_posts() -> None:
    """Two Mastodon instances are one network; tone is the mean over all its scored posts."""
    from tests.analysis_reference import per_source_series

    bin_start = pd.Timestamp("2012-12-18 10:00", tz="UTC")
    frame = pd.DataFrame(
        {
            "bin": [bin_start] * 6,
            "source": ["mastodon@a", "mastodon@a", "mastodon@b", "x", "x", "x"],
            "scored": [True, True, True, True, True, False],
            "compound": [-0.5, -0.3, 0.5, 0.2, 0.4, float("nan")],
        }
    )
    per_source = per_source_series(frame)
    analysis = types.SimpleNamespace(per_source=per_source)
    totals = Analysis.network_totals(analysis)  # type: ignore[arg-type]
    assert [(name, posts) for name, posts, _, _ in totals] == [("mastodon", 3), ("x", 3)]
    assert totals[0][2] == pytest.approx(0.5)
    assert totals[0][3] == pytest.approx((-0.5 - 0.3 + 0.5) / 3)  # not the mean of the instances' means
    assert totals[1][3] == pytest.approx(0.3)  # the unscored post does not count
    networks = Analysis.per_network(analysis)  # type: ignore[arg-type]
    assert list(networks["scored"]) == [3, 2]


# ---- the chunked path gives the in-memory path's numbers -------------------------------------------------


@pytest.mark.parametrize("chunk", [997, 20_000])
def test_chunked_analysis_matches_in_memory_analysis(chunk: int) -> None:
    from tests.analysis_compare import assert_same_analysis, generated_posts

    if PATHS["path"] == "chunked":
        pytest.skip("compares both paths itself")
    frame = generated_posts(20_000)
    expected = analyze(
        frame, event=EVENT, milestones=MILESTONES, tz="UTC", alerts=AlertsConfig(), generated_at=GENERATED
    )
    accumulator = AnalysisAccumulator(event=EVENT, milestones=MILESTONES, tz="UTC", alerts=AlertsConfig())
    starts = list(range(0, len(frame), chunk))
    for start in reversed(starts):  # any order: chunks are sums
        accumulator.add(frame.iloc[start : start + chunk])
    found = accumulator.finish(None, generated_at=GENERATED)
    assert found.coverage.outside_window > 0, "some generated posts fall outside the window"
    assert found.coverage.posts + found.coverage.outside_window == 20_000
    assert found.drivers and found.top_posts and found.spikes
    assert_same_analysis(found, expected)


def test_accumulators_of_parts_merge_into_the_whole() -> None:
    from tests.analysis_compare import assert_same_analysis, generated_posts

    if PATHS["path"] == "chunked":
        pytest.skip("compares both paths itself")
    frame = generated_posts(5_000, seed=3)
    options: dict[str, Any] = {"event": EVENT, "milestones": MILESTONES, "tz": "UTC", "alerts": AlertsConfig()}
    parts = [AnalysisAccumulator(**options).add(frame.iloc[start : start + 1_200]) for start in range(0, 5_000, 1_200)]
    merged = AnalysisAccumulator(**options)
    for part in parts:
        merged.merge(part)
    expected = analyze(frame, generated_at=GENERATED, **options)
    assert_same_analysis(merged.finish(None, generated_at=GENERATED), expected)


def test_term_counts_stay_bounded_and_the_drivers_exact_on_a_growing_vocabulary() -> None:
    from monitor.analysis import TermCounts
    from tests.analysis_compare import generated_posts

    if PATHS["path"] == "chunked":
        pytest.skip("compares both paths itself")
    frame = generated_posts(20_000)
    rare = ["rare" + "".join(chr(97 + int(digit)) for digit in f"{i:05d}") for i in range(len(frame))]
    frame["text"] = frame["text"] + " " + pd.Series(rare, index=frame.index)  # every post adds a new word
    expected = analyze(
        frame, event=EVENT, milestones=MILESTONES, tz="UTC", alerts=AlertsConfig(), generated_at=GENERATED
    )
    accumulator = AnalysisAccumulator(
        event=EVENT, milestones=MILESTONES, tz="UTC", alerts=AlertsConfig(), term_limit=1_000
    )
    unbounded = TermCounts(limit=10**9)
    for start in range(0, len(frame), 997):
        chunk = frame.iloc[start : start + 997]
        accumulator.add(chunk)
        unbounded.merge(
            AnalysisAccumulator(event=EVENT, milestones=MILESTONES, tz="UTC", alerts=AlertsConfig()).add(chunk).terms
        )
        assert len(accumulator.terms.prior) <= 1_000
    terms = accumulator.terms
    assert len(unbounded.prior) > 17_000  # the vocabulary the bound kept out of memory (posts in the window)
    assert sum(terms.prior.values()) + terms.dropped["prior"] == sum(unbounded.prior.values())
    assert sum(terms.focus.values()) + terms.dropped["focus"] == sum(unbounded.focus.values())
    found = accumulator.finish(None, generated_at=GENERATED)
    assert len(found.drivers) == 8 and found.drivers == expected.drivers  # the same terms and z, exactly


# ---- who and what ---------------------------------------------------------------------------------------------


def test_who_and_what_count_posts_since_the_announcement_against_the_baseline() -> None:
    baseline = [
        post(hour(12, 9), n=1, author="ann", text="#Instagram is fine https://www.news.example/a"),
        post(hour(12, 10), n=2, author="bob", text="photos on #instagram"),
        post(hour(13, 9), n=3, author="ann", text="lunch @friend"),
        post(hour(14, 9), n=4, author=None, text="nothing to see"),
    ]
    after = [
        post(hour(18, 9), n=5, author="ann", likes=10, reposts=5, text="#BoycottInstagram #instagram @Instagram x"),
        post(hour(18, 10), n=6, author="cat", likes=1, text="#boycottinstagram now http://news.example/b"),
        post(hour(18, 11), n=7, author="dan", is_repost=True, likes=99, text="RT @ann: #BoycottInstagram #instagram"),
        post(hour(18, 12), n=8, author="cat", replies=2, text="@instagram why? #instagram https://t.co/x1 #instagram"),
    ]
    who = run(baseline + after).who_what
    # 4 posts since the announcement, 4 in the baseline: change = (count / 4) / (baseline / 4)
    hashtags = {item.name: (item.count, item.baseline, item.change) for item in who["hashtags"]}
    assert hashtags == {"#instagram": (3, 2, 1.5), "#boycottinstagram": (3, 0, None)}
    assert [item.name for item in who["hashtags"]] == ["#boycottinstagram", "#instagram"]  # ties: by name
    assert [(item.name, item.count) for item in who["mentions"]] == [("@instagram", 2)]  # "RT @ann:" is not one
    domains = [(item.name, item.count, item.baseline) for item in who["domains"]]
    assert domains == [("news.example", 1, 1), ("t.co (shortened link: site unknown)", 1, 0)]
    active = [(item.name, item.count, item.baseline, item.change) for item in who["active_accounts"]]
    assert active == [("cat", 2, 0, None), ("ann", 1, 2, 0.5), ("dan", 1, 0, None)]
    engaged = [(item.name, item.count) for item in who["engaged_accounts"]]
    assert engaged == [("ann", 15), ("cat", 3)]  # the repost's 99 likes are the original's: not counted again
    assert json.loads(json.dumps(run(baseline + after).summary()))["who_what"]["hashtags"][0] == {
        "name": "#boycottinstagram", "count": 3, "baseline": 0, "change": None,
    }  # fmt: skip


def test_who_and_what_stay_bounded_and_exact_for_the_top() -> None:
    from monitor.analysis import WhoWhatCounts
    from tests.analysis_compare import assert_same_analysis, generated_posts

    if PATHS["path"] == "chunked":
        pytest.skip("compares both paths itself")
    frame = generated_posts(6_000, seed=5)
    tags = ["#storm", "#quit", "#fine"]
    frame["text"] = [
        f"{text} {tags[i % 3]} @user{i % 7} #once{i} https://site{i % 4}.example/p"
        for i, text in enumerate(frame["text"])
    ]
    frame["author"] = [f"acct{i % 23}" if i % 5 else None for i in range(len(frame))]
    options: dict[str, Any] = {"event": EVENT, "milestones": MILESTONES, "tz": "UTC", "alerts": AlertsConfig()}
    expected = analyze(frame, generated_at=GENERATED, **options)
    accumulator = AnalysisAccumulator(**options)
    accumulator.who = WhoWhatCounts(limit=1_000)  # #once<i>: a new hashtag in every post
    for start in range(0, len(frame), 700):
        accumulator.add(frame.iloc[start : start + 700])
        assert all(len(counts) <= 1_000 for counts in accumulator.who.after.values())
    found = accumulator.finish(None, generated_at=GENERATED)
    assert found.who_what["hashtags"][:3] == expected.who_what["hashtags"][:3]
    for kind in ("mentions", "domains", "active_accounts", "engaged_accounts"):
        assert found.who_what[kind] == expected.who_what[kind], kind
    assert_same_analysis(AnalysisAccumulator(**options).add(frame).finish(None, generated_at=GENERATED), expected)
