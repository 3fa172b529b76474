"""The drill-down of an analysed event, read from the store after the analysis (its spikes are known then).

Only the spikes' windows are read: one range read on the created_at index per stretch of time that spikes
cover (overlapping windows read once), memory one chunk and a handful of posts per list. What the spikes'
words are measured against and the example posts of each driver term and aspect come from the analysis
(Analysis.drill, kept in its per-day parts), so a report's cost stays with the days that changed.
"""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING

from monitor.pipeline.workspace import Workspace, scorer_spec

if TYPE_CHECKING:
    from monitor.analysis import Analysis, Spike
    from monitor.drilldown import Drilldown, Span, SpanPosts, SpikeDetail

DRILL_CHUNK = 20_000  # posts in memory at once while streaming a window


def drill_down(ws: Workspace, analysis: Analysis) -> Drilldown:
    """Each spike's window, top posts and words; the example posts of each driver term and aspect.

    An Analysis not built by AnalysisAccumulator (no `drill`) gets its reference's words from a read of the
    reference span, and no example posts.
    """
    from monitor.drilldown import Drilldown, SpanPosts, aspect_examples, driver_examples, merged_spans, spike_span

    windows = [spike_span(spike, analysis.bin) for spike in analysis.spikes]
    spikes = [SpanPosts(window) for window in windows]
    for span in merged_spans(windows):
        _scan(ws, analysis, span, spikes)
    reference = reference_terms(ws, analysis) if spikes else Counter()
    numbered = enumerate(zip(analysis.spikes, spikes, strict=True), 1)
    details = [_detail(analysis, number, spike, posts, reference) for number, (spike, posts) in numbered]
    if analysis.drill is None:
        return Drilldown(spikes=details)
    drivers = driver_examples(analysis.drill, [d.term for d in analysis.drivers])
    return Drilldown(spikes=details, drivers=drivers, aspects=aspect_examples(analysis.drill))


def reference_terms(ws: Workspace, analysis: Analysis) -> Counter[str]:
    """The words a spike's are measured against: the scored posts' of the baseline; when it is thin (as for
    the spike sizes), the whole window's (the spike's own posts are taken out in _detail)."""
    if analysis.drill is not None:
        return analysis.drill.prior if analysis.baseline_fallback else analysis.drill.reference
    from monitor.drilldown import SpanPosts

    reference = SpanPosts(reference_span(analysis), keep=0)
    _scan(ws, analysis, reference_span(analysis), [reference])
    return reference.terms


def reference_span(analysis: Analysis) -> Span:
    """The baseline; when it is thin, the whole window."""
    if analysis.baseline_fallback and analysis.window_start is not None:
        return analysis.window_start, analysis.window_end
    return analysis.baseline_start, analysis.baseline_end


def _scan(ws: Workspace, analysis: Analysis, span: Span, spans: list[SpanPosts]) -> None:
    """One range read of the event's scored posts in span, feeding each of spans its own posts."""
    from monitor.drilldown import Chunk

    for rows in ws.store.iter_window_posts(analysis.event, scorer_spec(ws).key(), span, DRILL_CHUNK):
        chunk = Chunk(rows)
        for posts in spans:
            posts.add(chunk)


def _detail(analysis: Analysis, number: int, spike: Spike, posts: SpanPosts, reference: Counter[str]) -> SpikeDetail:
    from monitor.drilldown import SpikeDetail, spike_span, spike_terms, window_counts

    span = spike_span(spike, analysis.bin)
    volume, reposts, bins = window_counts(analysis.bins, span)
    against = reference - posts.terms if analysis.baseline_fallback else reference
    words, hashtags = spike_terms(posts.terms, against)
    return SpikeDetail(
        number=number, spike=spike, start=span[0], end=span[1], posts=volume, reposts=reposts,
        expected=spike.baseline_value * bins if spike.kind == "volume" else None,
        engaged=posts.engaged.examples(), negative=posts.negative.examples(), terms=words, hashtags=hashtags,
    )  # fmt: skip
