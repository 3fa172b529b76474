"""Reports a person reads in thirty seconds: the verdict first, shares in points, charts whose labels never
overprint, a digest with one basis — checked on a real-shaped archive (snscrape's columns, a month of posts)."""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timedelta
from email import policy
from email.parser import BytesParser
from itertools import combinations
from pathlib import Path
from typing import Any

import pytest

from monitor.analysis import CurveBend, MilestoneShape, Spike
from monitor.pipeline import open_workspace
from monitor.plots import (
    SMALL_STYLE,
    chart_style,
    compare_figure,
    small_timeline_figure,
    spike_groups,
    stack_levels,
    timeline_figure,
)
from monitor.wording import key_shift, points, share, verdict

from .analysis_factory import ANNOUNCED, MILESTONES, make_analysis
from .conftest import BASE_CONFIG
from .test_real_shaped import page, run, scraped_archive, storm, summary

EVENT = BASE_CONFIG["events"][0]["name"]


# ---- numbers in words ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"), [(0.27, "27\u00a0%"), (0.005, "0.5\u00a0%"), (0.0123, "1.2\u00a0%"), (0.0, "0\u00a0%"), (None, "–")]
)
def test_shares_take_one_decimal_below_ten_percent(value: float | None, expected: str) -> None:
    assert share(value) == expected


def test_changes_of_shares_are_percentage_points() -> None:
    assert points(0.27, 0.23) == "+4 pts"
    assert points(0.012, 0.005) == "+0.7 pts"  # a share below 10 %: one decimal
    assert points(0.23, 0.27) == "−4 pts"
    assert points(0.2, 0.2) == "±0 pts"
    assert points(None, 0.2) == "–"


def test_the_key_shift_is_a_week_after_the_announcement_when_it_could_be_computed() -> None:
    analysis = make_analysis()
    shift = key_shift(analysis.shifts, "mean_compound")
    assert shift is not None and (shift.milestone, shift.window) == ("announced", "7d")


def test_the_verdict_says_how_loud_how_negative_who_leaves_and_about_what() -> None:
    totals = {"since_announced": {"posts": 4000, "churn_share": 0.012, "negative_share": 0.6}}
    loud, negative, leaving, about = verdict(replace(make_analysis(), totals=totals))
    assert loud.startswith("Loudest since the announcement: ") and " posts per hour on " in loud
    assert negative.startswith("Negative: ") and "95 % interval" in negative and "pts" in negative
    assert leaving == "Say they will leave: 1.2\u00a0% of scored posts since the announcement (48 of 4,000), a lower bound."
    assert "photos (48\u00a0% of posts, tone −0.41)" in about and "“sell”" in about


# ---- charts: nothing overprints ------------------------------------------------------------------------


def test_stacked_labels_go_up_only_when_they_would_overlap() -> None:
    assert stack_levels([(0, 2), (3, 5), (6, 8)], 0.1) == [0, 0, 0]
    assert stack_levels([(0, 2), (1, 3), (2.5, 4), (5, 6)], 0.1) == [0, 1, 0, 0]


def spike(start: datetime, hours: int, peak: float) -> Spike:
    end = start + timedelta(hours=hours)
    return Spike("volume", start, start + timedelta(hours=hours // 2), end, peak, 10.0, 9.0, peak / 10)


def test_neighbouring_spikes_are_merged_and_keep_the_highest_peak() -> None:
    first = spike(ANNOUNCED, 2, 50)
    close = spike(ANNOUNCED + timedelta(hours=3), 1, 80)
    far = spike(ANNOUNCED + timedelta(days=10), 1, 40)
    groups = spike_groups([far, close, first], span_days=40)
    assert [(g.start, g.end, g.peak.peak_value) for g in groups] == [
        (first.start, close.end, 80),
        (far.start, far.end, 40),
    ]


def overlaps(boxes: list[Any]) -> list[tuple[Any, Any]]:
    return [(a, b) for a, b in combinations(boxes, 2) if a.overlaps(b)]


def drawn(figure: Any) -> Any:
    figure.canvas.draw()
    return figure.canvas.get_renderer()


def test_timeline_spike_labels_never_overprint_and_the_legend_stays_off_the_plot() -> None:
    analysis = make_analysis()
    volume = analysis.bins["volume"]
    starts = [ANNOUNCED + timedelta(hours=30 * n) for n in range(12)]
    crowded = [spike(start, 0, float(volume.loc[start])) for start in starts]  # peaks as tall as their bins
    analysis = replace(analysis, spikes=crowded)
    with chart_style():
        figure = timeline_figure(analysis)
        renderer = drawn(figure)
        volume = figure.axes[0]
        labels = [text for text in volume.texts if text.get_text().startswith("×")]
        assert len(labels) == 3  # only the largest are named; the table has the rest
        assert not overlaps([label.get_window_extent(renderer) for label in labels])
        milestones = max(line.get_zorder() for line in volume.get_lines() if line.get_linestyle() == "--")
        for label in labels:  # over a milestone's dashed line (a spike on the day of a reversal) the text stays clear
            background = label.get_bbox_patch()
            assert background is not None and background.get_facecolor()[:3] == (1, 1, 1)
            assert background.get_alpha() >= 0.8 and label.get_zorder() > milestones
        legend = volume.get_legend().get_window_extent(renderer)
        assert not legend.overlaps(volume.get_window_extent(renderer))


def top_label_boxes(figure: Any, renderer: Any) -> list[Any]:
    """The inked line of each label above a plot (a label is lifted by empty lines below it, which take no ink)."""
    from matplotlib.transforms import Bbox

    tops = [child for axes in figure.axes for child in axes.child_axes]
    labels = [label for top in tops for label in top.get_xticklabels() if label.get_text()]
    boxes = [label.get_window_extent(renderer) for label in labels]
    line = min(box.height for box in boxes)
    return [Bbox([[box.x0, box.y1 - line], [box.x1, box.y1]]) for box in boxes]


def test_compare_names_every_milestone_of_every_event_without_collisions() -> None:
    one = make_analysis(event="first-2012")
    milestones = {"announced": ANNOUNCED, "paused": ANNOUNCED + timedelta(hours=20), "reinstated": ANNOUNCED + timedelta(days=1)}
    two = replace(make_analysis(event="second-2012", seed=1), milestones=milestones, align_on="announced")
    with chart_style():
        figure = compare_figure([one, two])
        renderer = drawn(figure)
        texts = [label.get_text() for axes in figure.axes for top in axes.child_axes for label in top.get_xticklabels()]
        assert any("paused (second-2012)" in text for text in texts)
        assert any("reinstated (second-2012)" in text for text in texts)
        assert any("effective (first-2012) · announced (second-2012)" in text for text in texts)  # both at day 0
        assert not overlaps(top_label_boxes(figure, renderer))


def test_the_mail_chart_is_small_and_highlights_its_day() -> None:
    analysis = make_analysis()
    day = (ANNOUNCED + timedelta(days=1), ANNOUNCED + timedelta(days=2))
    with chart_style(SMALL_STYLE):
        figure = small_timeline_figure(analysis, day)
        renderer = drawn(figure)
        assert (figure.bbox.width, figure.bbox.height) == (640, 420)
        texts = [label.get_text().strip() for top in figure.axes[0].child_axes for label in top.get_xticklabels()]
        assert "this digest" in texts
        assert not overlaps(top_label_boxes(figure, renderer))


# ---- a real-shaped month: the page and the digest --------------------------------------------------------


@pytest.fixture
def month(write_config: Callable[..., Path], tmp_path: Path) -> Path:
    """Three weeks of a steady hashtag before the announcement and a storm after it, as the shared archive is shaped."""
    event = {**BASE_CONFIG["events"][0], "milestones": {"announced": "2012-12-17", "reversed": "2012-12-20"}}
    event.pop("bin")  # the shipped default, auto: 7 + 3 + 14 days of window → 6-hour bins
    config = write_config(events=[event])
    calm = storm(ANNOUNCED - timedelta(days=7), 7 * 24, 1, "instagram is fine today, nice photos")
    loud = storm(ANNOUNCED + timedelta(hours=20), 10, 30) + storm(ANNOUNCED + timedelta(days=2), 8 * 24, 1, "instagram terms, meh")
    run(config, "import", str(scraped_archive(tmp_path / "month.csv", calm + loud)), "--event", EVENT)
    run(config, "score")
    run(config, "report")
    return config


def test_the_page_opens_with_the_verdict_and_keeps_the_long_shift_table_folded(month: Path, tmp_path: Path) -> None:
    html = page(tmp_path)
    short = html.split("<h2>In short</h2>")[1].split("<nav>")[0]
    assert "Loudest since the announcement: " in short and " posts per 6 hours on " in short  # bin: auto → 6 h
    assert "Negative: " in short and "pts vs the baseline" in short and "Say they will leave: " in short
    shifts = html.split("<h2>Shifts against the baseline</h2>")[1].split("<details>")[0]
    assert "72h after announced" in shifts and "24h after" not in shifts and "7d after" not in shifts
    assert "<details><summary>Every window" in html
    assert '<source media="(max-width: 700px)" srcset="timeline-small.png">' in html


def test_the_digest_says_its_basis_once_in_points_and_never_repeats_its_headline(month: Path, tmp_path: Path) -> None:
    run(month, "digest", "--dry-run", "--force")
    message = next((tmp_path / "dashboards" / EVENT).glob("digest-*.eml")).read_bytes()
    mail = BytesParser(policy=policy.default).parsebytes(message)
    subject = str(mail["Subject"])
    assert re.search(r"— negativity \d+(\.\d)?\u00a0%, ([+−]\d+(\.\d)?|±0) pts vs baseline", subject), subject
    assert not re.search(r"[+−]\d+ %", subject)  # never a relative change of a share
    text = " ".join(mail.get_body(("plain",)).get_content().split())  # type: ignore[union-attr]
    headline, lead = text.split(" Digest for ")[1].split(". ", 2)[:2]
    assert headline.lower().endswith(subject.split(" — ", 1)[1].lower().replace("\u00a0", " "))  # said once
    assert "negativ" not in lead.lower()  # the lead gives volume and tone, not the headline again
    assert "Compared with the baseline: the days before the first milestone" in text
    assert " new " not in text and "| new" not in text
    [image] = [part for part in mail.walk() if part.get_content_type() == "image/png"]
    assert image.get_content()[16:24] == (640).to_bytes(4, "big") + (420).to_bytes(4, "big")


# ---- the reaction's shape: a bent curve, a partial last bin ------------------------------------------------


def bend(metric: str, slopes: tuple[float, float], interval: tuple[float, float], verdict: str) -> CurveBend:
    at = MILESTONES["reversed"]
    return CurveBend(metric, at - timedelta(days=3), at + timedelta(days=3), 3, 3, 30, 30, *slopes,
                     slopes[1] - slopes[0], *interval, verdict)  # fmt: skip


def with_bends(negative: CurveBend | None, volume: CurveBend | None) -> Any:
    analysis = make_analysis()
    reversal = MilestoneShape("reversed", None, None, None, 10.0, 20.0, 0.3, 0.2, negative, volume)
    return replace(analysis, shapes=[*analysis.shapes, reversal])


def test_a_bent_curve_is_one_plain_sentence_in_the_verdict_and_no_change_is_none() -> None:
    negative = bend("negative_share", (0.2, -0.2), (-0.75, -0.05), "bent")
    volume = bend("volume", (-0.16, -3.59), (-6.64, -0.21), "bent")
    lines = verdict(with_bends(negative, volume))
    assert lines[4:] == [
        "Negativity turned down after reversed (20 Dec): its trend went from +20 pts to −20 pts a day "
        "(3 days before against 3 days after; change −40 pts, 95 % interval −75 to −5).",
        "Volume fell faster after reversed (20 Dec): its trend went from −0.2 to −3.6 posts an hour a day "
        "(3 days before against 3 days after; change −3.4, 95 % interval −6.6 to −0.2).",
    ]
    flat = bend("negative_share", (0.01, 0.012), (-0.02, 0.024), "no clear change")
    thin = bend("volume", (1.0, -1.0), (math.nan, math.nan), "cannot tell (too few posts)")
    assert len(verdict(with_bends(flat, thin))) == 4


def partial_analysis() -> Any:
    """make_analysis whose data stop at 14:10 in the last hour's bin (an archive cut mid-hour)."""
    analysis = make_analysis()
    last = analysis.bins.index[-1].to_pydatetime()
    return replace(analysis, data_end=last + timedelta(minutes=10))


def test_a_partial_last_bin_is_hatched_and_named_in_both_timelines_and_left_out_of_the_comparison() -> None:
    analysis = partial_analysis()
    label = f"last bin partial (to {analysis.data_end:%H:%M})"
    with chart_style():
        figure = timeline_figure(analysis)
        drawn(figure)
        legend = [text.get_text() for text in figure.axes[0].get_legend().get_texts()]
        assert label in legend
        hatched = [patch for axes in figure.axes for patch in axes.patches if patch.get_hatch() == "///"]
        assert len(hatched) == 2  # the volume panel and the sentiment panel
        compared = compare_figure([analysis, make_analysis(event="whole-2012")])
        lines = [line for line in compared.axes[0].get_lines() if line.get_label().startswith(("instagram", "whole"))]
        assert [len(line.get_xdata()) for line in lines] == [len(analysis.bins) - 1, len(analysis.bins)]
    with chart_style(SMALL_STYLE):
        small = small_timeline_figure(analysis)
        assert small.axes[1].get_xlabel() == label
    whole = make_analysis()
    with chart_style():
        assert "last bin" not in " ".join(t.get_text() for t in timeline_figure(whole).axes[0].get_legend().get_texts())


def test_a_long_title_wraps_inside_the_small_timeline_instead_of_running_off_it() -> None:
    # the demo's own title on the 640-px chart ran off its right edge: "… (simulated)  (SIMULATE"
    analysis = replace(make_analysis(), title="Instagram terms of service change (simulated)")
    assert analysis.coverage.simulated
    with chart_style(SMALL_STYLE):
        figure = small_timeline_figure(analysis)
        renderer = drawn(figure)
        title = figure.get_suptitle()
        box = figure._suptitle.get_window_extent(renderer)
    assert title.endswith("(SIMULATED)") and box.x1 <= figure.bbox.x1
    assert box.y0 >= max(axes.get_tightbbox(renderer).y1 for axes in figure.axes[:1])  # above the milestone names


def test_an_archive_that_stops_inside_a_bin_marks_it_partial_and_a_live_collection_after_it_does_not(
    month: Path, tmp_path: Path
) -> None:
    # The month's last post is at 26 Dec 23:00, inside the 18:00–24:00 bin: partial to 23:00.
    found = summary(tmp_path)
    assert found["data_end"] == "2012-12-26T23:00:00Z"
    assert [row["partial"] for row in found["series"][-2:]] == [False, True]
    assert "The last bar (26 Dec 2012, 18:00 UTC) is partial: the data end at 23:00, so it is short, not a fall." in page(tmp_path)
    ws = open_workspace(month)
    ws.store.finish_run(ws.store.start_run("collect", EVENT, "x"), "ok")  # collected live today: the bin is whole
    ws.store.close()
    run(month, "report")
    found = summary(tmp_path)
    assert found["data_end"] == found["window"]["end"] and not any(row["partial"] for row in found["series"])
    assert "is partial" not in page(tmp_path)


def test_a_window_that_ends_inside_a_bin_is_named_as_the_cut_not_the_data(
    write_config: Callable[..., Path], tmp_path: Path
) -> None:
    # The window ends at 26 Dec 20:00, inside the 18:00–24:00 bin; the archive goes on to 23:00, so the last
    # post inside the window (19:00) is not where the data end: the bar is short because of the window.
    event = {**BASE_CONFIG["events"][0], "milestones": {"announced": "2012-12-17"}, "end": "2012-12-26T20:00:00Z"}
    event.pop("bin")
    config = write_config(events=[event])
    posts = storm(ANNOUNCED - timedelta(days=7), 7 * 24, 1, "instagram is fine today") + storm(ANNOUNCED, 10 * 24, 1)
    run(config, "import", str(scraped_archive(tmp_path / "cut.csv", posts)), "--event", EVENT)
    run(config, "score")
    run(config, "report")
    found = summary(tmp_path)
    assert found["window"]["end"] == found["data_end"] == "2012-12-26T20:00:00Z"
    assert found["series"][-1]["bin"] == "2012-12-26T18:00:00Z" and found["series"][-1]["partial"]
    html = page(tmp_path)
    assert "The last bar (26 Dec 2012, 18:00 UTC) is partial: the event window ends at 20:00, so it is short" in html
    assert "4 posts from 26 Dec 2012, 20:00 UTC on are outside the event window and not analysed." in html


def test_the_shift_table_folds_each_row_into_short_lines_on_a_phone() -> None:
    from monitor.report import render_page

    html = render_page(make_analysis(), ["timeline.png"])
    phone = html.split("@media (max-width: 600px)")[1].split("</style>")[0]
    assert "table.shifts td { display: inline;" in phone and 'content: "\\A 95 % interval "' in phone
    table = html.split('<table class="stack shifts">')[1].split("</table>")[0]
    header = re.findall(r"<th>([^<]+)</th>", table)
    assert header == ["after", "metric", "baseline", "after", "change", "95 % interval", "p", "n (baseline / after)"]
    first = table.split("<tbody>")[1].split("</tr>")[0]  # on a desktop every number keeps its column
    cells = re.findall(r'<td class="([^"]+)">([^<]*)</td>', first)
    assert [name.split()[:2] for name, _ in cells] == [
        ["lead"], ["lead"], ["num", "base"], ["num", "later"], ["num", "change"], ["num", "interval"], ["num", "p"],
        ["num", "count"],
    ]  # fmt: skip
    assert "</td><td" in first and "</td>\n" not in first  # no white space between cells: it would show on a phone


def test_date_ticks_are_evenly_spaced_across_a_month_end_and_never_overprint() -> None:
    import numpy as np

    analysis = make_analysis()  # 10 Dec 2012 to 23 Jan 2013: on days of the month, 29 Dec and 1 Jan would be ticks
    with chart_style():
        figure = timeline_figure(analysis)
        renderer = drawn(figure)
        bottom = figure.axes[1]
        left, right = bottom.get_xlim()
        ticks = [tick for tick in bottom.get_xticks() if left <= tick <= right]
        assert len(set(np.round(np.diff(ticks), 6))) == 1, ticks
        labels = [label.get_window_extent(renderer) for label in bottom.get_xticklabels() if label.get_text()]
        assert not overlaps(labels)


@pytest.mark.parametrize("baseline_hours", [*range(104, 124, 2), 168])
def test_labels_above_the_timeline_keep_an_em_apart_or_go_up_a_line(baseline_hours: int) -> None:
    # "baseline" beside "announced 17 Dec" read as one label when they nearly touched (the paid-Blue day chart,
    # whose wide legend narrowed the plot below what the labels' widths were estimated for)
    analysis = replace(partial_analysis(), baseline_start=ANNOUNCED - timedelta(hours=baseline_hours))
    with chart_style():
        figure = timeline_figure(analysis)
        renderer = drawn(figure)
        boxes = sorted(top_label_boxes(figure, renderer), key=lambda box: box.x0)
        em = 15 * 100 / 72  # px at 15 pt
        for left, right in combinations(boxes, 2):
            same_line = abs(left.y1 - right.y1) < 1
            assert not same_line or right.x0 - left.x1 >= 0.8 * em or left.x0 - right.x1 >= 0.8 * em, (left, right)


@pytest.mark.parametrize("sources", [("simulated",), ("x", "bluesky")])
def test_the_timeline_panels_name_their_scales_without_running_into_each_other(sources: tuple[str, ...]) -> None:
    with chart_style():
        figure = timeline_figure(make_analysis(sources=sources))
        renderer = drawn(figure)
        labels = [axes.yaxis.label for axes in figure.axes if axes.yaxis.label.get_text()]
        assert len(labels) == 2 * len(sources) + 1  # volume; compound and share; posts and tone per network
        boxes = [label.get_window_extent(renderer) for label in labels]
        assert not overlaps(boxes), [label.get_text() for label in labels]
