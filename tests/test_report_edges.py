"""`backlash report` on data a real user has: no baseline posts, a single day."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from click.testing import CliRunner

from monitor.cli import cli

from .conftest import BASE_CONFIG


def test_report_without_baseline_posts_writes_every_chart(write_config: Callable[..., Path], tmp_path: Path) -> None:
    event = {**BASE_CONFIG["events"][0], "milestones": {"announced": "2012-12-17", "effective": "2012-12-20"}}
    config = write_config(events=[event])
    archive = tmp_path / "after_only.csv"
    rows = [f"{i},2012-12-{17 + i % 4}T{i % 24:02d}:00:00Z,instagram terms are terrible {i}" for i in range(120)]
    archive.write_text("id,created_at,text\n" + "\n".join(rows) + "\n", encoding="utf-8")
    runner = CliRunner()
    for args in (["import", str(archive), "--event", event["name"]], ["score"], ["report"]):
        result = runner.invoke(cli, ["--config", str(config), *args])
        assert result.exit_code == 0, result.output
    folder = tmp_path / "dashboards" / event["name"]
    for name in ("timeline.png", "compare.png", "shift.png", "drivers.png", "index.html", "summary.json"):
        assert (folder / name).stat().st_size > 0, name
    assert "nan" not in (folder / "index.html").read_text(encoding="utf-8").lower().replace("nanosecond", "")


def test_dollar_signs_in_user_text_are_drawn_as_written_not_as_math() -> None:
    """'$9 to $12' in a title, a driving term, an aspect or a milestone name must not become math ("9to12")."""
    import dataclasses
    from datetime import timedelta

    from matplotlib.text import Text

    from monitor import plots
    from tests.analysis_factory import make_analysis

    base = make_analysis()
    analysis = dataclasses.replace(
        base,
        title="Plan goes from $9 to $12",
        platform="$Gram",
        milestones={**base.milestones, "price $9 to $12": base.milestones["reversed"] + timedelta(days=2)},
        drivers=[dataclasses.replace(base.drivers[0], term="$12"), *base.drivers[1:]],
        aspects=[dataclasses.replace(base.aspects[0], aspect="$price$"), *base.aspects[1:]],
    )
    figures = [plots.timeline_figure, plots.shift_figure, plots.drivers_figure, lambda a: plots.compare_figure([a])]
    with plots.chart_style():
        for draw in figures:
            figure = draw(analysis)
            figure.canvas.draw()
            texts = [text for text in figure.findobj(Text) if "$" in text.get_text()]
            assert texts, draw
            assert not [text.get_text() for text in texts if text.get_parse_math()], draw


def test_a_report_removes_the_building_folders_of_killed_reports(
    write_config: Callable[..., Path], tmp_path: Path
) -> None:
    """A report killed mid-way leaves .EVENT.building-PID; the next report removes it once its process is gone."""
    import os
    import subprocess
    import sys
    import time

    config = write_config()
    archive = tmp_path / "posts.csv"
    rows = [f"{i},2012-12-{10 + i % 9}T{i % 24:02d}:00:00Z,instagram terms are terrible {i}" for i in range(200)]
    archive.write_text("id,created_at,text\n" + "\n".join(rows) + "\n", encoding="utf-8")
    runner = CliRunner()
    for args in (["import", str(archive), "--event", "instagram-tos-2012"], ["score"]):
        assert runner.invoke(cli, ["--config", str(config), *args]).exit_code == 0
    out = tmp_path / "dashboards"
    killed = subprocess.Popen([sys.executable, "-m", "monitor", "--config", str(config), "report"])
    leftover = out / f".instagram-tos-2012.building-{killed.pid}"
    deadline = time.monotonic() + 60
    while not leftover.exists() and time.monotonic() < deadline and killed.poll() is None:
        time.sleep(0.02)
    killed.kill()
    killed.wait()
    assert leftover.is_dir()
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        running = out / f".instagram-tos-2012.building-{sleeper.pid}"  # another report, still building
        aged = out / f".instagram-tos-2012.old-{sleeper.pid}"  # a PID alive again, but the folder is 2 days old
        for folder in (running, aged):
            folder.mkdir()
        os.utime(aged, (time.time() - 2 * 86400, time.time() - 2 * 86400))
        other = out / f".other-event.building-{killed.pid}"  # another event's: not this report's business
        other.mkdir()
        assert runner.invoke(cli, ["--config", str(config), "report"]).exit_code == 0
        assert not leftover.exists() and not aged.exists()
        assert running.is_dir() and other.is_dir()
    finally:
        sleeper.kill()
        sleeper.wait()
