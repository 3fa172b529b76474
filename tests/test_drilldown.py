"""The page's drill-down, end to end: `report` on a stored event with one loud, angry hour.

Hand-worked: a baseline of one calm post an hour; at 10:00 on 18 Dec 2012, 40 posts (20 originals liked
0…19 times, 10 reposts of the first ten, a hostile post liked 100 times, a 420-character post liked 50
times, 8 calm ones liked once). That hour is a volume spike (×40) and a sentiment dip.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from monitor.pipeline import open_workspace, report
from monitor.pipeline.workspace import scorer_spec
from monitor.posts import Post

EVENT = "instagram-tos-2012"
SPIKE_AT = datetime(2012, 12, 18, 10, tzinfo=UTC)
HOSTILE = '<script>alert("x")</script> they sell photos #boycottinstagram'
LONG = "photos " * 60  # 420 characters
CUT = " ".join(["photos"] * 39) + "…"  # 279 characters end inside the 40th word: cut at the space before it


def angry(n: int) -> str:
    return f"quit instagram they sell my photos #boycottinstagram number {n}"


def spike_posts() -> list[tuple[str, int, bool, float, str]]:
    """(text, likes, is_repost, compound, aspects) of the loud hour's 40 posts."""
    rows = [(angry(n), n, False, -0.6, "photos") for n in range(20)]
    rows += [(angry(n), 0, True, -0.6, "photos") for n in range(10)]
    rows += [(HOSTILE, 100, False, -0.7, "photos"), (LONG, 50, False, -0.99, "photos")]
    return rows + [("instagram terms fine", 1, False, 0.2, "") for _ in range(8)]


def calm_hours() -> list[datetime]:
    start = datetime(2012, 12, 10, tzinfo=UTC)
    return [start + timedelta(hours=h) for h in range(9 * 24) if start + timedelta(hours=h) != SPIKE_AT]


def store_event(config: Path) -> None:
    ws = open_workspace(config)
    posts = [Post("archive", f"calm{n}", moment, "instagram terms of service update today", likes=0)
             for n, moment in enumerate(calm_hours())]  # fmt: skip
    marks = {}
    for n, (text, likes, repost, compound, aspects) in enumerate(spike_posts()):
        posts.append(Post("archive", f"loud{n}", SPIKE_AT + timedelta(minutes=n), text, author=f"fan{n}", likes=likes,
                          is_repost=repost))  # fmt: skip
        marks[f"loud{n}"] = (compound, aspects)
    ws.store.add_posts(EVENT, posts)
    key = scorer_spec(ws).key()
    ws.store.add_scores([
        {"source": "archive", "post_id": post.id, "scorer": key, "status": "scored", "lang": "en",
         "compound": marks.get(post.id, (0.0, ""))[0], "aspects": marks.get(post.id, (0.0, ""))[1], "churn": False}
        for post in posts
    ])  # fmt: skip
    ws.close()


@pytest.fixture
def folder(write_config: Callable[..., Path]) -> Path:
    config = write_config()
    store_event(config)
    ws = open_workspace(config)
    [written] = report(ws, EVENT)
    ws.close()
    return written.folder


class Links(HTMLParser):
    """Every id and every in-page link of a page, and the text inside the element with a given id."""

    def __init__(self) -> None:
        super().__init__()
        self.ids: set[str] = set()
        self.hrefs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if found.get("id"):
            self.ids.add(str(found["id"]))
        if tag == "a" and str(found.get("href", "")).startswith("#"):
            self.hrefs.append(str(found["href"])[1:])


def page_links(folder: Path) -> Links:
    parser = Links()
    parser.feed((folder / "index.html").read_text(encoding="utf-8"))
    return parser


def volume_spike(folder: Path) -> dict[str, Any]:
    summary = json.loads((folder / "summary.json").read_text(encoding="utf-8"))
    [spike] = [s for s in summary["spikes"] if s["kind"] == "volume"]
    return spike


def test_each_spike_has_its_window_volume_and_repost_share(folder: Path) -> None:
    summary = json.loads((folder / "summary.json").read_text(encoding="utf-8"))
    assert [(s["kind"], s["anchor"]) for s in summary["spikes"]] == [("dip", "spike-1"), ("volume", "spike-2")]
    spike = volume_spike(folder)
    assert spike["window"] == {"start": "2012-12-18T10:00:00Z", "end": "2012-12-18T11:00:00Z"}
    assert (spike["posts"], spike["reposts"], spike["repost_share"]) == (40, 10, 0.25)
    assert spike["expected_posts"] == 1.0  # the baseline's median hour holds one post
    page = (folder / "index.html").read_text(encoding="utf-8")
    assert "40 posts in 1 hour, ×40.0 the 1 expected at the baseline&#39;s median (1 per hour)" in page
    assert "25\u00a0% were reposts (10 of 40)" in page
    row = page[page.index(">volume 2</a>") :].split("</tr>")[0]  # the spikes table's row: it ends where the section does
    assert '<td data-label="start">2012-12-18 10:00 UTC</td>' in row and '<td data-label="end">2012-12-18 11:00 UTC</td>' in row


def test_a_spikes_top_posts_are_its_most_engaged_and_most_negative_each_text_once(folder: Path) -> None:
    top = volume_spike(folder)["top_posts"]
    assert [p["text"] for p in top["engaged"]] == [HOSTILE, CUT, angry(19), angry(18), angry(17)]
    assert [p["engagement"] for p in top["engaged"]] == [100, 50, 19, 18, 17]
    assert [p["author"] for p in top["engaged"]][2:] == ["fan19", "fan18", "fan17"]
    assert [p["compound"] for p in top["negative"]] == [-0.99, -0.7, -0.6, -0.6, -0.6]
    assert [p["text"] for p in top["negative"]][2:] == [angry(19), angry(18), angry(17)]
    assert all(len(p["text"]) <= 280 for p in top["engaged"] + top["negative"])


def test_a_spikes_words_and_hashtags_are_those_the_baseline_lacks(folder: Path) -> None:
    spike = volume_spike(folder)
    assert [h["term"] for h in spike["hashtags"]] == ["#boycottinstagram"]
    words = [t["term"] for t in spike["terms"]]
    assert {"photos", "sell", "quit"} <= set(words) and "terms" not in words and "update" not in words


def test_each_driver_term_and_aspect_has_example_posts_that_contain_it(folder: Path) -> None:
    summary = json.loads((folder / "summary.json").read_text(encoding="utf-8"))
    examples = summary["driver_examples"]
    assert examples.keys() == {d["term"] for d in summary["drivers"]} and "photos" in examples
    assert [p["engagement"] for p in examples["photos"]] == [100, 50, 19]
    for term, posts in examples.items():
        assert 1 <= len(posts) <= 3 and all(term in p["text"].lower() and p["compound"] <= -0.05 for p in posts), term
    assert [p["engagement"] for p in summary["aspect_examples"]["photos"]] == [100, 50, 19]
    assert summary["aspect_examples"]["ads"] == []


def test_every_in_page_link_leads_to_an_element_of_the_page(folder: Path) -> None:
    links = page_links(folder)
    assert {"spike-1", "spike-2", "term-1", "aspect-1"} <= links.ids
    assert set(links.hrefs) <= links.ids
    assert links.hrefs.count("spike-2") >= 3  # the spikes table, and each timeline's link over the spike
    assert {"spike-1", "term-1", "aspect-1"} <= set(links.hrefs)


def test_the_timeline_links_sit_over_the_spike(folder: Path) -> None:
    page = (folder / "index.html").read_text(encoding="utf-8")
    wide = page[page.index('<div class="spots wide">') :].split("</div>")[0]
    assert wide.count('class="spot"') == 1 and 'href="#spike-2"' in wide
    assert 'title="Spike 2, ×40.0 the baseline: its posts and terms"' in wide


def test_post_text_is_escaped_in_the_drilldown(folder: Path) -> None:
    page = (folder / "index.html").read_text(encoding="utf-8")
    assert "<script>" not in page
    assert page.count("&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; they sell photos") >= 3


def test_each_timeline_link_covers_its_spike_span_as_drawn(tmp_path: Path) -> None:
    import numpy as np
    from PIL import Image

    from monitor.plots import SPIKE_TINT, TIMELINE_FILES, write_charts
    from tests.analysis_factory import make_analysis

    analysis = make_analysis()  # two volume spikes, weeks apart
    charts = write_charts(analysis, [analysis], tmp_path)
    for name in TIMELINE_FILES:
        image = np.asarray(Image.open(tmp_path / name).convert("RGB"))
        height, width = image.shape[:2]
        tint = np.all(image == tuple(int(SPIKE_TINT[i : i + 2], 16) for i in (1, 3, 5)), axis=2)
        spots = charts.spots[name]
        assert [spot.spike.start for spot in spots] == [s.start for s in analysis.spikes if s.kind == "volume"]
        rows = slice(round(spots[0].top * height / 100), round((spots[0].top + spots[0].height) * height / 100))
        spans = np.flatnonzero(tint[rows].sum(axis=0) > 0.1 * (rows.stop - rows.start))  # not the legend's swatch
        covered = np.zeros(width, dtype=bool)
        for spot in spots:
            covered[int(spot.left * width / 100) : int((spot.left + spot.width) * width / 100) + 2] = True
            assert tint[rows, int((spot.left + spot.width / 2) * width / 100)].any(), name  # a tinted span under it
        assert len(spans) and covered[spans].all(), name  # every tinted column is under a link
        assert not tint[: max(rows.start - 2, 0)].any() and not tint[rows.stop + 2 :].any(), name
