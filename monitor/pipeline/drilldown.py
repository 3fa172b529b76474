"""The drill-down of an analysed event, read from the store after the analysis (its spikes are known then).

One streamed pass over the event's scored posts, from the earliest span's start to the window's end, feeds
every spike's words and top posts, the reference's words, and the examples of each driver term and aspect;
memory holds one chunk, term counts bounded as the drivers' are, and a handful of posts per list.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from monitor.pipeline.workspace import Workspace, scorer_spec

if TYPE_CHECKING:
    from monitor.analysis import Analysis, Spike
    from monitor.drilldown import Drilldown, ExampleHeaps, Span, SpanPosts, SpikeDetail

DRILL_CHUNK = 20_000  # posts in memory at once while streaming the window


def drill_down(ws: Workspace, analysis: Analysis) -> Drilldown:
    """Each spike's window, top posts and words; the example posts of each driver term and aspect."""
    from monitor.drilldown import Drilldown, ExampleHeaps, SpanPosts, announced_at, spike_span

    windows = [spike_span(spike, analysis.bin) for spike in analysis.spikes]
    spikes = [SpanPosts(window) for window in windows]
    reference = SpanPosts(reference_span(analysis), keep=0)  # its words only
    since = (announced_at(analysis), analysis.window_end)
    heaps = ExampleHeaps([d.term for d in analysis.drivers], [a.aspect for a in analysis.aspects], since)
    start = min([since[0], *(window[0] for window in windows), *([reference_span(analysis)[0]] if windows else [])])
    _scan(ws, analysis, (start, analysis.window_end), [*spikes, reference] if spikes else [], heaps)
    numbered = enumerate(zip(analysis.spikes, spikes, strict=True), 1)
    details = [_detail(analysis, number, spike, posts, reference) for number, (spike, posts) in numbered]
    drivers, aspects = heaps.examples()
    return Drilldown(spikes=details, drivers=drivers, aspects=aspects)


def reference_span(analysis: Analysis) -> Span:
    """What a spike's words are measured against: the baseline; when it is thin (as for the spike sizes),
    the whole window, the spike's own posts taken out of it."""
    if analysis.baseline_fallback and analysis.window_start is not None:
        return analysis.window_start, analysis.window_end
    return analysis.baseline_start, analysis.baseline_end


def _scan(ws: Workspace, analysis: Analysis, span: Span, spans: list[SpanPosts], heaps: ExampleHeaps) -> None:
    """One streamed pass over the event's scored posts in span, feeding every span's posts and the examples."""
    from monitor.drilldown import Chunk

    for rows in ws.store.iter_window_posts(analysis.event, scorer_spec(ws).key(), span, DRILL_CHUNK):
        chunk = Chunk(rows)
        for posts in spans:
            posts.add(chunk)
        heaps.add(chunk)


def _detail(analysis: Analysis, number: int, spike: Spike, posts: SpanPosts, reference: SpanPosts) -> SpikeDetail:
    from monitor.drilldown import SpikeDetail, spike_span, spike_terms, window_counts

    span = spike_span(spike, analysis.bin)
    volume, reposts, bins = window_counts(analysis.bins, span)
    against = reference.terms - posts.terms if analysis.baseline_fallback else reference.terms
    words, hashtags = spike_terms(posts.terms, against)
    return SpikeDetail(
        number=number, spike=spike, start=span[0], end=span[1], posts=volume, reposts=reposts,
        expected=spike.baseline_value * bins if spike.kind == "volume" else None,
        engaged=posts.engaged.examples(), negative=posts.negative.examples(), terms=words, hashtags=hashtags,
    )  # fmt: skip
