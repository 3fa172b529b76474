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
