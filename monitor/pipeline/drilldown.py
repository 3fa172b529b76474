"""The drill-down of an analysed event, read from the store after the analysis (its spikes are known then).

Every read is bounded: a spike's top posts are ORDER BY … LIMIT queries over its window; its terms, the
baseline's terms and the examples of each driver term and aspect are streamed chunk by chunk, keeping only
term counts and a handful of posts per name.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime
from typing import TYPE_CHECKING

from monitor.pipeline.workspace import Workspace, scorer_spec

if TYPE_CHECKING:
    from monitor.analysis import Analysis, Spike
    from monitor.drilldown import Drilldown, SpikeDetail

DRILL_CHUNK = 20_000  # posts in memory at once while streaming a window


def drill_down(ws: Workspace, analysis: Analysis) -> Drilldown:
    """Each spike's window, top posts and terms; the example posts of each driver term and aspect."""
    from monitor.drilldown import Drilldown, ExampleHeaps, announced_at

    scorer = scorer_spec(ws).key()
    details = []
    if analysis.spikes:
        reference = _terms(ws, analysis.event, scorer, reference_span(analysis))
        details = [_spike(ws, analysis, scorer, n, spike, reference) for n, spike in enumerate(analysis.spikes, 1)]
    heaps = ExampleHeaps([driver.term for driver in analysis.drivers], [aspect.aspect for aspect in analysis.aspects])
    since = (announced_at(analysis), analysis.window_end)
    for chunk in ws.store.iter_window_posts(analysis.event, scorer, since, chunk_size=DRILL_CHUNK):
        heaps.add(chunk)
    drivers, aspects = heaps.examples()
    return Drilldown(spikes=details, drivers=drivers, aspects=aspects)


def reference_span(analysis: Analysis) -> tuple[datetime, datetime | None]:
    """What a spike's terms are measured against: the baseline; when it is thin (as for the spike sizes),
    the whole window, the spike's own posts taken out of it."""
    if analysis.baseline_fallback and analysis.window_start is not None:
        return analysis.window_start, analysis.window_end
    return analysis.baseline_start, analysis.baseline_end


def _spike(ws: Workspace, analysis: Analysis, scorer: str, number: int, spike: Spike, reference: Counter[str]) -> SpikeDetail:
    from monitor.drilldown import EXAMPLES, SpikeDetail, example, spike_span, spike_terms, window_counts

    span = spike_span(spike, analysis.bin)
    posts, reposts, bins = window_counts(analysis.bins, span)
    top = {order: ws.store.window_posts(analysis.event, scorer, span, order, EXAMPLES) for order in ("engaged", "negative")}
    focus = _terms(ws, analysis.event, scorer, span)
    terms, hashtags = spike_terms(focus, reference - focus if analysis.baseline_fallback else reference)
    return SpikeDetail(
        number=number, spike=spike, start=span[0], end=span[1], posts=posts, reposts=reposts,
        expected=spike.baseline_value * bins if spike.kind == "volume" else None,
        engaged=[example(row) for row in top["engaged"]], negative=[example(row) for row in top["negative"]],
        terms=terms, hashtags=hashtags,
    )  # fmt: skip


def _terms(ws: Workspace, event_name: str, scorer: str, span: tuple[datetime, datetime | None]) -> Counter[str]:
    """The term counts of the event's scored posts in the span, streamed; past TERM_LIMIT distinct terms the
    rarest are dropped, as for the drivers (TermCounts)."""
    from monitor.analysis import TermCounts
    from monitor.drilldown import count_terms

    counts = TermCounts()
    for chunk in ws.store.iter_window_posts(event_name, scorer, span, chunk_size=DRILL_CHUNK):
        found = count_terms(row["text"] for row in chunk)
        counts.add(focus=found, reference=Counter(), prior=found)
    return counts.focus
