"""What `backlash import` prints about rejected rows: a run of rows refused for the same reason is said once."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from click.testing import CliRunner

from monitor.cli import cli

EVENT = "instagram-tos-2012"
HINT = "is day/month: read it with --date-format '%d/%m/%Y %H:%M'"


def rejected_lines(config: Path, archive: Path, rows: list[str]) -> list[str]:
    archive.write_text("created_at,text\n" + "".join(f"{row}\n" for row in rows), encoding="utf-8")
    result = CliRunner().invoke(cli, ["--config", str(config), "import", str(archive), "--event", EVENT])
    assert result.exit_code == 3
    return [line for line in result.stderr.splitlines() if line.startswith("  ")]


def test_a_file_of_day_first_dates_says_the_reason_once_then_counts(
    write_config: Callable[..., Path], tmp_path: Path
) -> None:
    rows = [f"{day}/12/2012 10:{day:02d},quit instagram" for day in range(13, 28)]  # lines 2–16
    rows += [f"{day}/12/2012 11:00,quit instagram" for day in range(13, 28)]  # lines 17–31
    assert rejected_lines(write_config(), tmp_path / "dayfirst.csv", rows) == [
        f"  line 2: created_at: '13/12/2012 10:13' {HINT}",
        "  19 more like it, lines 3–21",  # the first 20 rejects are kept for the terminal
        "  … and 10 more",
    ]


def test_other_reasons_break_the_run_and_gaps_are_said(write_config: Callable[..., Path], tmp_path: Path) -> None:
    rows = [
        "13/12/2012 10:00,one",  # line 2
        "14/12/2012 10:00,two",  # line 3
        "2012-12-18T10:00:00Z,kept",  # line 4: stored, not a reject
        "15/12/2012 10:00,three",  # line 5
        "17/12/2012 10:00,four",  # line 6
        "2012-12-40,five",  # line 7
        "16/12/2012 10:00,six",  # line 8
        "19/12/2012 10:00,seven",  # line 9
    ]
    assert rejected_lines(write_config(), tmp_path / "mixed.csv", rows) == [
        f"  line 2: created_at: '13/12/2012 10:00' {HINT}",
        "  3 more like it, between lines 3 and 6",
        "  line 7: created_at: '2012-12-40' is not a timestamp (ISO 8601, RFC 2822 or epoch seconds)",
        f"  line 8: created_at: '16/12/2012 10:00' {HINT}",  # two alike are both shown
        f"  line 9: created_at: '19/12/2012 10:00' {HINT}",
    ]


def test_a_mapped_date_column_folds_too(write_config: Callable[..., Path], tmp_path: Path) -> None:
    """The column's name is quoted before each value: the values still differ, the reason is the same."""
    archive = tmp_path / "mapped.csv"
    rows = "".join(f"{day}/12/2012 10:00,quit instagram\n" for day in range(13, 18))  # lines 2–6
    archive.write_text("Date Created,text\n" + rows, encoding="utf-8")
    command = ["--config", str(write_config()), "import", str(archive), "--event", EVENT, "--map", "created_at=Date Created"]
    result = CliRunner().invoke(cli, command)
    assert [line for line in result.stderr.splitlines() if line.startswith("  ")] == [
        f"  line 2: created_at (column 'Date Created'): '13/12/2012 10:00' {HINT}",
        "  4 more like it, lines 3–6",
    ]
