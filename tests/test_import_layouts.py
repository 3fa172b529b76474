"""`backlash import` of the files a newcomer has: other delimiters, day-first dates, a JSON array, rejects with their row."""

from __future__ import annotations

import csv
import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from monitor.cli import cli
from monitor.pipeline import open_workspace
from tests.workspaces import event_rows

EVENT = "instagram-tos-2012"


def run(config: Path, *args: str) -> Result:
    return CliRunner().invoke(cli, ["--config", str(config), *args], catch_exceptions=False)


def import_text(config: Path, archive: Path, text: str, *options: str) -> Result:
    """Write the archive, then `backlash import` it into the event."""
    archive.write_text(text, encoding="utf-8")
    return run(config, "import", str(archive), "--event", EVENT, *options)


def stored(config: Path) -> list[tuple[datetime, str]]:
    ws = open_workspace(config)
    try:
        return sorted((row["created_at"], row["text"]) for row in event_rows(ws.store, EVENT))
    finally:
        ws.close()


def rejects_file(archive: Path) -> list[dict[str, str]]:
    with archive.with_name(archive.name + ".rejects.csv").open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


# ---- delimiters ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("delimiter", "name"), [(";", "semicolon"), ("\t", "tab"), ("|", "pipe")])
def test_a_file_separated_otherwise_is_sniffed_from_its_header_and_said(
    write_config: Callable[..., Path], tmp_path: Path, delimiter: str, name: str
) -> None:
    archive = tmp_path / "posts.txt"
    rows = [
        ["id", "created_at", "text"],
        ["1", "2012-12-18T10:00:00Z", "ads, ads, ads"],
        ["2", "2012-12-18T11:00:00Z", "quit"],
    ]
    result = import_text(write_config(), archive, "\n".join(delimiter.join(row) for row in rows) + "\n")
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [
        f"{archive}: read as {name}-separated (sniffed from the header; --delimiter overrides)",
        f"{archive}: read 2, new 2, duplicate 0, rejected 0 → event {EVENT} (source archive; 2 added to it)",
    ]
    assert stored(write_config()) == [
        (datetime(2012, 12, 18, 10, tzinfo=UTC), "ads, ads, ads"),
        (datetime(2012, 12, 18, 11, tzinfo=UTC), "quit"),
    ]


def test_a_comma_file_says_nothing_about_its_delimiter(write_config: Callable[..., Path], tmp_path: Path) -> None:
    archive = tmp_path / "posts.csv"
    result = import_text(
        write_config(),
        archive,
        'created_at,"text; as posted"\n2012-12-18T10:00:00Z,a; b; c\n',
        "--map",
        "text=text; as posted",
    )
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [
        f"{archive}: read 1, new 1, duplicate 0, rejected 0 → event {EVENT} (source archive; 1 added to it)"
    ]
    assert stored(write_config()) == [(datetime(2012, 12, 18, 10, tzinfo=UTC), "a; b; c")]


def test_delimiter_overrides_the_sniffed_one_and_a_wrong_one_lists_the_columns_found(
    write_config: Callable[..., Path], tmp_path: Path
) -> None:
    archive = tmp_path / "posts.csv"
    wrong = import_text(write_config(), archive, "created_at;text\n2012-12-18T10:00:00Z;hello\n", "--delimiter", ",")
    assert wrong.exit_code == 2
    assert wrong.output == (
        f"error: {archive}: no column 'created_at' for required field 'created_at' (use --map created_at=COLUMN); "
        "columns found: 'created_at;text'\n"
    )
    right = run(write_config(), "import", str(archive), "--event", EVENT, "--delimiter", "semicolon")
    assert right.exit_code == 0, right.output
    assert right.stdout.splitlines()[0] == f"{archive}: read as semicolon-separated (--delimiter)"


def test_a_delimiter_of_more_than_one_character_is_a_usage_error(
    write_config: Callable[..., Path], tmp_path: Path
) -> None:
    archive = tmp_path / "posts.csv"
    result = import_text(write_config(), archive, "created_at,text\n2012-12-18T10:00:00Z,hello\n", "--delimiter", ";;")
    assert result.exit_code == 2
    assert result.output == "error: --delimiter ';;': expected one character (other than a quote), or tab\n"


# ---- dates -----------------------------------------------------------------------------------------

DAY_FIRST = "created_at;text\n13/11/2022 21:05;one\n11/09/2022 10:00;two\n"


def test_day_first_dates_are_rejected_naming_the_column_and_suggesting_date_format(
    write_config: Callable[..., Path], tmp_path: Path
) -> None:
    archive = tmp_path / "dates.csv"
    result = import_text(write_config(), archive, DAY_FIRST)
    assert result.exit_code == 3
    either = "could be day/month or month/day; say which with --date-format, e.g. --date-format '%d/%m/%Y %H:%M'"
    lines = result.output.splitlines()
    assert "  line 2: created_at: '13/11/2022 21:05' is day/month: read it with --date-format '%d/%m/%Y %H:%M'" in lines
    assert f"  line 3: created_at: '11/09/2022 10:00' {either} (day first) or '%m/%d/%Y %H:%M' (month first)" in lines
    assert stored(write_config()) == []  # 11/09 is not read as 9 November, nor as 11 September


def test_date_format_reads_day_first_dates_in_the_config_zone(
    write_config: Callable[..., Path], tmp_path: Path
) -> None:
    archive = tmp_path / "dates.csv"
    archive.write_text(DAY_FIRST, encoding="utf-8")
    config = write_config(timezone="Europe/Paris")  # UTC+1 in November, UTC+2 in September
    result = run(config, "import", str(archive), "--event", EVENT, "--date-format", "%d/%m/%Y %H:%M")
    assert result.exit_code == 0, result.output
    assert stored(config) == [
        (datetime(2022, 9, 11, 8, 0, tzinfo=UTC), "two"),
        (datetime(2022, 11, 13, 20, 5, tzinfo=UTC), "one"),
    ]


def test_a_mapped_date_column_is_named_and_a_date_off_the_format_rejected(
    write_config: Callable[..., Path], tmp_path: Path
) -> None:
    archive = tmp_path / "dates.csv"
    plain = import_text(
        write_config(), archive, "Datum,text\n13.11.22,one\n2022-11-13,two\n", "--map", "created_at=Datum"
    )
    assert (
        "  line 2: created_at (column 'Datum'): '13.11.22' is day/month: read it with --date-format '%d.%m.%y'"
    ) in plain.output.splitlines()
    formatted = run(
        write_config(),
        "import",
        str(archive),
        "--event",
        EVENT,
        "--map",
        "created_at=Datum",
        "--date-format",
        "%d.%m.%y",
    )
    assert formatted.exit_code == 3
    assert "  line 3: created_at (column 'Datum'): '2022-11-13' does not match --date-format '%d.%m.%y'" in (
        formatted.output.splitlines()
    )
    midnight = datetime(2022, 11, 13, tzinfo=UTC)
    assert stored(write_config()) == [(midnight, "one"), (midnight, "two")]  # "two" was ISO: the first run kept it


def test_a_date_format_time_out_of_range_is_a_rejected_row_not_a_crash(
    write_config: Callable[..., Path], tmp_path: Path
) -> None:
    archive = tmp_path / "far.csv"
    text = "created_at,text\n01/01/0001 00:00 +0100,too early for any calendar\n13/11/2022 21:05 +0000,kept\n"
    result = import_text(write_config(), archive, text, "--date-format", "%d/%m/%Y %H:%M %z")
    assert result.exit_code == 3, result.output
    assert "  line 2: created_at: '01/01/0001 00:00 +0100' is out of the range of dates" in result.output
    assert [text for _, text in stored(write_config())] == ["kept"]


def test_a_date_format_strptime_cannot_read_is_a_usage_error(write_config: Callable[..., Path], tmp_path: Path) -> None:
    archive = tmp_path / "dates.csv"
    result = import_text(write_config(), archive, DAY_FIRST, "--date-format", "%d/%m/%Q")
    assert result.exit_code == 2
    assert result.output == "error: --date-format '%d/%m/%Q': 'Q' is a bad directive in format '%d/%m/%Q'\n"


# ---- a JSON array ----------------------------------------------------------------------------------


def test_a_json_array_is_read_as_posts_with_each_bad_object_on_its_line(
    write_config: Callable[..., Path], tmp_path: Path
) -> None:
    archive = tmp_path / "posts.json"
    result = import_text(
        write_config(),
        archive,
        "[\n"
        '  {"created_at": "2012-12-18T10:00:00Z", "text": "quit instagram"},\n'
        '  {"created_at": "2012-12-18T11:00:00Z",\n'
        '   "text": ""},\n'
        "  5,\n"
        '  {"created_at": "2012-12-18T12:00:00Z", "text": "ads [everywhere]"}\n'
        "]\n",
    )
    assert result.exit_code == 3
    assert result.stdout.splitlines() == [
        f"{archive}: read as one JSON array (not JSON Lines)",
        f"{archive}: read 2, new 2, duplicate 0, rejected 2 → event {EVENT} (source archive; 2 added to it)",
    ]
    assert "  line 3: text: missing or empty" in result.output and "  line 5: not a JSON object" in result.output
    assert [(row["line"], row["raw"]) for row in rejects_file(archive)] == [
        ("3", '{"created_at": "2012-12-18T11:00:00Z",\n   "text": ""}'),
        ("5", "5"),
    ]
    assert [text for _, text in stored(write_config())] == ["quit instagram", "ads [everywhere]"]


def test_a_one_line_array_under_format_jsonl_is_recognised(write_config: Callable[..., Path], tmp_path: Path) -> None:
    archive = tmp_path / "posts.txt"
    items = [{"created_at": f"2012-12-18T{hour:02d}:00:00Z", "text": f"post {hour}"} for hour in range(24)]
    result = import_text(write_config(), archive, json.dumps(items), "--format", "jsonl")
    assert result.exit_code == 0, result.output
    assert "read 24, new 24" in result.output
    assert len(stored(write_config())) == 24


def test_a_broken_array_keeps_the_objects_before_the_break_and_says_where(
    write_config: Callable[..., Path], tmp_path: Path
) -> None:
    archive = tmp_path / "posts.json"
    result = import_text(
        write_config(), archive, '[{"created_at": "2012-12-18T10:00:00Z", "text": "kept"},\n {"text": "cut'
    )
    assert result.exit_code == 3
    assert "  line 2: not valid JSON: Unterminated string starting at; the rest of the file is not read" in (
        result.output.splitlines()
    )
    assert [text for _, text in stored(write_config())] == ["kept"]


# ---- the rejects file ------------------------------------------------------------------------------


def test_the_rejects_file_holds_each_rejected_row_as_the_file_has_it(
    write_config: Callable[..., Path], tmp_path: Path
) -> None:
    archive = tmp_path / "posts.csv"
    result = import_text(
        write_config(),
        archive,
        "created_at,text,likes\n"
        '2012-12-18T10:00:00Z,"fine",1\n'
        '2012-12-18T11:00:00Z,"two\nlines",many\n'
        "=1+2,formula,3\n"
        "2012-12-18T12:00:00Z,short\n",
    )
    assert result.exit_code == 3
    assert rejects_file(archive) == [
        {"line": "3", "reason": "likes: 'many' is not a number", "raw": '2012-12-18T11:00:00Z,"two\nlines",many'},
        {"line": "5", "reason": "created_at: '=1+2' is not a timestamp (ISO 8601, RFC 2822 or epoch seconds)",
         "raw": "'=1+2,formula,3"},  # a spreadsheet would run it: neutralised as an export's cells are
        {"line": "6", "reason": "expected 3 columns, found 2", "raw": "2012-12-18T12:00:00Z,short"},
    ]  # fmt: skip


def test_the_rejects_file_of_json_lines_holds_the_line(write_config: Callable[..., Path], tmp_path: Path) -> None:
    archive = tmp_path / "posts.jsonl"
    assert (
        import_text(
            write_config(), archive, '{"created_at": "2012-12-18T10:00:00Z", "text": "ok"}\n{broken\n'
        ).exit_code
        == 3
    )
    assert rejects_file(archive) == [
        {
            "line": "2",
            "reason": "not valid JSON: Expecting property name enclosed in double quotes at column 2",
            "raw": "{broken",
        }
    ]


def test_a_month_first_date_is_named_so_with_the_format_that_reads_it(
    write_config: Callable[..., Path], tmp_path: Path
) -> None:
    archive = tmp_path / "us.csv"
    result = import_text(write_config(), archive, "created_at,text\n11/13/2022 10:13,one\n13/13/2022,two\n")
    lines = result.output.splitlines()
    assert "  line 2: created_at: '11/13/2022 10:13' is month/day: read it with --date-format '%m/%d/%Y %H:%M'" in lines
    assert "  line 3: created_at: '13/13/2022' is not a date (neither 13 nor 13 is a month)" in lines
    again = run(write_config(), "import", str(archive), "--event", EVENT, "--date-format", "%m/%d/%Y %H:%M")
    assert stored(write_config()) == [(datetime(2022, 11, 13, 10, 13, tzinfo=UTC), "one")]
    assert again.exit_code == 3  # 13/13 fits no format
