"""Charts and the report folder, drawn from hand-built Analysis objects (tests/analysis_factory.py)."""

from __future__ import annotations

import json
import re
import struct
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from monitor.plots import CHART_FILES
from monitor.report import write_report
from tests.analysis_factory import make_analysis


def png_size(path: Path) -> tuple[int, int]:
    """Width and height from the PNG header (IHDR), without decoding the image."""
    header = path.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", header[16:24])
    return width, height


def pixels(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("L"), dtype=float)


@pytest.fixture(scope="module")
def report_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    analysis = make_analysis(first_post_text='<script>alert("x")</script> Instagram & <b>me</b>')
    return write_report(analysis, [analysis], tmp_path_factory.mktemp("dash")).folder


@pytest.mark.parametrize("name", CHART_FILES)
def test_each_chart_is_a_1600x900_png_with_a_picture_on_it(report_dir: Path, name: str) -> None:
    path = report_dir / name
    assert png_size(path) == (1600, 900)
    gray = pixels(path)
    assert gray.std() > 20  # not blank
    assert (gray < 128).mean() > 0.01  # real ink, not a faint frame


def test_charts_change_when_the_data_changes(tmp_path: Path) -> None:
    quiet, loud = make_analysis(scale=1.0, seed=1), make_analysis(scale=3.0, seed=2)
    quiet.drivers, quiet.aspects, quiet.shifts = quiet.drivers[:3], quiet.aspects[:1], quiet.shifts[:3]
    first = write_report(quiet, [quiet], tmp_path / "a").folder
    second = write_report(loud, [loud], tmp_path / "b").folder
    for name in CHART_FILES:
        assert not np.array_equal(pixels(first / name), pixels(second / name)), name


def test_several_sources_get_their_own_panel(tmp_path: Path) -> None:
    one = write_report(make_analysis(), [], tmp_path / "one").folder / "timeline.png"
    three = make_analysis(sources=("x", "bluesky", "mastodon@mastodon.social"))
    many = write_report(three, [], tmp_path / "many").folder / "timeline.png"
    assert png_size(many) == (1600, 900)
    assert not np.array_equal(pixels(one), pixels(many))
    page = (tmp_path / "many" / three.event / "index.html").read_text(encoding="utf-8")
    assert "<h2>By network</h2>" in page
    for name, posts, share, tone in three.network_totals():
        assert f'<th scope="row">{name}</th><td class="num">{posts:,}</td><td class="num">{share:.0%}</td>' in page
        assert tone is not None and f"{tone:+.2f}" in page
    assert "By network" not in (tmp_path / "one" / make_analysis().event / "index.html").read_text(encoding="utf-8")


def test_page_escapes_post_text(report_dir: Path) -> None:
    page = (report_dir / "index.html").read_text(encoding="utf-8")
    assert "<script>" not in page
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; Instagram &amp; &lt;b&gt;me&lt;/b&gt;" in page


def test_page_links_only_to_files_in_the_folder(report_dir: Path) -> None:
    page = (report_dir / "index.html").read_text(encoding="utf-8")
    targets = re.findall(r'(?:href|src)="([^"]+)"', page)
    assert set(CHART_FILES) | {"summary.json"} <= set(targets)
    for target in targets:
        if target.startswith(("http://", "https://")):
            continue
        assert "/" not in target and (report_dir / target).is_file(), target


def test_page_shows_simulated_label_numbers_and_coverage(report_dir: Path) -> None:
    page = (report_dir / "index.html").read_text(encoding="utf-8")
    assert "Simulated data" in page
    assert "-0.42" in page and "-0.47 to -0.37" in page  # the 7-day shift after the announcement and its interval
    assert "2013-01-23 12:00 UTC" in page  # generated at
    assert "posts per hour, at" in page  # peak volume


def test_summary_json_holds_the_analysis_numbers(report_dir: Path) -> None:
    summary = json.loads((report_dir / "summary.json").read_text(encoding="utf-8"))
    analysis = make_analysis()
    assert summary == json.loads(json.dumps(analysis.summary()))
    assert summary["spikes"][0]["start"] == "2012-12-17T14:00:00Z"
    assert summary["coverage"]["simulated"] is True


def test_rerunning_replaces_the_whole_folder(tmp_path: Path) -> None:
    analysis = make_analysis()
    folder = write_report(analysis, [], tmp_path).folder
    (folder / "stale.txt").write_text("from an old run", encoding="utf-8")
    before = (folder / "timeline.png").read_bytes()
    again = write_report(make_analysis(scale=2.0), [], tmp_path)
    assert again.folder == folder
    assert not (folder / "stale.txt").exists()
    assert (folder / "timeline.png").read_bytes() != before
    assert sorted(p.name for p in tmp_path.iterdir()) == [analysis.event]  # no temporary folders left behind


def test_dates_are_drawn_in_the_event_timezone(tmp_path: Path) -> None:
    utc = write_report(make_analysis(), [], tmp_path / "utc").folder / "index.html"
    tokyo = write_report(make_analysis(timezone="Asia/Tokyo"), [], tmp_path / "tokyo").folder / "index.html"
    assert "2012-12-17 00:00 UTC" in utc.read_text(encoding="utf-8")
    assert "2012-12-17 09:00 JST" in tokyo.read_text(encoding="utf-8")


def test_shift_colours_say_better_or_worse_not_up_or_down() -> None:
    from monitor.analysis import Shift
    from monitor.report import shift_judgement

    def shift(metric: str, low: float, high: float) -> Shift:
        return Shift("announced", "24h", metric, 0.0, 0.0, (low + high) / 2, low, high, 0.01, 10, 10)

    assert shift_judgement(shift("mean_compound", -0.5, -0.3)) == "worse"
    assert shift_judgement(shift("mean_compound", 0.1, 0.3)) == "better"
    assert shift_judgement(shift("negative_share", 0.1, 0.3)) == "worse"  # more negative posts is bad news
    assert shift_judgement(shift("negative_share", -0.3, -0.1)) == "better"
    assert shift_judgement(shift("volume", 5.0, 9.0)) == "louder"
    assert shift_judgement(shift("mean_compound", -0.1, 0.1)) == "same"
    assert shift_judgement(shift("mean_compound", float("nan"), float("nan"))) == "same"
