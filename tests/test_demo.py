"""`backlash demo` and `backlash report` end to end: simulation → store → scores → report folder."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from monitor.cli import cli
from monitor.plots import CHART_FILES, CHART_SIZES
from tests.test_report import pixels, png_size


def run(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("demo")
    result = run("demo", "--dir", str(base), "--posts", "1500")
    assert result.exit_code == 0, result.output
    return base


def test_demo_writes_every_file_it_prints(demo_dir: Path) -> None:
    folder = demo_dir / "dashboards" / "instagram-tos-2012"
    for name in CHART_FILES:
        assert png_size(folder / name) == CHART_SIZES[name]
        assert pixels(folder / name).std() > 20
    assert (demo_dir / "data" / "demo.db").is_file()
    summary = json.loads((folder / "summary.json").read_text(encoding="utf-8"))
    assert summary["coverage"]["posts"] == 1500
    assert summary["coverage"]["simulated"] is True
    assert all(spike["start"].endswith("Z") for spike in summary["spikes"])
    page = (folder / "index.html").read_text(encoding="utf-8")
    assert "Simulated data" in page


def test_demo_storm_shows_in_the_numbers(demo_dir: Path) -> None:
    summary = json.loads((demo_dir / "dashboards" / "instagram-tos-2012" / "summary.json").read_text(encoding="utf-8"))
    week = next(
        s
        for s in summary["shifts"]
        if (s["milestone"], s["window"], s["metric"]) == ("announced", "7d", "mean_compound")
    )
    assert week["diff"] < -0.2 and week["ci_high"] < 0  # clearly more negative after the announcement
    assert any(spike["kind"] == "volume" for spike in summary["spikes"])


def test_report_command_on_the_demo_database_replaces_the_folder(demo_dir: Path) -> None:
    folder = demo_dir / "dashboards" / "instagram-tos-2012"
    (folder / "leftover.txt").write_text("old", encoding="utf-8")
    config = demo_dir / "data" / "demo-config.yaml"
    result = run("--config", str(config), "report", "--event", "instagram-tos-2012")
    assert result.exit_code == 0, result.output
    assert str(folder / "index.html") in result.output
    assert not (folder / "leftover.txt").exists()
    kept = sorted(p.name for p in folder.iterdir() if p.suffix == ".eml")  # the demo's dry-run digest stays
    assert kept and all(name.startswith("digest-") for name in kept)
    assert sorted(p.name for p in folder.iterdir() if p.suffix != ".eml") == sorted(
        [*CHART_FILES, "index.html", "summary.json"]
    )


def test_report_unknown_event_is_exit_2(demo_dir: Path) -> None:
    result = run("--config", str(demo_dir / "data" / "demo-config.yaml"), "report", "--event", "nope")
    assert result.exit_code == 2
    assert "no event named 'nope'" in result.output
