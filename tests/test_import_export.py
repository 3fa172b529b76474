"""`backlash import` / `export` end to end on real files and a real database."""

from __future__ import annotations

import csv
import html
import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from monitor.cli import cli
from monitor.config import Config, load_config
from monitor.pipeline import import_archive, open_workspace
from monitor.store import AddResult
from tests.conftest import BASE_CONFIG
from tests.killed_store import KilledError, StoreKilledOnThirdPage
from tests.workspaces import event_rows, workspace_on

DATA = Path(__file__).parent / "data"
EVENT = "instagram-tos-2012"
MAP_SCRAPED = ["--map", "author=User", "--map", "created_at=Date Created", "--map", "text=Tweet"]
MAP_SCRAPED += ["--map", "lang=Language", "--map", "likes=Likes"]


def run(config: Path, *args: str) -> Result:
    return CliRunner().invoke(cli, ["--config", str(config), *args], catch_exceptions=False)


def stored_rows(config: Path) -> list[dict]:  # type: ignore[type-arg]
    ws = open_workspace(config)
    try:
        return event_rows(ws.store, EVENT)
    finally:
        ws.close()


def test_scraped_archive_without_ids_and_other_column_names(write_config: Callable[..., Path], tmp_path: Path) -> None:
    config = write_config()
    archive = tmp_path / "scraped.csv"
    archive.write_bytes((DATA / "scraped_archive.csv").read_bytes())
    result = run(config, "import", str(archive), "--event", EVENT, *MAP_SCRAPED)
    assert result.exit_code == 0, result.output
    assert "read 8, new 8, duplicate 0, rejected 0" in result.output
    rows = stored_rows(config)
    assert len(rows) == 8
    same_text = [row for row in rows if row["text"].startswith("Instagram now says it can sell")]
    assert len({row["post_id"] for row in same_text}) == 2  # same text, two authors: both kept
    multiline = next(row for row in rows if row["text"].startswith("So the new Instagram terms"))
    assert "2. you get nothing" in multiline["text"]
    assert next(row for row in rows if "Flickr" in row["text"])["author"] == "u3f1a9c0b7e"
    again = run(config, "import", str(archive), "--event", EVENT, *MAP_SCRAPED)
    assert "read 8, new 0, duplicate 8, rejected 0" in again.output
    assert len(stored_rows(config)) == 8


def test_missing_required_column_is_exit_2_naming_it(write_config: Callable[..., Path], tmp_path: Path) -> None:
    archive = tmp_path / "a.csv"
    archive.write_text("when,text\n2012-12-18,hello\n", encoding="utf-8")
    result = run(write_config(), "import", str(archive), "--event", EVENT)
    assert result.exit_code == 2
    assert "no column 'created_at' for required field 'created_at'" in result.output
    assert "Traceback" not in result.output


def _thousand_rows_with_five_bad(path: Path) -> list[int]:
    """Write 1,000 data rows; rows 100, 200, ... 500 are bad in different ways. Return their line numbers."""
    bad = {100: ("not a date", "hello"), 200: ("2012-12-18T10:00:00Z", ""), 300: ("2012-13-40 10:00", "x")}
    lines = ["id,created_at,text,likes"]
    for i in range(1, 1001):
        stamp, text = bad.get(i, (f"2012-12-18T{i % 24:02d}:{i % 60:02d}:00Z", f"post number {i}"))
        likes = "many" if i == 400 else str(i)
        lines.append(f'{i},{stamp},"{text}",{likes}')
    lines[500] = '500,2012-12-18T10:00:00Z,"broken "quote" here",1'
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return [101, 201, 301, 401, 501]


def test_five_bad_rows_among_a_thousand(write_config: Callable[..., Path], tmp_path: Path) -> None:
    archive = tmp_path / "mixed.csv"
    bad_lines = _thousand_rows_with_five_bad(archive)
    result = run(write_config(), "import", str(archive), "--event", EVENT)
    assert result.exit_code == 3
    assert "read 995, new 995" in result.output
    for line in bad_lines:
        assert f"line {line}:" in result.output
    with (tmp_path / "mixed.csv.rejects.csv").open(encoding="utf-8") as handle:
        rejects = list(csv.DictReader(handle))
    assert [int(row["line"]) for row in rejects] == bad_lines
    assert "created_at" in rejects[0]["reason"] and "text" in rejects[1]["reason"]
    assert "likes" in rejects[3]["reason"] and "quoting" in rejects[4]["reason"]


def test_invalid_utf8_row_is_rejected_and_the_rest_kept(write_config: Callable[..., Path], tmp_path: Path) -> None:
    archive = tmp_path / "bytes.csv"
    archive.write_bytes(b"created_at,text\n2012-12-18T10:00:00Z,fine\n2012-12-18T11:00:00Z,bad \xff\xfe here\n")
    result = run(write_config(), "import", str(archive), "--event", EVENT)
    assert result.exit_code == 3
    assert "line 3: text: invalid UTF-8" in result.output
    assert len(stored_rows(write_config())) == 1


def test_timestamps_are_normalised_to_utc(write_config: Callable[..., Path], tmp_path: Path) -> None:
    config = write_config(timezone="America/Los_Angeles")
    archive = tmp_path / "times.csv"
    archive.write_text(
        "id,created_at,text\n"
        "1,2012-12-18T09:00:00-08:00,offset\n"
        "2,2012-12-18 09:00:00,naive in config zone\n"
        '3,"Tue, 18 Dec 2012 09:00:00 -0800",rfc 2822\n'
        "4,1355850000,epoch\n",
        encoding="utf-8",
    )
    assert run(config, "import", str(archive), "--event", EVENT).exit_code == 0
    expected = datetime(2012, 12, 18, 17, 0, tzinfo=UTC)
    assert [row["created_at"] for row in stored_rows(config)] == [expected] * 4


def test_jsonl_import(write_config: Callable[..., Path], tmp_path: Path) -> None:
    archive = tmp_path / "posts.jsonl"
    items = [
        {"id": "a1", "created_at": "2012-12-18T10:00:00Z", "text": "quit instagram", "author": "@ann", "likes": 3},
        {"id": "a2", "created_at": "2012-12-18T11:00:00Z", "text": "meh", "followers": 10},
    ]
    archive.write_text("\n".join(json.dumps(item) for item in items) + "\n{broken\n", encoding="utf-8")
    result = run(write_config(), "import", str(archive), "--event", EVENT)
    assert result.exit_code == 3
    assert "line 3: not valid JSON" in result.output
    rows = stored_rows(write_config())
    assert [(row["post_id"], row["author"], row["likes"], row["followers"]) for row in rows] == [
        ("a1", "ann", 3, None),
        ("a2", None, None, 10),
    ]


def test_unknown_event_is_exit_2(write_config: Callable[..., Path], tmp_path: Path) -> None:
    archive = tmp_path / "a.csv"
    archive.write_text("created_at,text\n2012-12-18,hello\n", encoding="utf-8")
    result = run(write_config(), "import", str(archive), "--event", "nope")
    assert result.exit_code == 2
    assert "no event named 'nope'" in result.output


def test_bad_map_is_exit_2(write_config: Callable[..., Path], tmp_path: Path) -> None:
    archive = tmp_path / "a.csv"
    archive.write_text("created_at,text\n2012-12-18,hello\n", encoding="utf-8")
    result = run(write_config(), "import", str(archive), "--event", EVENT, "--map", "colour=Farbe")
    assert result.exit_code == 2
    assert "unknown field 'colour'" in result.output


def test_export_round_trips_what_import_read(write_config: Callable[..., Path], tmp_path: Path) -> None:
    config = write_config()
    archive = tmp_path / "scraped.csv"
    archive.write_bytes((DATA / "scraped_archive.csv").read_bytes())
    run(config, "import", str(archive), "--event", EVENT, *MAP_SCRAPED)
    out = tmp_path / "out" / "export.csv"
    result = run(config, "export", "--event", EVENT, "--format", "csv", "--out", str(out))
    assert result.exit_code == 0, result.output
    assert "8 posts" in result.output
    with out.open(encoding="utf-8") as handle:
        exported = list(csv.DictReader(handle))
    assert list(exported[0])[:3] == ["source", "id", "created_at"]
    with (DATA / "scraped_archive.csv").open(encoding="utf-8") as handle:
        original = list(csv.DictReader(handle))
    assert sorted(row["text"] for row in exported) == sorted(html.unescape(row["Tweet"]) for row in original)
    assert {row["created_at"] for row in exported} >= {"2012-12-18T09:14:02Z", "2012-12-21T07:05:33Z"}
    # the export reads back in as the same posts: nothing new
    back = run(config, "import", str(out), "--event", EVENT, "--source", "archive")
    assert "new 0, duplicate 8" in back.output


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_quote_flag_is_imported_exported_and_read_back(
    write_config: Callable[..., Path], tmp_path: Path, fmt: str
) -> None:
    if fmt == "parquet":
        pytest.importorskip("pyarrow", reason="Parquet needs the [scale] extra")
    archive = tmp_path / "posts.jsonl"
    items = [
        {
            "id": "q1",
            "created_at": "2012-12-18T10:00:00Z",
            "text": "this, exactly. quitting instagram",
            "is_quote": True,
        },
        {"id": "p1", "created_at": "2012-12-18T11:00:00Z", "text": "quitting instagram", "is_quote": False},
        {"id": "n1", "created_at": "2012-12-18T12:00:00Z", "text": "no flag given"},
    ]
    archive.write_text("\n".join(json.dumps(item) for item in items) + "\n", encoding="utf-8")
    run(write_config(), "import", str(archive), "--event", EVENT)
    out = tmp_path / "out" / f"export.{fmt}"
    exported = run(write_config(), "export", "--event", EVENT, "--format", fmt, "--out", str(out))
    assert exported.exit_code == 0, exported.output
    if fmt == "csv":
        with out.open(encoding="utf-8") as handle:
            flags = {row["id"]: row["is_quote"] for row in csv.DictReader(handle)}
        assert flags == {"q1": "True", "p1": "False", "n1": "False"}
    target = write_config(database=f"sqlite:///{tmp_path / 'target.db'}")
    back = run(target, "import", str(out), "--event", EVENT, "--format", fmt)
    assert "new 3" in back.output, back.output
    assert {row["post_id"]: row["is_quote"] for row in stored_rows(target)} == {"q1": True, "p1": False, "n1": False}


ONE_EVENT = "events:\n  - {name: e, platform: P, milestones: {announced: 2012-12-17}}\n"


@pytest.mark.parametrize(
    ("document", "expected"),
    [
        ("database: sqlite:///x.db\nevents: []\n", "events: add at least one event"),
        (
            "events:\n  - name: e\n    platform: P\n    milestones: {announced: 2012-02-30}\n",
            "events[0].milestones.announced",
        ),
        (
            "events:\n  - {name: e, platform: P, milestones: {announced: 2012-12-17}, sources: [friendster]}\n",
            "sources",
        ),
        (f"databse: x.db\n{ONE_EVENT}", "databse: unknown setting"),
        (
            "events:\n  - {name: e, platform: P, milestones: {announced: 2012-12-20, effective: 2012-12-17}}\n",
            "events[0].milestones.announced: must be the earliest milestone, but 'effective' is earlier",
        ),
        ("events:\n  - {platform: P, milestones: {announced: 2012-12-17}}\n", "events[0].name: is required"),
        (
            f"{ONE_EVENT}schedule: {{collect_every: 15 minutes}}\n",
            "schedule.collect_every: '15 minutes' is not a duration such as 30s, 15m, 2h or 1d",
        ),
        (f"{ONE_EVENT}alerts: {{cooldown: 0m}}\n", "alerts.cooldown: '0m' must be longer than zero"),
    ],
)
def test_config_errors_exit_2_with_one_line(tmp_path: Path, document: str, expected: str) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(document, encoding="utf-8")
    result = CliRunner().invoke(cli, ["--config", str(config), "status"])
    assert result.exit_code == 2
    assert expected in result.output
    assert "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1


@pytest.mark.parametrize(
    ("section", "setting"),
    [
        ("sources: {x: {bearer_token: AAAA-secret-value}}", "sources.x.bearer_token"),
        ("sources: {mastodon: {access_token: AAAA-secret-value}}", "sources.mastodon.access_token"),
        ("email: {password: AAAA-secret-value}", "email.password"),
    ],
)
def test_a_secret_in_the_config_is_refused_pointing_to_its_env_setting(
    tmp_path: Path, section: str, setting: str
) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(f"{ONE_EVENT}{section}\n", encoding="utf-8")
    result = CliRunner().invoke(cli, ["--config", str(config), "status"])
    assert result.exit_code == 2
    assert result.output == (
        f"error: {config}: {setting}: unknown setting; secrets stay out of the file: "
        f"put it in an environment variable and name that variable in {setting}_env\n"
    )
    assert "AAAA-secret-value" not in result.output


def test_missing_config_file_is_exit_2(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["--config", str(tmp_path / "none.yaml"), "status"])
    assert result.exit_code == 2
    assert "none.yaml: cannot read the config file" in result.output


def _every_third_row_bad(path: Path, rows: int, then_good: int = 0) -> list[int]:
    """Write `rows` data rows, every third one with an unreadable date, then `then_good` good ones.

    Return the bad rows' line numbers.
    """
    lines = ["id,created_at,text"]
    for i in range(1, rows + then_good + 1):
        stamp = "yesterday-ish" if i % 3 == 0 and i <= rows else f"2012-12-18T{i % 24:02d}:{i % 60:02d}:00Z"
        lines.append(f"{i},{stamp},post number {i}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return [i + 1 for i in range(3, rows + 1, 3)]  # line 1 is the header


def _rejected_lines(path: Path) -> list[int]:
    with path.open(encoding="utf-8") as handle:
        return [int(row["line"]) for row in csv.DictReader(handle)]


def test_five_thousand_bad_rows_all_in_the_rejects_file_twenty_in_memory(
    write_config: Callable[..., Path], config: Config, tmp_path: Path
) -> None:
    archive = tmp_path / "storm.csv"
    bad_lines = _every_third_row_bad(archive, 15_000)
    assert len(bad_lines) == 5_000
    result = run(write_config(), "import", str(archive), "--event", EVENT)
    assert result.exit_code == 3
    assert "read 10000, new 10000, duplicate 0, rejected 5000" in result.output
    assert "  line 4: created_at: " in result.output  # the next 19 alike are folded into a count
    assert "  19 more like it, between lines 7 and 61" in result.output
    assert "  line 64:" not in result.output  # the 21st reject is only counted
    assert "… and 4,980 more" in result.output
    assert f"all rejected lines: {tmp_path / 'storm.csv.rejects.csv'}" in result.output
    assert _rejected_lines(tmp_path / "storm.csv.rejects.csv") == bad_lines
    again = import_archive(workspace_on(config), archive, EVENT)
    assert (again.read, again.duplicate, again.rejected, len(again.rejects)) == (10_000, 10_000, 5_000, 20)
    assert [reject.line for reject in again.rejects] == bad_lines[:20]


class StoreKilledReadingRejects(StoreKilledOnThirdPage):
    """Dies on the third batch, first noting what the rejects file holds on disk: what a SIGKILL would leave."""

    rejects_file: Path
    on_disk_at_kill = ""

    def add_posts(self, event_name: str, posts: Any, *args: Any, **kwargs: Any) -> AddResult:
        if type(self).calls == 2:
            type(self).on_disk_at_kill = self.rejects_file.read_text(encoding="utf-8")
        return super().add_posts(event_name, posts, *args, **kwargs)


def test_a_killed_import_leaves_the_rejects_of_the_batches_it_stored(
    config: Config, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("monitor.pipeline.archive.IMPORT_BATCH", 5_000)  # three batches from a small archive
    archive = tmp_path / "storm.csv"
    bad_lines = _every_third_row_bad(archive, 14_999, then_good=10)  # 4,999 bad rows, the last on line 14,998
    StoreKilledReadingRejects.calls, StoreKilledReadingRejects.rejects_file = 0, tmp_path / "storm.csv.rejects.csv"
    with pytest.raises(KilledError):  # the second batch of 5,000 good rows ends on data row 14,999
        import_archive(workspace_on(config, StoreKilledReadingRejects), archive, EVENT)
    on_disk = StoreKilledReadingRejects.on_disk_at_kill.splitlines()
    assert on_disk[0] == "line,reason,raw"
    assert [int(row.split(",")[0]) for row in on_disk[1:]] == bad_lines


def test_our_own_export_is_not_decoded_twice(write_config: Callable[..., Path], tmp_path: Path) -> None:
    """A post whose words are an entity's spelling ('write &amp; for &') keeps it through export and import."""
    archive = tmp_path / "posts.jsonl"
    archive.write_text(json.dumps({"id": "e1", "created_at": "2012-12-18T10:00:00Z", "text": "write &amp;amp; for &amp;"}) + "\n")
    run(write_config(), "import", str(archive), "--event", EVENT)
    out = tmp_path / "export.csv"
    run(write_config(), "export", "--event", EVENT, "--format", "csv", "--out", str(out))
    fresh = write_config(database=f"sqlite:///{tmp_path / 'fresh.db'}")
    run(fresh, "import", str(out), "--event", EVENT, "--source", "archive")
    ws = workspace_on(load_config(fresh))
    texts = [row["text"] for row in event_rows(ws.store, EVENT)]
    ws.close()
    assert texts == ["write &amp; for &"]


def test_import_into_a_second_event_says_how_many_posts_that_event_gained(
    write_config: Callable[..., Path], tmp_path: Path
) -> None:
    second = {**BASE_CONFIG["events"][0], "name": "second-event"}
    config = write_config(events=[BASE_CONFIG["events"][0], second])
    archive = tmp_path / "posts.csv"
    archive.write_text("id,created_at,text\n1,2012-12-18T10:00:00Z,a\n2,2012-12-18T11:00:00Z,b\n", encoding="utf-8")
    assert "new 2, duplicate 0, rejected 0 → event instagram-tos-2012 (source archive; 2 added to it)" in run(
        config, "import", str(archive), "--event", EVENT
    ).output
    again = run(config, "import", str(archive), "--event", "second-event").output
    assert "new 0, duplicate 2, rejected 0 → event second-event (source archive; 2 added to it)" in again
    assert "(source archive; 0 added to it)" in run(config, "import", str(archive), "--event", "second-event").output
