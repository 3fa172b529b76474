"""What the drill-down reads and where its examples come from: only the spikes' windows are read again; the
driver terms' examples come from the 300 most engaged negative posts since the announcement, kept by the
analysis in its per-day parts, so an incremental report shows the drill-down of a full one.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import event

from monitor.pipeline import Workspace, analyze_event, report, score
from monitor.pipeline.drilldown import drill_down
from monitor.pipeline.workspace import scorer_spec
from monitor.posts import Post
from monitor.store import Store
from tests.test_analysis_parts import EVENT, make_posts, workspace

ANNOUNCED = datetime(2012, 12, 17, tzinfo=UTC)
LOUD = datetime(2012, 12, 18, 10, tzinfo=UTC)  # the loud hour: a volume spike and a dip
DRILL_KEYS = ("spikes", "drivers", "driver_examples", "aspect_examples")


def store_scored(ws: Workspace, rows: list[tuple[str, datetime, str, int, float, str]]) -> None:
    """Posts (id, time, text, likes, compound, aspects) stored with their scores under the current scorer."""
    ws.store.add_posts(EVENT, [Post("x", n, moment, text, author=f"a{n}", likes=likes) for n, moment, text, likes, *_ in rows])
    key = scorer_spec(ws).key()
    ws.store.add_scores([
        {"source": "x", "post_id": n, "scorer": key, "status": "scored", "lang": "en", "compound": compound,
         "aspects": aspects, "churn": False}
        for n, _, _, _, compound, aspects in rows
    ])  # fmt: skip


def calm_baseline() -> list[tuple[str, datetime, str, int, float, str]]:
    start = datetime(2012, 12, 10, tzinfo=UTC)
    return [(f"calm{h}", start + timedelta(hours=h), "instagram terms of service update", 0, 0.0, "") for h in range(8 * 24)]


def loud_hour() -> list[tuple[str, datetime, str, int, float, str]]:
    return [(f"loud{n}", LOUD + timedelta(minutes=n), f"quit instagram sell photos {n}", n, -0.6, "photos") for n in range(40)]


def drill_reads(ws: Workspace) -> list[tuple[str, Any]]:
    """The statements (and their parameters) the drill-down of the event sends to the database."""
    analysis = analyze_event(ws, EVENT)
    sent: list[tuple[str, Any]] = []

    def record(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, many: bool) -> None:
        sent.append((statement, parameters))

    event.listen(ws.store.engine, "before_cursor_execute", record)
    try:
        drill_down(ws, analysis)
    finally:
        event.remove(ws.store.engine, "before_cursor_execute", record)
    return sent


def moment_text(value: Any) -> str:
    return value.isoformat(sep=" ") if isinstance(value, datetime) else str(value)


def test_the_drilldown_reads_the_spikes_window_once_and_nothing_else(store: Store, tmp_path: Path) -> None:
    ws = workspace(store, tmp_path)
    store_scored(ws, calm_baseline() + loud_hour())
    sent = drill_reads(ws)
    assert len(sent) == 1  # the dip and the volume spike share the hour: one read
    statement, parameters = sent[0]
    bounds = [moment_text(value) for value in (parameters.values() if isinstance(parameters, dict) else parameters)]
    assert "posts.created_at >=" in statement and "posts.created_at <" in statement and "GROUP BY" in statement
    assert any(b.startswith("2012-12-18 10:00:00") for b in bounds)
    assert any(b.startswith("2012-12-18 11:00:00") for b in bounds)
    ws.close()


def test_a_driver_term_outside_the_300_most_engaged_negative_posts_has_no_example(store: Store, tmp_path: Path) -> None:
    ws = workspace(store, tmp_path)
    angry = [
        (f"angry{n}", ANNOUNCED + timedelta(days=2, minutes=n), f"furious boycott instagram {n}", 10 + n, -0.7, "ads")
        for n in range(300)
    ]  # the 300 most engaged negative posts: likes 10…309
    quiet = [(f"zebra{n}", ANNOUNCED + timedelta(days=1, hours=n), f"zebra zebra furious {n}", 1, -0.9, "") for n in range(2)]
    store_scored(ws, calm_baseline() + angry + quiet)
    [written] = report(ws, EVENT)
    summary = json.loads((written.folder / "summary.json").read_text(encoding="utf-8"))
    drivers = [d["term"] for d in summary["drivers"]]
    assert "zebra" in drivers and "boycott" in drivers  # used 4 times, never in the baseline
    assert summary["driver_examples"]["zebra"] == []  # both zebra posts (1 like) are below the 300 kept
    assert [p["post_id"] for p in summary["driver_examples"]["boycott"]] == ["angry299", "angry298", "angry297"]
    assert [p["post_id"] for p in summary["aspect_examples"]["ads"]] == ["angry299", "angry298", "angry297"]
    page = (written.folder / "index.html").read_text(encoding="utf-8")
    assert "No example among the 300 most engaged negative posts since the announcement." in page
    note = "examples are its most engaged posts among the 300 most engaged negative posts since the"  # the note
    assert note in page.replace("\n", " ")
    ws.close()


def drill_summary(ws: Workspace, full: bool) -> dict[str, Any]:
    [written] = report(ws, EVENT, full=full)
    summary = json.loads((written.folder / "summary.json").read_text(encoding="utf-8"))
    return {key: summary[key] for key in DRILL_KEYS}


def test_an_incremental_report_shows_the_drilldown_of_a_full_one(store: Store, tmp_path: Path) -> None:
    ws = workspace(store, tmp_path)
    ws.store.add_posts(EVENT, make_posts(900, datetime(2012, 12, 10, tzinfo=UTC), 12, seed=4, prefix="a"))
    store_scored(ws, loud_hour())
    score(ws, workers=1)
    first = drill_summary(ws, full=False)
    assert first == drill_summary(ws, full=True)
    steps = [
        make_posts(300, datetime(2012, 12, 19, 6, tzinfo=UTC), 1, seed=5, prefix="b"),  # a loud day after the first
        make_posts(200, datetime(2012, 12, 21, 12, tzinfo=UTC), 1, seed=6, prefix="c"),  # the last day and a new one
    ]
    for posts in steps:
        ws.store.add_posts(EVENT, posts)
        score(ws, workers=1)
        incremental = drill_summary(ws, full=False)
        assert incremental == drill_summary(ws, full=True)
    assert incremental != first and len(incremental["spikes"]) > len(first["spikes"]) >= 1
    examples = incremental["driver_examples"]
    assert examples and all(1 <= len(posts) <= 3 for posts in examples.values())
    assert incremental["aspect_examples"] and all(incremental["aspect_examples"].values())
    ws.close()


def loud_day() -> list[tuple[str, datetime, str, int, float, str]]:
    """40 angry posts over 18 Dec (UTC), one every 30 minutes from midnight."""
    day = datetime(2012, 12, 18, tzinfo=UTC)
    return [(f"day{n}", day + timedelta(minutes=30 * n), f"quit instagram sell photos {n}", n, -0.6, "photos") for n in range(40)]


def test_a_spike_of_whole_utc_days_takes_its_words_from_the_stored_days_without_reading_a_text(
    store: Store, tmp_path: Path
) -> None:
    ws = workspace(store, tmp_path, event={"bin": "day"})
    store_scored(ws, calm_baseline() + loud_day())
    sent = drill_reads(ws)
    assert not any("GROUP BY" in statement for statement, _ in sent)  # the day's terms were stored by the analysis
    [spike] = [detail for detail in drill_down(ws, analyze_event(ws, EVENT)).spikes if detail.spike.kind == "volume"]
    assert (spike.start, spike.end) == (datetime(2012, 12, 18, tzinfo=UTC), datetime(2012, 12, 19, tzinfo=UTC))
    # against the baseline's "instagram terms of service update": each of these 40 times on the day, never before
    assert sorted((word.term, word.count_after, word.count_baseline) for word in spike.terms) == [
        ("photos", 40, 0), ("quit", 40, 0), ("sell", 40, 0)
    ]  # fmt: skip
    ws.close()


def test_a_stale_day_of_a_spike_has_its_words_counted_again(store: Store, tmp_path: Path) -> None:
    ws = workspace(store, tmp_path, event={"bin": "day"})
    store_scored(ws, calm_baseline() + loud_day())
    drill_summary(ws, full=False)
    late = datetime(2012, 12, 18, 23, 59, tzinfo=UTC)
    store_scored(ws, [(f"late{n}", late, "quit instagram sell photos later", 0, -0.5, "") for n in range(5)])
    [spike] = [s for s in drill_summary(ws, full=False)["spikes"] if s["kind"] == "volume"]
    assert {term["term"]: term["count_after"] for term in spike["terms"]}["quit"] == 45
    assert drill_summary(ws, full=False) == drill_summary(ws, full=True)
    ws.close()
