"""`backlash import` on hostile archives: numbers that overflow, dates out of range, control characters,
texts over the limit, a byte-order mark, a wrong --map, a rejects file that is a link, stray files in a
Parquet folder. Real files, a real database (PostgreSQL too when BACKLASH_TEST_DATABASE_URL is set)."""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from monitor.cli import cli
from monitor.pipeline import open_workspace
from monitor.posts import MAX_COUNT, MAX_TEXT_CHARS, InvalidPostError, Post
from monitor.sources import archive
from monitor.sources.x_payloads import normalize_counts, normalize_page_items
from monitor.store import Store
from tests.conftest import POSTGRES_URL, _reset_postgres
from tests.workspaces import event_rows

EVENT = "instagram-tos-2012"
GOOD = {"created_at": "2012-12-18T10:00:00Z", "text": "quit instagram"}


def run(config: Path, *args: str) -> Result:
    return CliRunner().invoke(cli, ["--config", str(config), *args], catch_exceptions=False)


def stored(config: Path) -> list[dict[str, Any]]:
    ws = open_workspace(config)
    try:
        return event_rows(ws.store, EVENT)
    finally:
        ws.close()


@pytest.fixture(params=["sqlite", "postgresql"])
def backend_config(request: pytest.FixtureRequest, write_config: Callable[..., Path]) -> Iterator[Path]:
    """A config on a SQLite file, and on PostgreSQL too when BACKLASH_TEST_DATABASE_URL is set."""
    if request.param == "sqlite":
        yield write_config()
        return
    if not POSTGRES_URL:
        pytest.skip("PostgreSQL: set BACKLASH_TEST_DATABASE_URL to run this against it")
    _reset_postgres(POSTGRES_URL)
    yield write_config(database=POSTGRES_URL)
    _reset_postgres(POSTGRES_URL)


def write_csv(path: Path, rows: list[dict[str, str]]) -> Path:
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["id", "created_at", "text", "author", "likes"])
        writer.writeheader()
        for row in rows:
            writer.writerow(row)
    return path


def write_jsonl(path: Path, items: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(item) + "\n" for item in items), encoding="utf-8")
    return path


# ---- numbers and dates (items 2 and 3) -----------------------------------------------------------

BAD_VALUES: list[tuple[dict[str, Any], str]] = [
    ({"created_at": "99999999999999999999"}, "created_at: '99999999999999999999' is out of the range of dates"),
    ({"created_at": "1e30"}, "created_at: '1e30' is out of the range of dates"),
    ({"created_at": "2999-01-01T00:00:00Z"}, "created_at: 2999-01-01T00:00:00+00:00 is in the future"),
    ({"created_at": "0001-01-01T00:00:00Z"}, "created_at: 0001-01-01T00:00:00+00:00 is before 1990-01-01"),
    ({"created_at": "0001-01-01T00:00:00+05:00"}, "created_at: '0001-01-01T00:00:00+05:00' is out of the range"),
    ({"likes": "inf"}, "likes: 'inf' is not a number"),
    ({"likes": "1e400"}, "likes: '1e400' is not a number"),
    ({"likes": "99999999999999999999"}, f"likes: 99999999999999999999 is more than {MAX_COUNT}"),
    ({"likes": "-3"}, "likes: -3 is negative"),
]


def _rows_with_bad_values() -> list[dict[str, str]]:
    """A good row, then each bad value in a row of its own, then a good row: lines 2, 3..11, 12."""
    rows = [{**GOOD, "id": "first", "likes": "1"}]
    rows += [{**GOOD, "id": f"bad{i}", "likes": "1", **change} for i, (change, _) in enumerate(BAD_VALUES)]
    return rows + [{**GOOD, "id": "last", "likes": "2"}]


def _assert_bad_rows_rejected(
    result: Result, config: Path, first_line: int, read_as: dict[int, str] | None = None
) -> None:
    """Each bad row rejected with its reason (or the one `read_as` gives its offset), the two good rows kept."""
    assert result.exit_code == 3, result.output
    assert "unexpected" not in result.output and "Traceback" not in result.output
    assert f"read 2, new 2, duplicate 0, rejected {len(BAD_VALUES)}" in result.output
    for offset, (_, reason) in enumerate(BAD_VALUES):
        reason = (read_as or {}).get(offset, reason)
        assert f"  line {first_line + offset}: {reason}" in result.output
    assert sorted(row["post_id"] for row in stored(config)) == ["first", "last"]


def test_csv_numbers_and_dates_out_of_range_are_rejected_and_later_rows_kept(
    backend_config: Path, tmp_path: Path
) -> None:
    archive = write_csv(tmp_path / "numbers.csv", _rows_with_bad_values())
    _assert_bad_rows_rejected(run(backend_config, "import", str(archive), "--event", EVENT), backend_config, 3)


def test_jsonl_numbers_and_dates_out_of_range_are_rejected_and_later_rows_kept(
    write_config: Callable[..., Path], tmp_path: Path
) -> None:
    archive = tmp_path / "numbers.jsonl"
    lines = [json.dumps(row) for row in _rows_with_bad_values()]
    lines[6] = lines[6].replace('"likes": "inf"', '"likes": Infinity')  # JSON numbers, not strings
    lines[7] = lines[7].replace('"likes": "1e400"', '"likes": 1e400')
    lines[8] = lines[8].replace('"likes": "99999999999999999999"', '"likes": 99999999999999999999')
    archive.write_text("\n".join(lines) + "\n", encoding="utf-8")
    config = write_config()
    result = run(config, "import", str(archive), "--event", EVENT)
    _assert_bad_rows_rejected(result, config, 2, read_as={6: "likes: 'inf' is not a number"})  # JSON's 1e400 is inf


def test_parquet_numbers_and_dates_out_of_range_are_rejected(write_config: Callable[..., Path], tmp_path: Path) -> None:
    pa = pytest.importorskip("pyarrow", reason="Parquet needs the [scale] extra")
    import pyarrow.parquet as pq

    rows = _rows_with_bad_values()
    table = pa.table(
        {
            "id": [row["id"] for row in rows],
            "created_at": [row["created_at"] for row in rows],
            "text": [row["text"] for row in rows],
            "likes": [float(row["likes"]) for row in rows],  # a float column: inf and 1e400 are really infinite
        }
    )
    pq.write_table(table, tmp_path / "numbers.parquet")
    config = write_config()
    result = run(config, "import", str(tmp_path / "numbers.parquet"), "--event", EVENT)
    assert result.exit_code == 3, result.output
    assert "line 7: likes: 'inf' is not a number" in result.output
    assert f"line 9: likes: 100000000000000000000 is more than {MAX_COUNT}" in result.output
    assert sorted(row["post_id"] for row in stored(config)) == ["first", "last"]


def test_twarc_tweet_out_of_range_is_rejected_and_absurd_counts_are_unknown(
    write_config: Callable[..., Path], tmp_path: Path
) -> None:
    def tweet(tweet_id: str, created_at: str, likes: int) -> dict[str, Any]:
        metrics = {"like_count": likes, "retweet_count": 0, "reply_count": 0}
        return {"id": tweet_id, "text": "quit instagram", "created_at": created_at, "public_metrics": metrics}

    page = {
        "data": [
            tweet("1", "2012-12-18T10:00:00.000Z", 99999999999999999999),
            tweet("2", "2999-01-01T00:00:00.000Z", 1),
            tweet("3", "2012-12-18T11:00:00.000Z", 5),
        ]
    }
    archive = write_jsonl(tmp_path / "twarc.jsonl", [page])
    config = write_config()
    result = run(config, "import", str(archive), "--event", EVENT, "--format", "twarc")
    assert result.exit_code == 3, result.output
    assert "line 1: tweet '2': created_at: 2999-01-01T00:00:00+00:00 is in the future" in result.output
    assert {row["post_id"]: row["likes"] for row in stored(config)} == {"1": None, "3": 5}


def test_live_normalisers_skip_a_post_out_of_range_instead_of_failing_the_page() -> None:
    page = {"data": [{"id": "1", "text": "x" * (MAX_TEXT_CHARS + 1), "created_at": "2012-12-18T10:00:00.000Z"}]}
    (result,) = normalize_page_items(page, datetime.now(UTC))
    assert result == f"tweet '1': text: {MAX_TEXT_CHARS + 1} characters, more than the limit of {MAX_TEXT_CHARS}"


# ---- control characters (item 4) -----------------------------------------------------------------


def test_nul_and_control_characters_are_stripped_on_both_backends(backend_config: Path, tmp_path: Path) -> None:
    rows = [
        {**GOOD, "id": "nul", "text": "quit\x00 instagram\x1b now\tplease\r\nok", "author": "a\x00nn", "likes": "1"},
        {**GOOD, "id": "plain", "text": "plain text", "author": "bob", "likes": "2"},
    ]
    archive = write_csv(tmp_path / "controls.csv", rows)
    result = run(backend_config, "import", str(archive), "--event", EVENT)
    assert result.exit_code == 0, result.output
    by_id = {row["post_id"]: row for row in stored(backend_config)}
    assert by_id["nul"]["text"] == "quit instagram now\tplease\r\nok"
    assert by_id["nul"]["author"] == "ann"
    assert by_id["plain"]["text"] == "plain text"


def test_every_source_gets_clean_text_at_the_post_boundary(store: Store) -> None:
    now = datetime(2012, 12, 18, tzinfo=UTC)
    post = Post(source="x", id="1\x00", created_at=now, text="a\x00b\x07c\ud83d", author="\x00ann", lang="en\x00")
    assert (post.id, post.text, post.author, post.lang) == ("1", "abc\ufffd", "ann", "en")
    assert store.add_posts("e", [post]).new == 1  # PostgreSQL refuses NUL: the same post stores on both backends


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"created_at": datetime(1989, 12, 31, tzinfo=UTC)}, "created_at: 1989-12-31T00:00:00+00:00 is before"),
        ({"created_at": datetime.now(UTC) + timedelta(days=3)}, "is in the future (more than 2 days from now)"),
        ({"text": "x" * (MAX_TEXT_CHARS + 1)}, f"text: {MAX_TEXT_CHARS + 1} characters, more than the limit"),
        ({"id": "i" * 257}, "id: 257 characters, more than the limit of 256"),
        ({"followers": MAX_COUNT + 1}, f"followers: {MAX_COUNT + 1} is more than {MAX_COUNT}"),
    ],
)
def test_a_post_the_store_cannot_hold_is_refused_where_it_is_made(change: dict[str, Any], reason: str) -> None:
    fields: dict[str, Any] = {"source": "x", "id": "1", "created_at": datetime(2012, 12, 18, tzinfo=UTC), "text": "t"}
    with pytest.raises(InvalidPostError, match=reason.replace("(", r"\(").replace(")", r"\)").replace("+", r"\+")):
        Post(**{**fields, **change})


# ---- one text limit for every format (item 16) ---------------------------------------------------


def test_one_text_limit_for_every_format(write_config: Callable[..., Path], tmp_path: Path) -> None:
    long_text = "y" * (MAX_TEXT_CHARS + 1)
    jsonl = write_jsonl(tmp_path / "long.jsonl", [{**GOOD, "id": "long", "text": long_text}, {**GOOD, "id": "ok"}])
    config = write_config()
    result = run(config, "import", str(jsonl), "--event", EVENT)
    assert result.exit_code == 3, result.output
    assert f"line 1: text: {MAX_TEXT_CHARS + 1} characters, more than the limit of {MAX_TEXT_CHARS}" in result.output
    csv_file = write_csv(tmp_path / "long.csv", [{**GOOD, "id": "long2", "text": long_text}, {**GOOD, "id": "ok2"}])
    result = run(config, "import", str(csv_file), "--event", EVENT)
    assert result.exit_code == 3, result.output
    assert f"line 2: a field of more than {MAX_TEXT_CHARS} characters, the limit of a text" in result.output
    assert sorted(row["post_id"] for row in stored(config)) == ["ok", "ok2"]


def test_a_text_at_the_limit_is_kept(write_config: Callable[..., Path], tmp_path: Path) -> None:
    archive = write_jsonl(tmp_path / "edge.jsonl", [{**GOOD, "id": "edge", "text": "z" * MAX_TEXT_CHARS}])
    config = write_config()
    assert run(config, "import", str(archive), "--event", EVENT).exit_code == 0
    assert len(stored(config)[0]["text"]) == MAX_TEXT_CHARS


# ---- a spreadsheet's CSV, --map mistakes (items 12 and 13) ----------------------------------------


def test_csv_with_a_byte_order_mark_is_read(write_config: Callable[..., Path], tmp_path: Path) -> None:
    archive = tmp_path / "excel.csv"
    archive.write_bytes(b"\xef\xbb\xbfcreated_at,text\r\n2012-12-18 10:00,quit instagram\r\n")
    config = write_config()
    result = run(config, "import", str(archive), "--event", EVENT)
    assert result.exit_code == 0, result.output
    assert [row["text"] for row in stored(config)] == ["quit instagram"]


def test_map_to_a_column_that_is_not_there_is_exit_2_naming_it(
    write_config: Callable[..., Path], tmp_path: Path
) -> None:
    archive = write_csv(tmp_path / "a.csv", [{**GOOD, "id": "1"}])
    config = write_config()
    result = run(config, "import", str(archive), "--event", EVENT, "--map", "author=NoSuchColumn")
    assert result.exit_code == 2
    assert result.output == (
        f"error: {archive}: --map author=NoSuchColumn: no column 'NoSuchColumn'; "
        "columns found: 'id', 'created_at', 'text', 'author', 'likes'\n"
    )
    assert stored(config) == []


def test_missing_required_column_lists_the_columns_found(write_config: Callable[..., Path], tmp_path: Path) -> None:
    archive = tmp_path / "a.csv"
    archive.write_text("when,Tweet\n2012-12-18,hello\n", encoding="utf-8")
    result = run(write_config(), "import", str(archive), "--event", EVENT)
    assert result.exit_code == 2
    assert result.output == (
        f"error: {archive}: no column 'created_at' for required field 'created_at' "
        "(use --map created_at=COLUMN); columns found: 'when', 'Tweet'\n"
    )


def test_map_with_twarc_is_refused_and_a_jsonl_key_never_seen_is_named(
    write_config: Callable[..., Path], tmp_path: Path
) -> None:
    archive = write_jsonl(tmp_path / "a.jsonl", [{**GOOD, "id": "1"}])
    config = write_config()
    twarc = run(config, "import", str(archive), "--event", EVENT, "--format", "twarc", "--map", "text=full_text")
    assert twarc.exit_code == 2
    assert twarc.output == "error: --map does not apply to --format twarc: its fields are X's own\n"
    result = run(config, "import", str(archive), "--event", EVENT, "--map", "author=user_name")
    assert result.exit_code == 0
    assert "--map author=user_name: no line has the key 'user_name'" in result.output


# ---- the rejects file (item 14) ------------------------------------------------------------------


def test_a_rejects_file_that_is_a_symbolic_link_is_never_written_through(
    write_config: Callable[..., Path], tmp_path: Path
) -> None:
    archive = write_csv(tmp_path / "a.csv", [{**GOOD, "id": "1"}, {**GOOD, "id": "2", "created_at": "never"}])
    precious = tmp_path / "precious.txt"
    precious.write_text("keep me\n", encoding="utf-8")
    (tmp_path / "a.csv.rejects.csv").symlink_to(precious)
    config = write_config()
    result = run(config, "import", str(archive), "--event", EVENT)
    assert result.exit_code == 2
    assert result.output == (
        f"error: {tmp_path / 'a.csv.rejects.csv'}: is a symbolic link; rejects are never written through one "
        "(remove it)\n"
    )
    assert precious.read_text(encoding="utf-8") == "keep me\n"
    assert stored(config) == []


def test_a_rejects_path_that_is_not_a_plain_file_is_refused_before_reading(
    write_config: Callable[..., Path], tmp_path: Path
) -> None:
    archive = write_csv(tmp_path / "a.csv", [{**GOOD, "id": "1"}])
    (tmp_path / "a.csv.rejects.csv").mkdir()
    result = run(write_config(), "import", str(archive), "--event", EVENT)
    assert result.exit_code == 2
    assert result.output == f"error: {tmp_path / 'a.csv.rejects.csv'}: exists and is not a regular file (remove it)\n"


# ---- Parquet folders (item 18) -------------------------------------------------------------------


def _parquet_folder(tmp_path: Path) -> Path:
    pa = pytest.importorskip("pyarrow", reason="Parquet needs the [scale] extra")
    import pyarrow.parquet as pq

    folder = tmp_path / "dataset"
    (folder / "day=2012-12-18").mkdir(parents=True)
    table = pa.table({"id": ["p1", "p2"], "created_at": [GOOD["created_at"]] * 2, "text": ["one", "two"]})
    pq.write_table(table, folder / "day=2012-12-18" / "part-0.parquet")
    return folder


def test_parquet_folder_skips_files_that_are_not_parquet_naming_each(
    write_config: Callable[..., Path], tmp_path: Path
) -> None:
    folder = _parquet_folder(tmp_path)
    (folder / "README.txt").write_text("notes about the dataset", encoding="utf-8")
    (folder / "day=2012-12-18" / "export.log").write_text("log", encoding="utf-8")
    (folder / "_SUCCESS").write_text("", encoding="utf-8")
    config = write_config()
    result = run(config, "import", str(folder), "--event", EVENT)
    assert result.exit_code == 0, result.output
    assert f"{folder / 'README.txt'}: skipped, not a .parquet file" in result.output
    assert f"{folder / 'day=2012-12-18' / 'export.log'}: skipped, not a .parquet file" in result.output
    assert "_SUCCESS" not in result.output
    assert sorted(row["post_id"] for row in stored(config)) == ["p1", "p2"]


def test_a_corrupt_parquet_file_is_exit_2_naming_it_before_anything_is_stored(
    write_config: Callable[..., Path], tmp_path: Path
) -> None:
    folder = _parquet_folder(tmp_path)
    broken = folder / "day=2012-12-18" / "part-1.parquet"
    broken.write_bytes(b"PAR1 this is not really parquet")
    config = write_config()
    result = run(config, "import", str(folder), "--event", EVENT)
    assert result.exit_code == 2
    assert result.output.startswith(f"error: {broken}: not a readable Parquet file (")
    assert len(result.output.strip().splitlines()) == 1
    assert stored(config) == []


def test_x_counts_out_of_range_are_skipped_not_stored() -> None:
    def bucket(start: str, count: Any) -> dict[str, Any]:
        return {"start": start, "end": start, "tweet_count": count}

    payload = {
        "data": [
            bucket("2012-12-18T09:00:00.000Z", 4),
            bucket("0001-01-01T00:00:00.000Z", 1),  # would fill every hour since year 1
            bucket("2012-12-18T10:00:00.000Z", float("inf")),
            bucket("2012-12-18T11:00:00.000Z", MAX_COUNT + 1),
            bucket("2012-12-18T12:00:00.000Z", 1),
        ]
    }
    assert [(start.hour, count) for start, count in normalize_counts(payload)] == [(9, 4), (10, 0), (11, 0), (12, 1)]


def test_json_nested_too_deeply_or_with_an_endless_number_is_a_rejected_line(
    write_config: Callable[..., Path], tmp_path: Path
) -> None:
    archive = tmp_path / "deep.jsonl"
    lines = ["[" * 100_000, '{"created_at": "2012-12-18", "text": "x", "likes": ' + "9" * 5000 + "}", json.dumps(GOOD)]
    archive.write_text("\n".join(lines) + "\n", encoding="utf-8")
    config = write_config()
    result = run(config, "import", str(archive), "--event", EVENT)
    assert result.exit_code == 3, result.output
    assert "line 1: not valid JSON: nested too deeply" in result.output
    assert "line 2: not valid JSON: Exceeds the limit (4300 digits) for integer string conversion" in result.output
    assert len(stored(config)) == 1


@pytest.mark.parametrize("source", ["   ", "s" * 129, "tab\x1bname"])
def test_a_source_name_the_store_cannot_hold_is_exit_2_before_reading(
    write_config: Callable[..., Path], tmp_path: Path, source: str
) -> None:
    archive = write_csv(tmp_path / "a.csv", [{**GOOD, "id": "1"}])
    result = run(write_config(), "import", str(archive), "--event", EVENT, "--source", source)
    assert result.exit_code == 2
    assert "must start with a letter or digit" in result.output and "at most 64 characters" in result.output
    assert len(result.output.strip().splitlines()) == 1


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
def test_an_endless_line_is_cut_and_rejected_not_held_in_memory(
    write_config: Callable[..., Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fmt: str
) -> None:
    monkeypatch.setattr(archive, "MAX_LINE_CHARS", 1000)  # the real limit is 64 MiB: the same code, a smaller file
    if fmt == "jsonl":
        lines = [json.dumps({**GOOD, "id": "before"}), json.dumps({**GOOD, "id": "long", "text": "x" * 5000})]
        lines.append(json.dumps({**GOOD, "id": "after"}))
        expected = "line 2: a line of more than 1,000 characters (cut there, the rest not read)"
    else:
        lines = ["id,created_at,text", f"before,{GOOD['created_at']},a", f"long,{GOOD['created_at']},{'x' * 5000}"]
        lines.append(f"after,{GOOD['created_at']},b")
        expected = "line 3: a line of more than 1,000 characters (cut there, the rest not read)"
    path = tmp_path / f"endless.{fmt}"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    config = write_config()
    result = run(config, "import", str(path), "--event", EVENT)
    assert result.exit_code == 3, result.output
    assert expected in result.output
    assert sorted(row["post_id"] for row in stored(config)) == ["after", "before"]
