"""The drill-down of an analysed event, after the analysis (its spikes are known then).

Only the texts of the spikes' windows are read from the store, for their words: the stretch of time the
windows cover is cut at every window's start and end, and each piece is one range read on the created_at
index that the database groups by text, so overlapping windows are read once. Everything else comes from
the analysis (Analysis.drill, kept in its per-day parts): what the spikes' words are measured against,
each spike's top posts (from per-bin lists) and the example posts of each driver term and aspect, so a
report's cost stays with the days that changed and the spikes' own texts.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import TYPE_CHECKING

from monitor.pipeline.workspace import Workspace, current_scorer

if TYPE_CHECKING:
    from datetime import datetime

    from monitor.analysis import Analysis, Spike
    from monitor.drilldown import Drilldown, SpikeDetail

DRILL_CHUNK = 20_000  # distinct texts in memory at once while reading a window


def drill_down(ws: Workspace, analysis: Analysis) -> Drilldown:
    """Each spike's window, top posts and words; the example posts of each driver term and aspect."""
    from monitor.drilldown import Drilldown, aspect_examples, driver_examples, segments, spike_span

    windows = [spike_span(spike, analysis.bin) for spike in analysis.spikes]
    pieces = {piece: span_terms(ws, analysis, piece) for piece in segments(windows)}
    spikes = [
        _summed(terms for (start, end), terms in pieces.items() if window[0] <= start and end <= window[1])
        for window in windows
    ]
    reference = reference_terms(analysis)
    numbered = enumerate(zip(analysis.spikes, windows, spikes, strict=True), 1)
    details = [_detail(analysis, n, spike, window, terms, reference) for n, (spike, window, terms) in numbered]
    if analysis.drill is None:
        return Drilldown(spikes=details)
    drivers = driver_examples(analysis.drill, [d.term for d in analysis.drivers])
    return Drilldown(spikes=details, drivers=drivers, aspects=aspect_examples(analysis.drill))


def reference_terms(analysis: Analysis) -> Counter[str]:
    """The words a spike's are measured against, as the analysis counted them: the scored posts' of the
    baseline; when it is thin (as for the spike sizes), the whole window's (the spike's own taken out in _detail)."""
    drill = analysis.drill
    if drill is None:  # an Analysis not built by AnalysisAccumulator: no counts to measure against
        return Counter()
    return drill.prior if analysis.baseline_fallback else drill.reference


def span_terms(ws: Workspace, analysis: Analysis, span: tuple[datetime, datetime]) -> Counter[str]:
    """The terms of the event's scored posts in span, bounded as the drivers' counts are (TermCounts): the
    whole UTC days inside it from their stored day parts (the analysis counted their terms), the rest read."""
    from monitor.analysis import TermCounts
    from monitor.drilldown import outside_days, text_terms, whole_days
    from monitor.pipeline.analysis_parts import stored_terms

    counts = TermCounts()
    days = stored_terms(ws, ws.config.event(analysis.event), whole_days(span, (analysis.window_start, analysis.window_end)))
    for terms in days.values():
        counts.add(focus=terms, reference=Counter(), prior=terms)
    for piece in outside_days(span, days):
        for texts in ws.store.iter_window_texts(analysis.event, current_scorer(ws), piece, DRILL_CHUNK):
            found = text_terms(texts)
            counts.add(focus=found, reference=Counter(), prior=found)
    return counts.focus


def _summed(parts: Iterable[Counter[str]]) -> Counter[str]:
    total: Counter[str] = Counter()
    for part in parts:
        total.update(part)
    return total


def _detail(
    analysis: Analysis, number: int, spike: Spike, span: tuple[datetime, datetime], terms: Counter[str], reference: Counter[str]
) -> SpikeDetail:
    from monitor.drilldown import SpikeDetail, spike_examples, spike_terms, window_counts

    volume, reposts, bins = window_counts(analysis.bins, span)
    against = reference - terms if analysis.baseline_fallback else reference
    words, hashtags = spike_terms(terms, against)
    engaged, negative = ([], []) if analysis.drill is None else spike_examples(analysis.drill, spike)
    return SpikeDetail(
        number=number, spike=spike, start=span[0], end=span[1], posts=volume, reposts=reposts,
        expected=spike.baseline_value * bins if spike.kind == "volume" else None,
        engaged=engaged, negative=negative, terms=words, hashtags=hashtags,
    )  # fmt: skip
