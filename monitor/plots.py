"""Analysis → PNG charts (timeline, compare, shift, drivers), drawn with matplotlib's object API.

Figures are `matplotlib.figure.Figure` objects on the Agg canvas, never pyplot state, so the daemon
can draw every hour without leaking figures. Each PNG is written to a temporary file and renamed.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import BrokenExecutor, Executor
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from monitor.analysis import BIN_WIDTH, Analysis, Shift, Spike
from monitor.wording import (
    bin_name,
    finite_shift,
    key_shift,
    p_value,
    partial_bin_label,
    per_bin,
    short_spike_size,
)

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

WIDTH_IN, HEIGHT_IN, DPI = 16.0, 9.0, 100  # 1600 x 900 px
# Okabe-Ito: distinguishable with every common colour-vision deficiency.
OKABE_ITO = ["#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000"]
BLUE, ORANGE, GREEN, VERMILLION, PURPLE, SKY, YELLOW, BLACK = OKABE_ITO
GREY = "#8C8C8C"
# Big enough to read when an email client shows the 1600 px image at half its width.
STYLE: dict[str, Any] = {
    "font.size": 16,
    "axes.titlesize": 17,
    "axes.labelsize": 16,
    "xtick.labelsize": 15,
    "ytick.labelsize": 15,
    "legend.fontsize": 14,
    "figure.titlesize": 22,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.color": "#E5E5E5",
    "grid.linewidth": 0.8,
    "axes.axisbelow": True,
    # Titles, terms, aspects and milestone names are user text: "$9 to $12" is prices, not math ("9to12").
    # No label of ours uses mathtext, so every text of every chart is drawn as written.
    "text.parse_math": False,
}
# Made for ~600 px (an email, a phone): a 640 x 420 px figure with type sized for it, fewer labels.
SMALL_WIDTH_IN, SMALL_HEIGHT_IN = 6.4, 4.2
SMALL_STYLE: dict[str, Any] = {
    **STYLE,
    "font.size": 12,
    "axes.titlesize": 12,
    "axes.labelsize": 11,
    "xtick.labelsize": 11,
    "ytick.labelsize": 11,
    "legend.fontsize": 10.5,
    "figure.titlesize": 14,
}
HIGHLIGHT = "#FFF0A8"  # the digest's own period behind the bars
CHART_FILES = ("timeline.png", "timeline-small.png", "compare.png", "shift.png", "drivers.png")
CHART_SIZES = {name: (640, 420) if "small" in name else (1600, 900) for name in CHART_FILES}  # px
SHIFT_WINDOW_ORDER = {"24h": 0, "72h": 1, "7d": 2}
POOLED_BINS = 6  # hourly sentiment is drawn pooled over 6 h: single hours are too thin to read
LABELLED_SPIKES = 3  # the largest spikes are named on the chart; every spike is in the page's table
SPIKE_MERGE_GAP = 0.015  # spikes closer than this share of the time axis are drawn (and named) as one
REPOST = "#F5C46B"  # reposts: a light orange beside the originals' dark blue, apart in hue and lightness
SPIKE_TINT = "#FBE3D6"  # a volume spike's span: a pale vermillion, the colour of its marker
PARTIAL_HATCH = "#B0B0B0"  # the hatching over a partial last bin
# behind a spike's label: a milestone's dashed line at the same moment would otherwise run through its text
LABEL_BACKGROUND = {"facecolor": "white", "alpha": 0.85, "edgecolor": "none", "pad": 1}


@dataclass(frozen=True)
class SpikeSpot:
    """Where a volume spike group is on a saved timeline, in percent of the image: the page lays a link there."""

    spike: Spike  # the group's highest peak: the link goes to its section
    left: float  # the span's left edge, % of the image's width
    top: float  # the volume panel's top, % of the image's height
    width: float
    height: float


@dataclass(frozen=True)
class Charts:
    """The charts written, and where each timeline's spike groups are on it (file name → spots)."""

    files: list[Path]
    spots: dict[str, list[SpikeSpot]]


TIMELINE_FILES = ("timeline.png", "timeline-small.png")
# drawn by a second process when the report has one: about half of the drawing time of a big event
ELSEWHERE = ("timeline.png", "compare.png", "drivers.png")


def write_charts(
    analysis: Analysis, every_event: Sequence[Analysis], out_dir: Path, elsewhere: Executor | None = None
) -> Charts:
    """Draw the charts of an event into out_dir; every_event feeds compare.png. With `elsewhere` (a second
    process), it draws the ELSEWHERE charts meanwhile (they go to it pickled: every event only with compare.png);
    the charts of a lost process are drawn here."""
    try:
        asked = {} if elsewhere is None else {
            name: elsewhere.submit(draw_chart, name, analysis, every_event if name == "compare.png" else (), out_dir)
            for name in ELSEWHERE
        }
    except BrokenExecutor:  # it was lost before: its charts are drawn here (those asked fail as well)
        asked = {}
    spots = {name: draw_chart(name, analysis, every_event, out_dir) for name in CHART_FILES if name not in asked}
    for name, future in asked.items():
        try:
            spots[name] = future.result()
        except BrokenExecutor:
            spots[name] = draw_chart(name, analysis, every_event, out_dir)
    return Charts([out_dir / name for name in CHART_FILES], {name: spots[name] for name in TIMELINE_FILES})


DRAWERS: dict[str, Callable[[Analysis, Sequence[Analysis]], Figure]] = {
    "timeline.png": lambda analysis, _every: timeline_figure(analysis),
    "timeline-small.png": lambda analysis, _every: small_timeline_figure(analysis),
    "compare.png": lambda analysis, every_event: compare_figure(every_event or [analysis]),
    "shift.png": lambda analysis, _every: shift_figure(analysis),
    "drivers.png": lambda analysis, _every: drivers_figure(analysis),
}


def draw_chart(name: str, analysis: Analysis, every_event: Sequence[Analysis], out_dir: Path) -> list[SpikeSpot]:
    """Draw the chart `name` (of CHART_FILES) into out_dir; where its spike groups are, if it is a timeline."""
    style = SMALL_STYLE if "small" in name else STYLE
    figure = draw_and_save(lambda: DRAWERS[name](analysis, every_event), out_dir / name, style)
    return spike_spots(figure, analysis) if name in TIMELINE_FILES else []


def write_chart(draw: Callable[[], Figure], path: Path, style: dict[str, Any] = STYLE) -> Path:
    """Draw one figure in the house style and save it (atomically) as path."""
    draw_and_save(draw, path, style)
    return path


def draw_and_save(draw: Callable[[], Figure], path: Path, style: dict[str, Any] = STYLE) -> Figure:
    """write_chart, giving back the saved figure: its layout is final, so data map to the PNG's pixels."""
    with chart_style(style):
        figure = draw()
        save_png(figure, path)
    return figure


def spike_spots(figure: Figure, analysis: Analysis) -> list[SpikeSpot]:
    """Each volume spike group's span over the (first) volume panel of a saved timeline, in % of the image,
    from matplotlib's own data-to-pixel transform: the spans as drawn, whatever the layout did."""
    if analysis.bins.empty or not figure.axes:
        return []
    axes = figure.axes[0]
    left, right = axes.get_xlim()
    panel = axes.get_window_extent()
    width, height = figure.bbox.width, figure.bbox.height
    spots = []
    for group in spike_groups(analysis.spikes, right - left):
        start = num(group.start)
        x0, x1 = (axes.transData.transform((x, 0))[0] for x in (start, num(group.end) + bar_width_days(analysis.bin)))
        spots.append(SpikeSpot(group.peak, 100 * x0 / width, 100 * (1 - panel.y1 / height),
                               100 * (x1 - x0) / width, 100 * panel.height / height))  # fmt: skip
    return spots


def small_timeline_png(analysis: Analysis, highlight: tuple[datetime, datetime] | None = None) -> bytes:
    """The ~600 px timeline as PNG bytes, for an email: highlight is the digest's own period."""
    from io import BytesIO

    buffer = BytesIO()
    with chart_style(SMALL_STYLE):
        small_timeline_figure(analysis, highlight).savefig(buffer, format="png", dpi=DPI)
    return buffer.getvalue()


def write_timeline(analysis: Analysis, path: Path) -> Path:
    """timeline.png alone, for an email sent before any report drew it."""
    return write_chart(lambda: timeline_figure(analysis), path)


@contextmanager
def chart_style(style: dict[str, Any] = STYLE) -> Iterator[None]:
    """The house style for figures created and saved inside the block."""
    import matplotlib

    with matplotlib.rc_context(style):  # type: ignore[arg-type]
        yield


def save_png(figure: Figure, path: Path) -> None:
    """Write the figure as a PNG of exactly WIDTH x HEIGHT px; readers never see a half-written file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.part")
    try:
        figure.savefig(temporary, format="png", dpi=DPI)
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def new_figure(rows: int = 1, cols: int = 1, size: tuple[float, float] = (WIDTH_IN, HEIGHT_IN), **grid: Any) -> tuple[Figure, Any]:
    """A constrained-layout figure (of the house size unless given, in inches) on the Agg canvas, and its axes."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=size, dpi=DPI, layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots(rows, cols, squeeze=False, **grid)
    return figure, axes


# ---- shared pieces --------------------------------------------------------------------------


def coverage_line(analysis: Analysis) -> str:
    """Posts, sources, dates and the simulated label, for a subtitle."""
    coverage = analysis.coverage
    zone = ZoneInfo(analysis.timezone)
    parts = [f"{coverage.posts:,} posts ({coverage.scored:,} scored, {coverage.reposts:,} reposts)"]
    if coverage.per_source:
        networks = sorted({source.split("@")[0] for source in coverage.per_source})
        parts.append(("source: " if len(networks) == 1 else "sources: ") + ", ".join(networks))
    if coverage.first_post and coverage.last_post:
        first, last = coverage.first_post.astimezone(zone), coverage.last_post.astimezone(zone)
        parts.append(f"{first:%d %b %Y} – {last:%d %b %Y} ({analysis.timezone})")
    if coverage.simulated:
        parts.append("SIMULATED DATA")
    return "  ·  ".join(parts)


def chart_title(analysis: Analysis) -> str:
    title = analysis.title or analysis.event
    return title if analysis.platform.lower() in title.lower() else f"{analysis.platform}: {title}"


def date_axis(axes: Axes, timezone: str, ticks: tuple[int, int] = (3, 10), style: str = "%d %b\n%Y") -> None:
    """Dates on the x axis in the event's zone, with a locator that keeps labels apart.

    ticks is (fewest, most): (3, 10) and (2, 6) find an interval for every range from minutes to years (some
    pairs, such as (3, 6) or (5, 10), leave ranges like 61 h or 109 h without one and warn).
    Over more than three days the ticks are evenly spaced days from the first: on days of the month (1, 3, …,
    31) a month's 31st and the next month's 1st would both get a label, overprinting each other."""
    from matplotlib.dates import AutoDateLocator, DateFormatter

    zone = ZoneInfo(timezone)
    left, right = axes.get_xlim()
    locator = AutoDateLocator(tz=zone, minticks=ticks[0], maxticks=ticks[1], interval_multiples=right - left <= 3)
    axes.xaxis.set_major_locator(locator)
    axes.xaxis.set_major_formatter(DateFormatter(style, tz=zone))


def label_milestones(axes: Axes, analysis: Analysis, fontsize: float = 15) -> None:
    """Every milestone as a dashed line, named with its date on a top axis, the baseline named beside them."""
    zone = ZoneInfo(analysis.timezone)
    ordered = sorted(analysis.milestones.items(), key=lambda item: item[1])
    milestone_lines(axes, analysis.milestones)
    marks = [TopLabel(num(moment), f"{name} {moment.astimezone(zone):%d %b}") for name, moment in ordered]
    middle = analysis.baseline_start + (analysis.baseline_end - analysis.baseline_start) / 2
    baseline = f"baseline ({analysis.baseline_posts:,} posts)" if analysis.baseline_fallback else "baseline"
    marks.append(TopLabel(num(middle), baseline, "#555555", tick=False))
    top_labels(axes, marks, fontsize)


@dataclass(frozen=True)
class TopLabel:
    """A name above the plot at an x position: a milestone's (with a tick) or the baseline's (without)."""

    x: float
    text: str
    colour: str = BLACK
    tick: bool = True


def top_labels(axes: Axes, marks: Sequence[TopLabel], fontsize: float = 15) -> None:
    """Labels on a secondary top axis; each goes on the lowest line where it overprints no other label.

    A secondary axis (not free text) so the constrained layout makes room for it and nothing is clipped.
    Widths are measured on the laid-out plot, and neighbours on a line keep an em apart: estimated widths left
    "baseline" almost touching "announced 09 Nov" on a plot narrowed by a wide legend, read as one label.
    """
    ordered = sorted(marks, key=lambda mark: mark.x)
    widths, em = text_widths(axes, [mark.text for mark in ordered], fontsize)
    levels = stack_levels([(m.x - w / 2, m.x + w / 2) for m, w in zip(ordered, widths, strict=True)], em)
    top = axes.secondary_xaxis("top")
    top.set_xticks([m.x for m in ordered], [m.text + "\n" * level for m, level in zip(ordered, levels, strict=True)])
    top.tick_params(length=6, labelsize=fontsize)
    top.spines["top"].set_visible(False)
    for label, tick, mark in zip(top.get_xticklabels(), top.xaxis.get_major_ticks(), ordered, strict=True):
        label.set_color(mark.colour)
        tick.tick2line.set_visible(mark.tick)
        tick.tick1line.set_visible(mark.tick)


def text_widths(axes: Axes, texts: Sequence[str], fontsize: float) -> tuple[list[float], float]:
    """Each text's width and one em, in x data units, measured once the layout has given the plot its width."""
    from matplotlib.font_manager import FontProperties

    figure = axes.figure
    figure.draw_without_rendering()  # type: ignore[union-attr]
    renderer = figure.canvas.get_renderer()  # type: ignore[attr-defined]
    left, right = axes.get_xlim()
    per_pixel = (right - left) / float(axes.bbox.width)
    font = FontProperties(size=fontsize)
    widths = [renderer.get_text_width_height_descent(text, font, ismath=False)[0] * per_pixel for text in texts]
    return widths, fontsize * DPI / 72 * per_pixel


def char_width(axes: Axes, fontsize: float) -> float:
    """A character's width in x data units, a little wide on purpose (0.6 em; DejaVu Sans averages 0.55) and the
    plot taken as 80 % of the figure (the layout is not done yet): labels kept apart by it never touch."""
    left, right = axes.get_xlim()
    return fontsize * DPI / 72 * 0.6 / (float(axes.figure.bbox.width) * 0.8) * (right - left)


def stack_levels(extents: Sequence[tuple[float, float]], gap: float) -> list[int]:
    """For extents sorted by start, the lowest line each fits on without overlapping one already there."""
    ends: list[float] = []  # per line, where its last label ends
    levels = []
    for start, end in extents:
        level = next((n for n, line_end in enumerate(ends) if start > line_end + gap), len(ends))
        if level < len(ends):
            ends[level] = end
        else:
            ends.append(end)
        levels.append(level)
    return levels


def num(moment: datetime) -> float:
    """A moment as matplotlib's date number (days since its epoch), the x of every timeline chart."""
    from matplotlib.dates import date2num

    return float(date2num(moment))


def index_nums(index: pd.Index) -> Any:
    """A bin index of aware timestamps as date numbers."""
    import pandas as pd
    from matplotlib.dates import date2num

    return date2num(pd.DatetimeIndex(index).to_pydatetime())


def milestone_lines(axes: Axes, milestones: dict[str, datetime]) -> None:
    for moment in milestones.values():
        axes.axvline(num(moment), color=BLACK, linewidth=1.6, linestyle="--", zorder=4)


def smooth(series: pd.Series, bin_size: str) -> pd.Series:
    """A 6-hour centred mean for hourly series, so a line reads as a trend, not noise."""
    return series.rolling(6, center=True, min_periods=1).mean() if bin_size == "hour" else series


def pooling(bin_size: str) -> int:
    """How many bins a sentiment line pools: 6 for hours (single hours are too thin), else 1."""
    return POOLED_BINS if bin_size == "hour" else 1


def hours_per_bin(bin_size: str) -> float:
    return BIN_WIDTH[bin_size].total_seconds() / 3600


def no_data(axes: Axes, message: str) -> None:
    axes.text(0.5, 0.5, message, transform=axes.transAxes, ha="center", va="center", fontsize=18, color=GREY)
    axes.set_xticks([])
    axes.set_yticks([])


# ---- timeline.png ---------------------------------------------------------------------------


def timeline_figure(analysis: Analysis) -> Figure:
    """Volume bars over sentiment lines on one time axis, milestones and spikes marked."""
    networks = analysis.per_network()
    sources = sorted(networks["network"].unique()) if len(networks) else []
    rows = 4 if len(sources) > 1 else 2
    ratios = [1.1, 1.0, 0.7, 0.7][:rows]
    figure, axes = new_figure(rows, 1, sharex=True, gridspec_kw={"height_ratios": ratios})
    figure.suptitle(chart_title(analysis), x=0.01, ha="left", fontweight="bold")
    volume_axes, sentiment_axes = axes[0][0], axes[1][0]
    volume_axes.set_title(coverage_line(analysis), loc="left", color="#444444", fontsize=15)
    if analysis.bins.empty:
        no_data(volume_axes, "no posts stored for this event yet")
        return figure
    draw_volume(volume_axes, analysis)
    draw_sentiment(sentiment_axes, analysis, short_labels=rows == 4)
    if rows == 4:
        draw_per_source(axes[2][0], networks, sources, analysis.bin)
        draw_source_tone(axes[3][0], networks, sources, analysis.bin)
    for row in axes:
        shade_baseline(row[0], analysis)
    for row in axes[1:]:
        mark_partial_bin(row[0], analysis)
    date_axis(axes[-1][0], analysis.timezone)
    axes[-1][0].set_xlabel(f"date ({analysis.timezone}), one bar per {bin_name(analysis.bin)}")
    label_milestones(volume_axes, analysis)
    for row in axes[1:]:
        milestone_lines(row[0], analysis.milestones)
    figure.align_ylabels([row[0] for row in axes])
    return figure


def small_timeline_figure(analysis: Analysis, highlight: tuple[datetime, datetime] | None = None) -> Figure:
    """The timeline for ~600 px: posts per bin over the negative share, milestones and the largest spike named,
    the highlighted period (a digest's day) shaded."""
    figure, axes = new_figure(2, 1, size=(SMALL_WIDTH_IN, SMALL_HEIGHT_IN), sharex=True,
                              gridspec_kw={"height_ratios": [1.3, 1.0]})  # fmt: skip
    figure.suptitle(chart_title(analysis) + ("  (SIMULATED)" if analysis.coverage.simulated else ""),
                    x=0.01, ha="left", fontweight="bold", wrap=True)  # fmt: skip
    volume_axes, share_axes = axes[0][0], axes[1][0]
    if analysis.bins.empty:
        no_data(volume_axes, "no posts yet")
        return figure
    draw_volume(volume_axes, analysis, fontsize=11, spikes_named=1)
    volume_axes.get_legend().remove()
    share_axes.set_xlabel(partial_bin_label(analysis) or "", loc="right", color="#555555")  # no room for a legend
    volume_axes.set_ylabel(f"posts {per_bin(analysis.bin)}")
    window = pooling(analysis.bin)
    times = index_nums(analysis.bins.index) + bar_width_days(analysis.bin) / 2
    share_axes.plot(times, pooled_share(analysis.bins, "negative_share", window) * 100, color=VERMILLION, linewidth=1.8)
    share_axes.set_ylim(0, 100)
    share_axes.set_ylabel("negative, %")
    mark_partial_bin(share_axes, analysis)
    for row in axes:
        shade_baseline(row[0], analysis)
        milestone_lines(row[0], analysis.milestones)
        if highlight is not None:
            row[0].axvspan(num(highlight[0]), num(highlight[1]), color=HIGHLIGHT, linewidth=0, zorder=0)
    label_small_top(volume_axes, analysis, highlight)
    date_axis(share_axes, analysis.timezone, ticks=(2, 6), style="%d %b")
    return figure


def label_small_top(axes: Axes, analysis: Analysis, highlight: tuple[datetime, datetime] | None) -> None:
    """Milestone names (no dates: the axis has them) and 'this digest' above the small chart."""
    marks = [TopLabel(num(moment), name) for name, moment in analysis.milestones.items()]
    middle = analysis.baseline_start + (analysis.baseline_end - analysis.baseline_start) / 2
    if analysis.bins.index[0] < middle:  # the baseline is drawn only when the data reach back into it
        marks.append(TopLabel(num(middle), "baseline", "#555555", tick=False))
    if highlight is not None:
        marks.append(TopLabel(num(highlight[0] + (highlight[1] - highlight[0]) / 2), "this digest", "#8A6D00", tick=False))
    top_labels(axes, marks, fontsize=10.5)


def shade_baseline(axes: Axes, analysis: Analysis) -> None:
    axes.axvspan(
        num(analysis.baseline_start), num(analysis.baseline_end), color=GREY, alpha=0.15, linewidth=0, zorder=0
    )


def bar_width_days(bin_size: str) -> float:
    """One bar's width in days: hour bars touch (a gap would be wider than the bar), longer bars keep a gap."""
    days = hours_per_bin(bin_size) / 24
    return days if bin_size == "hour" else days * 0.85


def draw_volume(axes: Axes, analysis: Analysis, fontsize: float = 14, spikes_named: int = LABELLED_SPIKES) -> None:
    """Originals and reposts stacked, the platform's own count as a line, spikes marked; the legend outside."""
    bins = analysis.bins
    width = bar_width_days(analysis.bin)
    times = index_nums(bins.index)
    axes.bar(times, bins["originals"], width=width, color=BLUE, label="originals", align="edge", linewidth=0)
    axes.bar(
        times, bins["reposts"], width=width, bottom=bins["originals"], color=REPOST, label="reposts",
        align="edge", linewidth=0,
    )  # fmt: skip
    if bins["counted"].notna().any():
        axes.plot(times, bins["counted"], color=BLACK, linewidth=1.5, label="counted by the platform")
    top = max(float(bins["volume"].max()), float(bins["counted"].max(skipna=True) or 0), 1)
    axes.set_ylim(0, top * 1.35)
    first_milestone = min(num(moment) for moment in analysis.milestones.values())  # visible even before the data
    axes.set_xlim(min(times[0], first_milestone) - width, times[-1] + 2 * width)
    mark_volume_spikes(axes, analysis, fontsize, spikes_named)
    mark_partial_bin(axes, analysis, named=True)
    axes.set_ylabel(f"posts {per_bin(analysis.bin)}")
    # outside the plot, right of it: a legend inside would cover bars or spike labels somewhere on real data
    axes.legend(loc="upper left", bbox_to_anchor=(1.005, 1), frameon=False, borderaxespad=0)


def mark_partial_bin(axes: Axes, analysis: Analysis, named: bool = False) -> None:
    """A partial last bin (the data stop inside it): hatched behind every panel, its bar lightened; named in the
    legend of the panel that has one (`named`). A partial bin of two posts is a sliver of a bar: the hatching shows."""
    start, label = analysis.partial_bin(), partial_bin_label(analysis)
    if start is None or label is None:
        return
    left = num(start.to_pydatetime())
    width = bar_width_days(analysis.bin)
    axes.axvspan(left, left + width, facecolor="none", hatch="///", edgecolor=PARTIAL_HATCH, linewidth=0, zorder=0,
                 label=label if named else None)  # fmt: skip
    if named:
        value = float(analysis.bins["volume"].iloc[-1])
        axes.bar([left], [value], width=width, align="edge", color="white", alpha=0.55, linewidth=0, zorder=3)


@dataclass(frozen=True)
class SpikeGroup:
    """Volume spikes close together on the time axis, drawn as one span with one marker at the highest peak."""

    start: datetime
    end: datetime
    peak: Spike


def spike_groups(spikes: Sequence[Spike], span_days: float) -> list[SpikeGroup]:
    """Volume spikes in time order, neighbours closer than SPIKE_MERGE_GAP of the axis merged into one group."""
    groups: list[SpikeGroup] = []
    for spike in sorted((s for s in spikes if s.kind == "volume"), key=lambda s: s.start):
        last = groups[-1] if groups else None
        if last and (spike.start - last.end).total_seconds() / 86400 <= SPIKE_MERGE_GAP * span_days:
            peak = spike if spike.peak_value > last.peak.peak_value else last.peak
            groups[-1] = SpikeGroup(last.start, max(last.end, spike.end), peak)
        else:
            groups.append(SpikeGroup(spike.start, spike.end, spike))
    return groups


def mark_volume_spikes(axes: Axes, analysis: Analysis, fontsize: float, named: int) -> None:
    """Each spike group: its span tinted, a triangle over its peak; only the `named` largest get a label,
    placed on the lowest line where it overprints no other label."""
    left, right = axes.get_xlim()
    groups = spike_groups(analysis.spikes, right - left)
    for number, group in enumerate(groups):
        axes.axvspan(num(group.start), num(group.end) + bar_width_days(analysis.bin), color=SPIKE_TINT,
                     linewidth=0, zorder=0, label="volume spike" if number == 0 else None)  # fmt: skip
        axes.plot([num(group.peak.peak)], [group.peak.peak_value * 1.04], marker="v", color=VERMILLION,
                  markersize=fontsize * 0.8, linewidth=0, zorder=5)  # fmt: skip
    largest = sorted(groups, key=lambda g: g.peak.peak_value, reverse=True)[:named]
    chosen = sorted(largest, key=lambda g: g.peak.peak)
    texts = [f"×{short_spike_size(g.peak, analysis).lstrip('×')}" for g in chosen]
    em = char_width(axes, fontsize)
    xs = [num(g.peak.peak) for g in chosen]
    aligns = [edge_alignment((x - left) / (right - left)) for x in xs]
    extents = [label_extent(x, len(t) * em, align) for x, t, align in zip(xs, texts, aligns, strict=True)]
    levels = stack_levels(extents, em)
    for group, text, level, align in zip(chosen, texts, levels, aligns, strict=True):
        axes.annotate(
            text, (num(group.peak.peak), group.peak.peak_value * 1.04), xytext=(0, 8 + level * fontsize * 1.4),
            textcoords="offset points", ha=align, fontsize=fontsize, color=VERMILLION, fontweight="bold",
            va="bottom", zorder=6, bbox=LABEL_BACKGROUND,
        )  # fmt: skip


def edge_alignment(fraction: float) -> str:
    """How a label sits on its x: centred, but starting (or ending) there near an edge so it is never cut off."""
    return "left" if fraction < 0.1 else "right" if fraction > 0.9 else "center"


def label_extent(x: float, width: float, align: str) -> tuple[float, float]:
    """The x span a label of that width covers when aligned so at x."""
    start = {"left": x, "center": x - width / 2, "right": x - width}[align]
    return start, start + width


def draw_sentiment(axes: Axes, analysis: Analysis, short_labels: bool = False) -> None:
    """Mean compound with its band (left axis), negative and churn-intent shares (right axis).

    short_labels: the panel is short (four panels): long scale names would run into the next panel's; the
    legend names each line's scale either way."""
    bins = analysis.bins
    times = index_nums(bins.index) + bar_width_days(analysis.bin) / 2  # a bin's value sits at its middle
    window = pooling(analysis.bin)
    pooled = " (6 h)" if window > 1 else ""
    mean, low, high = pooled_compound(bins, window)
    axes.fill_between(times, low, high, color=BLUE, alpha=0.2, linewidth=0, label="95 % band")
    axes.plot(times, mean, color=BLUE, linewidth=2.4, label=f"mean compound{pooled} — left scale, −1 … +1")
    axes.axhline(0, color=BLUE, linewidth=1, alpha=0.5)
    axes.set_ylim(-1, 1)
    axes.set_ylabel("compound" if short_labels else "mean compound (−1 … +1)", color=BLUE)
    axes.tick_params(axis="y", colors=BLUE)
    for number, spike in enumerate(s for s in analysis.spikes if s.kind == "dip"):
        dip_label = "sentiment dip" if number == 0 else None
        axes.axvspan(num(spike.start), num(spike.end), color=PURPLE, alpha=0.15, linewidth=0, zorder=0, label=dip_label)
    shares = percent_axes(axes, "share, %" if short_labels else "share of scored posts (0–100 %)")
    shares.plot(times, pooled_share(bins, "negative_share", window) * 100, color=VERMILLION, linewidth=2.2,
                linestyle=(0, (5, 2)))  # fmt: skip
    shares.plot(times, pooled_share(bins, "churn_share", window) * 100, color=PURPLE, linewidth=2.2, linestyle=":")
    handles, labels = axes.get_legend_handles_labels()
    handles += shares.get_lines()
    labels += [f"negative{pooled} — right scale, %", "say they will leave — right scale, %"]
    axes.legend(handles, labels, loc="lower left", bbox_to_anchor=(0, 1), ncols=2, frameon=False, borderaxespad=0.2)


def percent_axes(axes: Axes, label: str) -> Axes:
    """A right-hand 0–100 % scale, its ticks written with % and its spine dashed, so it is never read as −1 … +1."""
    from matplotlib.ticker import PercentFormatter

    shares = axes.twinx()
    shares.set_ylim(0, 100)
    shares.yaxis.set_major_formatter(PercentFormatter(decimals=0))
    shares.set_ylabel(label, color="#333333")
    shares.grid(False)
    shares.spines["right"].set_visible(True)
    shares.spines["right"].set_linestyle((0, (5, 2)))
    return shares


def pooled_compound(bins: pd.DataFrame, window: int) -> tuple[pd.Series, pd.Series, pd.Series]:
    """Mean compound over a centred window of bins, weighted by scored posts, with a 95 % band.

    Pools the bins' own estimates (standard error from each bin's interval) instead of smoothing the
    band, so a quiet hour with three posts does not paint a band from -1 to +1.
    """
    weight = bins["scored"].astype(float)
    standard_error = (bins["ci_high"] - bins["ci_low"]) / (2 * 1.96)
    total = weight.rolling(window, center=True, min_periods=1).sum()
    weighted = (weight * bins["mean_compound"].fillna(0)).rolling(window, center=True, min_periods=1).sum()
    mean = weighted / total
    spread = ((weight * standard_error.fillna(0)) ** 2).rolling(window, center=True, min_periods=1).sum()
    variance = spread / total**2
    half = 1.96 * variance**0.5
    return mean, (mean - half).clip(lower=-1), (mean + half).clip(upper=1)


def pooled_share(bins: pd.DataFrame, column: str, window: int) -> pd.Series:
    """A share over a centred window of bins, weighted by scored posts (an hour with two posts weighs little)."""
    weight = bins["scored"].astype(float)
    hits = (weight * bins[column].fillna(0)).rolling(window, center=True, min_periods=1).sum()
    return hits / weight.rolling(window, center=True, min_periods=1).sum()


def _network_series(networks: pd.DataFrame, network: str, column: str) -> pd.Series:
    import pandas as pd

    rows = networks[networks["network"] == network]
    return pd.Series(rows[column].to_numpy(dtype=float), index=pd.DatetimeIndex(rows["bin"]))


def draw_per_source(axes: Axes, networks: pd.DataFrame, sources: list[str], bin_size: str) -> None:
    """One line per network: posts per bin, so a source that stops or floods shows."""
    for colour, source in zip(OKABE_ITO[1:], sources, strict=False):
        series = _network_series(networks, source, "volume")
        axes.plot(index_nums(series.index), smooth(series, bin_size), color=colour, linewidth=2, label=source)
    axes.set_ylabel("posts")
    panel_label(axes, f"posts {per_bin(bin_size)} by network")
    axes.legend(loc="upper right", ncols=len(sources), frameon=True, framealpha=0.9, edgecolor="none")


def panel_label(axes: Axes, text: str) -> None:
    """A small panel's name inside its top-left corner (a two-line y label would collide with its neighbours)."""
    box = {"facecolor": "white", "alpha": 0.85, "edgecolor": "none", "pad": 2}
    axes.text(0.005, 0.93, text, transform=axes.transAxes, va="top", ha="left", fontsize=14, bbox=box, zorder=5)


def draw_source_tone(axes: Axes, networks: pd.DataFrame, sources: list[str], bin_size: str) -> None:
    """Mean compound per network side by side, because the tone differs between networks."""
    window = pooling(bin_size)
    for colour, source in zip(OKABE_ITO[1:], sources, strict=False):
        scored = _network_series(networks, source, "scored")
        weighted = (_network_series(networks, source, "mean_compound").fillna(0) * scored).rolling(
            window, center=True, min_periods=1
        )
        tone = weighted.sum() / scored.rolling(window, center=True, min_periods=1).sum()
        axes.plot(index_nums(tone.index), tone, color=colour, linewidth=2, label=source)
    axes.axhline(0, color=GREY, linewidth=1)
    axes.set_ylim(-1, 1)
    axes.set_ylabel("compound")
    panel_label(axes, "mean compound by network (6 h)" if window > 1 else "mean compound by network")


# ---- compare.png ----------------------------------------------------------------------------


def compare_figure(analyses: Sequence[Analysis]) -> Figure:
    """Every event on days from its alignment milestone: volume against its baseline, and tone."""
    figure, axes = new_figure(2, 1, sharex=True)
    volume_axes, tone_axes = axes[0][0], axes[1][0]
    alignments = sorted({analysis.align_on for analysis in analyses})
    figure.suptitle(
        f"{len(analyses)} backlash{'es' if len(analyses) != 1 else ''} compared: days from the "
        f"{' / '.join(alignments)} date",
        x=0.01, ha="left", fontweight="bold",
    )  # fmt: skip
    simulated = [a.event for a in analyses if a.coverage.simulated]
    if simulated:
        volume_axes.set_title("SIMULATED DATA: " + ", ".join(simulated), loc="left", color="#444444", fontsize=15)
    for colour, analysis in zip(OKABE_ITO, analyses, strict=False):
        compare_lines(volume_axes, tone_axes, analysis, colour)
    label_other_milestones(volume_axes, analyses)
    for row in axes:
        row[0].axvline(0, color=BLACK, linewidth=1.6, linestyle="--")
    volume_axes.set_ylabel("posts per hour\n× baseline rate")
    if any(analysis.baseline_fallback for analysis in analyses):
        volume_axes.set_ylabel("posts per hour × baseline rate\n(or × median, see legend)")
    tone_axes.set_ylabel("mean compound")
    tone_axes.set_ylim(-1, 1)
    tone_axes.axhline(0, color=GREY, linewidth=1)
    tone_axes.set_xlabel("days from the alignment milestone (0 = dashed line)")
    # below the plot: inside it, the legend would cover a line or a milestone somewhere
    figure.legend(*volume_axes.get_legend_handles_labels(), loc="outside lower center", ncols=2, frameon=False)
    return figure


def compare_lines(volume_axes: Axes, tone_axes: Axes, analysis: Analysis, colour: str) -> None:
    """An event's rate and tone; a partial last bin is left out (its short count would draw a fall)."""
    frame = analysis.days_from if analysis.partial_bin() is None else analysis.days_from.iloc[:-1]
    if frame.empty:
        return
    per_hour = frame["volume"] / hours_per_bin(analysis.bin)
    days = frame.index.to_numpy(dtype=float)
    label = f"{analysis.event} ({analysis.platform})"
    if analysis.baseline_fallback:
        label += f"\n× its median {bin_name(analysis.bin)}: baseline holds {analysis.baseline_posts:,} posts"
    volume_axes.plot(days, smooth(per_hour / reference_rate(analysis), analysis.bin), color=colour, linewidth=2.2, label=label)
    tone_axes.plot(days, smooth(frame["mean_compound"], analysis.bin), color=colour, linewidth=2.2)
    for offset in milestone_offsets(analysis).values():
        for row in (volume_axes, tone_axes):
            row.axvline(offset, color=colour, linewidth=1.4, linestyle=":")


def milestone_offsets(analysis: Analysis) -> dict[str, float]:
    """Days from the alignment milestone to each milestone."""
    zero = analysis.milestones.get(analysis.align_on)
    if zero is None:
        return {}
    return {name: (moment - zero).total_seconds() / 86400 for name, moment in analysis.milestones.items()}


def label_other_milestones(axes: Axes, analyses: Sequence[Analysis]) -> None:
    """Name every milestone on the top axis in its event's colour, stacked so none overprints another;
    the x range widened so every event's milestones are inside it."""
    at: dict[float, list[tuple[str, str, str]]] = {}  # milestones at one x (several events' day 0): one label
    for colour, analysis in zip(OKABE_ITO, analyses, strict=False):
        for name, offset in milestone_offsets(analysis).items():
            at.setdefault(round(offset, 3), []).append((name, analysis.event, colour))
    marks = [shared_label(x, names, single=len(analyses) == 1) for x, names in at.items()]
    if marks:
        left, right = axes.get_xlim()
        xs = [mark.x for mark in marks]
        pad = max((max(xs) - min(xs)) * 0.05, 0.5)
        axes.set_xlim(min(left, min(xs) - pad), max(right, max(xs) + pad))
    top_labels(axes, marks)


def shared_label(x: float, names: list[tuple[str, str, str]], single: bool) -> TopLabel:
    """One label for the milestones (name, event, colour) at x: 'announced (a, b)' or 'effective (a) · announced (b)',
    in the event's colour when it is one event's, else black."""
    if single:
        return TopLabel(x, " · ".join(dict.fromkeys(name for name, _, _ in names)), names[0][2])
    kinds = list(dict.fromkeys(name for name, _, _ in names))
    if len(kinds) == 1:
        text = f"{kinds[0]} ({', '.join(event for _, event, _ in names)})"
    else:
        text = " · ".join(f"{name} ({event})" for name, event, _ in names)
    colours = {colour for _, _, colour in names}
    return TopLabel(x, text, colours.pop() if len(colours) == 1 else BLACK)


def reference_rate(analysis: Analysis) -> float:
    """Posts per hour an event's volume is divided by: the baseline's mean rate, or the window's median busy
    bin when the baseline is too thin to say anything (the legend then says so). 1 only without any post."""
    bins = analysis.bins
    hours = hours_per_bin(analysis.bin)
    if analysis.baseline_fallback:
        busy = bins["volume"][bins["volume"] > 0]
        rate = float(busy.median()) / hours if len(busy) else 0.0
    else:
        window = bins[(bins.index >= analysis.baseline_start) & (bins.index < analysis.baseline_end)]
        rate = float(window["volume"].mean()) / hours if len(window) else 0.0
    return rate if rate > 0 else 1.0


# ---- shift.png ------------------------------------------------------------------------------


def shift_figure(analysis: Analysis) -> Figure:
    """Compound distribution before vs after the announcement, and every mean-compound shift with its interval."""
    figure, axes = new_figure(1, 2, gridspec_kw={"width_ratios": [1.5, 1]})
    figure.suptitle(f"{chart_title(analysis)}: tone before and after", x=0.01, ha="left", fontweight="bold")
    draw_distribution(axes[0][0], analysis)
    draw_shift_intervals(axes[0][1], [s for s in analysis.shifts if s.metric == "mean_compound"], analysis.milestones)
    simulated_badge(figure, analysis)
    return figure


def simulated_badge(figure: Figure, analysis: Analysis) -> None:
    """'SIMULATED DATA' in the top right corner, level with the title."""
    if analysis.coverage.simulated:
        figure.text(
            0.99, 0.985, "SIMULATED DATA", ha="right", va="top", color=VERMILLION, fontsize=16, fontweight="bold"
        )


def draw_distribution(axes: Axes, analysis: Analysis) -> None:
    frame = analysis.distribution
    top = float(max(frame["baseline"].max(), frame["after"].max())) if not frame.empty else 0.0
    if not top > 0:  # also NaN: no scored post in the baseline nor since the announcement
        no_data(axes, "no scored posts yet")
        return
    widths = frame["right"] - frame["left"]
    axes.bar(
        frame["left"], frame["baseline"] * 100, width=widths, align="edge", color=BLUE, alpha=0.45, label="baseline"
    )
    axes.bar(frame["left"], frame["after"] * 100, width=widths, align="edge", color=ORANGE, alpha=0.45, label="after")
    axes.step(frame["left"], frame["baseline"] * 100, where="post", color=BLUE, linewidth=2)
    axes.step(frame["left"], frame["after"] * 100, where="post", color=ORANGE, linewidth=2)
    axes.set_xlim(-1, 1)
    axes.set_ylim(0, top * 100 * 1.45)
    axes.set_xlabel("compound score (−1 most negative, +1 most positive)")
    axes.set_ylabel("share of posts, %")
    axes.legend(loc="upper left", frameon=False)
    shift = key_shift(analysis.shifts, "mean_compound")
    if shift is not None:
        axes.text(
            0.98, 0.97, shift_sentence(shift), transform=axes.transAxes, ha="right", va="top", fontsize=15,
            bbox={"boxstyle": "round,pad=0.4", "facecolor": "white", "edgecolor": GREY},
        )  # fmt: skip
    axes.set_title("distribution of compound scores", loc="left")


def shift_sentence(shift: Shift) -> str:
    if not finite_shift(shift):
        return (
            f"mean compound, {shift.window} after {shift.milestone}:\n"
            f"no comparison — {shift.n_baseline:,} scored posts in the baseline, {shift.n_after:,} after"
        )
    p_text = "" if shift.p_value is None else f", {p_value(shift.p_value)}"
    return (
        f"mean compound, {shift.window} after {shift.milestone}\n"
        f"vs baseline: {shift.diff:+.2f}\n(95 % CI {shift.ci_low:+.2f} to {shift.ci_high:+.2f}{p_text})\n"
        f"{shift.baseline:+.2f} → {shift.after:+.2f}, n = {shift.n_baseline:,} / {shift.n_after:,}"
    )


def draw_shift_intervals(axes: Axes, shifts: Sequence[Shift], milestones: dict[str, datetime]) -> None:
    """A forest plot: one row per milestone and window, the difference with its 95 % interval."""
    shifts = [shift for shift in shifts if finite_shift(shift)]
    if not shifts:
        no_data(axes, "no shifts to draw:\nno scored posts in the baseline\nor after the milestones")
        return
    ordered = sorted(
        shifts,
        key=lambda s: (
            milestones.get(s.milestone, datetime.max.replace(tzinfo=UTC)),
            SHIFT_WINDOW_ORDER.get(s.window, 9),
        ),
    )
    rows = list(range(len(ordered)))[::-1]
    for row, shift in zip(rows, ordered, strict=True):
        colour = VERMILLION if shift.ci_high < 0 else (GREEN if shift.ci_low > 0 else GREY)
        axes.errorbar(
            shift.diff, row, xerr=[[shift.diff - shift.ci_low], [shift.ci_high - shift.diff]],
            fmt="o", color=colour, markersize=9, capsize=5, linewidth=2.5,
        )  # fmt: skip
    axes.axvline(0, color=BLACK, linewidth=1.2)
    axes.set_yticks(rows, [f"{s.window} after {s.milestone}" for s in ordered])
    axes.set_xlabel("change in mean compound vs baseline")
    axes.set_title("shift with 95 % interval", loc="left")
    low = min(s.ci_low for s in ordered)
    high = max(s.ci_high for s in ordered)
    pad = max((high - low) * 0.15, 0.05)
    axes.set_xlim(min(low, 0) - pad, max(high, 0) + pad)


# ---- drivers.png ----------------------------------------------------------------------------


def drivers_figure(analysis: Analysis) -> Figure:
    """What people are angry about: the top negative terms and the tone of each aspect."""
    figure, axes = new_figure(1, 2, gridspec_kw={"width_ratios": [1.2, 1]})
    figure.suptitle(f"{chart_title(analysis)}: what drives the negativity", x=0.01, ha="left", fontweight="bold")
    draw_drivers(axes[0][0], analysis)
    draw_aspects(axes[0][1], analysis)
    simulated_badge(figure, analysis)
    return figure


def draw_drivers(axes: Axes, analysis: Analysis) -> None:
    drivers = sorted(analysis.drivers, key=lambda d: d.z, reverse=True)[:12]
    if not drivers:
        no_data(axes, "no negative drivers yet")
        return
    rows = list(range(len(drivers)))[::-1]
    axes.barh(rows, [d.z for d in drivers], color=VERMILLION, height=0.7)
    axes.set_yticks(rows, [d.term for d in drivers])
    for row, driver in zip(rows, drivers, strict=True):
        axes.text(driver.z, row, f" {driver.count_after:,}", va="center", fontsize=13, color="#333333")
    axes.set_xlim(0, max(d.z for d in drivers) * 1.25)
    axes.set_xlabel("over-representation in negative posts (z)\nlabels: uses after the announcement")
    axes.set_title("top negative drivers", loc="left")


def draw_aspects(axes: Axes, analysis: Analysis) -> None:
    aspects = [a for a in analysis.aspects if a.mean_compound is not None]
    if not aspects:
        no_data(axes, "no aspects configured or found")
        return
    aspects.sort(key=lambda a: a.share, reverse=True)
    rows = list(range(len(aspects)))[::-1]
    values = [a.mean_compound or 0.0 for a in aspects]
    colours = [VERMILLION if value < 0 else GREEN for value in values]
    axes.barh(rows, values, color=colours, height=0.6)
    axes.set_yticks(rows, [f"{a.aspect}\n{a.share:.0%} of posts" for a in aspects])
    axes.axvline(0, color=BLACK, linewidth=1.2)
    for row, value in zip(rows, values, strict=True):
        axes.text(value, row, f" {value:+.2f} ", va="center", ha="right" if value < 0 else "left", fontsize=14)
    axes.set_xlim(-1, 1)
    axes.set_xticks([-1, -0.5, 0, 0.5, 1])
    axes.set_xlabel("mean compound of posts about the aspect")
    axes.set_title("tone by aspect (since the announcement)", loc="left")
