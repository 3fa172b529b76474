"""Charts and the report folder, drawn from hand-built Analysis objects (tests/analysis_factory.py)."""

from __future__ import annotations

import json
import re
import struct
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from monitor.plots import CHART_FILES, CHART_SIZES
from monitor.report import write_report
from tests.analysis_factory import make_analysis
from tests.companions import RecordingCompanion, lost_companion


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
def test_each_chart_is_a_png_of_its_size_with_a_picture_on_it(report_dir: Path, name: str) -> None:
    path = report_dir / name
    assert png_size(path) == CHART_SIZES[name]  # 1600 x 900, the small one 640 x 420 for mail and phones
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
        if target.startswith("#"):  # a link inside the page: to an element it has
            assert f'id="{target[1:]}"' in page, target
            continue
        assert "/" not in target and (report_dir / target).is_file(), target


def test_page_shows_simulated_label_numbers_and_coverage(report_dir: Path) -> None:
    page = (report_dir / "index.html").read_text(encoding="utf-8")
    assert "Simulated data" in page
    assert "−0.42" in page and "−0.47 to −0.37" in page  # the 7-day shift after the announcement and its interval
    assert "2013-01-23 12:00 UTC" in page  # generated at
    assert "posts per hour, at" in page  # peak volume


def test_summary_json_holds_the_analysis_numbers(report_dir: Path) -> None:
    summary = json.loads((report_dir / "summary.json").read_text(encoding="utf-8"))
    assert {key: summary[key] for key in ("event", "platform", "timezone", "bin", "align_on", "generated_at")} == {
        "event": "instagram-tos-2012",
        "platform": "Instagram",
        "timezone": "UTC",
        "bin": "hour",
        "align_on": "effective",
        "generated_at": "2013-01-23T12:00:00Z",
    }
    assert summary["milestones"] == {
        "announced": "2012-12-17T00:00:00Z",
        "reversed": "2012-12-20T00:00:00Z",
        "effective": "2013-01-16T00:00:00Z",
    }
    assert summary["baseline"] == {"start": "2012-12-10T00:00:00Z", "end": "2012-12-17T00:00:00Z", "posts": 0}
    assert summary["bins"] == 44 * 24 + 1  # hourly, 2012-12-10 00:00 to 2013-01-23 00:00 inclusive
    assert summary["latest_bin"]["start"] == "2013-01-23T00:00:00Z"
    assert summary["latest_bin"]["counted"] is None  # NaN (no counts endpoint) is null, not invalid JSON
    coverage = summary["coverage"]
    assert coverage["per_source"] == {"simulated": coverage["posts"]}
    assert coverage["scored"] + coverage["not_scored_language"] == coverage["posts"]
    assert (coverage["first_post"], coverage["last_post"]) == ("2012-12-10T00:00:00Z", "2013-01-23T00:00:00Z")
    assert (coverage["simulated"], coverage["counted"], coverage["languages_excluded"]) == (True, None, {})
    assert len(summary["shifts"]) == 3 * (3 * 2 + 1)  # milestones x (windows x 2 metrics + volume over 24 h)
    assert summary["shifts"][0] == {
        "milestone": "announced", "window": "24h", "metric": "mean_compound", "baseline": 0.21, "after": -0.21,
        "diff": -0.42, "ci_low": -0.47, "ci_high": -0.37, "p_value": 0.0001, "n_baseline": 410, "n_after": 2900,
    }  # fmt: skip
    assert summary["shifts"][6] == {
        "milestone": "announced", "window": "24h", "metric": "volume", "baseline": 2.9, "after": 40.0,
        "diff": 37.1, "ci_low": 30.2, "ci_high": 44.0, "p_value": None, "n_baseline": 168, "n_after": 24,
    }  # fmt: skip
    assert summary["spikes"][0] == {
        "kind": "volume", "start": "2012-12-17T14:00:00Z", "peak": "2012-12-18T06:00:00Z",
        "end": "2012-12-19T06:00:00Z", "peak_value": 71, "baseline_value": 3, "z": 24.5, "size": 23.7,
        "key": "volume:2012-12-17T14:00:00+00:00",
    }  # fmt: skip
    assert [spike["kind"] for spike in summary["spikes"]] == ["volume", "dip", "volume"]
    assert summary["shapes"] == [
        {
            "milestone": "announced", "peak_at": "2012-12-18T06:00:00Z", "hours_to_peak": 30.0,
            "half_life_hours": 16.0, "volume_before_24h": 70.0, "volume_after_24h": 900.0,
            "negative_share_before_24h": 0.18, "negative_share_after_24h": 0.64,
            "negative_share_bend": None, "volume_bend": None,  # the first milestone: nothing before it to bend
        }
    ]  # fmt: skip
    assert [driver["term"] for driver in summary["drivers"][:3]] == ["sell", "photos", "#boycottinstagram"]
    assert summary["drivers"][0] == {"term": "sell", "z": 14.2, "count_after": 820, "count_baseline": 3}
    assert summary["aspects"][0] == {"aspect": "photos", "posts": 1900, "share": 0.48, "mean_compound": -0.41}
    assert summary["top_posts"][0] == {
        "created_at": "2012-12-17T20:00:00Z", "source": "simulated", "author": "user0",
        "text": '<script>alert("x")</script> Instagram & <b>me</b>', "url": None, "compound": -0.8,
        "engagement": 900,
    }  # fmt: skip
    assert summary["totals"] == {} and summary["baseline_fallback"] is False


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
    from monitor.wording import shift_direction as shift_judgement

    def shift(metric: str, low: float, high: float) -> Shift:
        return Shift("announced", "24h", metric, 0.0, 0.0, (low + high) / 2, low, high, 0.01, 10, 10)

    assert shift_judgement(shift("mean_compound", -0.5, -0.3)) == "worse"
    assert shift_judgement(shift("mean_compound", 0.1, 0.3)) == "better"
    assert shift_judgement(shift("negative_share", 0.1, 0.3)) == "worse"  # more negative posts is bad news
    assert shift_judgement(shift("negative_share", -0.3, -0.1)) == "better"
    assert shift_judgement(shift("volume", 5.0, 9.0)) == "louder"
    assert shift_judgement(shift("mean_compound", -0.1, 0.1)) == "same"
    assert shift_judgement(shift("mean_compound", float("nan"), float("nan"))) == "same"


def test_charts_drawn_by_a_companion_process_are_the_ones_drawn_here(tmp_path: Path) -> None:
    from monitor.plots import ELSEWHERE, write_charts

    analysis, other = make_analysis(), make_analysis(scale=2.0, seed=3)
    here = write_charts(analysis, [analysis, other], tmp_path / "here")
    with RecordingCompanion() as companion:
        shared = write_charts(analysis, [analysis, other], tmp_path / "shared", companion)
    assert companion.asked == ["draw_chart"] * len(ELSEWHERE) and len(ELSEWHERE) < len(CHART_FILES)  # both draw
    assert [path.name for path in shared.files] == list(CHART_FILES)
    for name in CHART_FILES:
        assert (tmp_path / "shared" / name).read_bytes() == (tmp_path / "here" / name).read_bytes(), name
    assert shared.spots == here.spots and all(here.spots.values())  # the timelines' spike links, both drawn


def test_charts_are_all_drawn_when_the_companion_process_is_lost(tmp_path: Path) -> None:
    from monitor.plots import write_charts

    analysis = make_analysis()
    with lost_companion() as companion:
        charts = write_charts(analysis, [analysis], tmp_path / "a", companion)  # lost while asked, or before
        again = write_charts(analysis, [analysis], tmp_path / "b", companion)  # known to be lost by now
    assert companion.asked.count("draw_chart") >= 2  # each call asked it (the first up to three times) and drew here
    for name in CHART_FILES:
        assert png_size(tmp_path / "a" / name) == CHART_SIZES[name] == png_size(tmp_path / "b" / name), name
    assert again.spots == charts.spots
    assert [spot.spike.start for spot in charts.spots["timeline.png"]] == [
        spike.start for spike in analysis.spikes if spike.kind == "volume"
    ]


def test_a_companion_process_ends_with_the_report_process_that_started_it(tmp_path: Path) -> None:
    import os
    import signal
    import subprocess
    import sys
    import time

    script = (
        "import os, time\n"
        "from monitor.pipeline.companion import Companion\n"
        "companion = Companion()\n"
        "print(companion.submit(os.getpid).result(), flush=True)\n"
        "time.sleep(120)\n"
    )
    report = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert report.stdout is not None
        companion = int(report.stdout.readline())
        os.kill(report.pid, signal.SIGKILL)  # no exit handler runs, no pool shutdown
        report.wait(10)
        deadline = time.monotonic() + 20
        while alive(companion) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not alive(companion)
    finally:
        report.kill()


def alive(pid: int) -> bool:
    """pid is a running process (not a zombie waiting for its parent)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_a_core_is_idle_only_beside_fewer_runnable_processes_than_cores() -> None:
    import os
    import subprocess
    import sys
    import time

    from monitor.cores import core_idle, runnable

    assert runnable("0.52 0.58 0.59 2/345 6789\n") == 2
    cpus = os.cpu_count() or 1
    for running, idle in ((cpus - 1, True), (cpus, False)):  # this process among the runnable ones
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr("monitor.cores._running_now", lambda _look, running=running: running)
            assert core_idle() is idle
    spin = "import time\nend = time.monotonic() + 20\nwhile time.monotonic() < end: pass\n"
    hogs = [subprocess.Popen([sys.executable, "-c", spin]) for _ in range(os.cpu_count() or 1)]
    try:
        time.sleep(0.5)  # started and spinning
        assert not core_idle()
    finally:
        for hog in hogs:
            hog.kill()
            hog.wait()
