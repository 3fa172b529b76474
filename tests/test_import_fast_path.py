"""The CSV fast path (rows checked column by column) stores exactly what the row path (Post) would, or leaves the row to it."""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from sqlalchemy import DateTime
from sqlalchemy.dialects import sqlite

from monitor.posts import Post, PostRows, post_row, stable_post_id, utc_text
from monitor.sources.archive import Dates, Reject, _FastRows, _record, read_archive

HEADER = ["id", "created_at", "text", "author", "lang", "likes", "reposts", "replies", "followers", "url",
          "is_repost", "is_quote"]  # fmt: skip
CELLS = {
    "id": ["", "123", " ", "x" * 256, "x" * 257, "é1"],
    "created_at": [
        "2012-12-18T10:00:00Z", "2012-12-18T10:00:00+00:00", "2012-12-18 10:00:00", "2012-12-18T10:00:00.5Z",
        "2012-12-18T10:00:00.123456", "2012-02-30T10:00:00Z", "1989-12-31T23:59:59Z", "2999-01-01T00:00:00Z",
        "२०१२-१२-१८T10:00:00Z", " 2012-12-18T10:00:00Z", "2012-12-18T10:00:00+01:00", "1355824800", "",
        "2012-12-18T25:00:00Z", "1990-01-01T00:00:00Z",
    ],
    "text": ["quit instagram", "", "   ", "fish &amp; chips", "a\x00b", "x" * 200, "line\nbreak", "\ud83d"],
    "author": ["", "@alice", "@", "bob", "a" * 256, "@" + "a" * 256, "a" * 257],
    "lang": ["", "en", "x" * 16, "x" * 17],
    "likes": ["", " ", "0", "12", "999999999", "2147483648", "-1", "1.0", "١٢", "many", " 3"],
    "url": ["", "https://x.com/a/1", "https://x.com/?a=1&b=2"],
    "is_repost": ["", "true", " Yes ", "0"],
}  # fmt: skip


def _rows(count: int) -> list[list[str]]:
    rng = random.Random(16)
    rows = []
    for _ in range(count):
        cells = {name: rng.choice(CELLS.get(name, CELLS["likes"] if name in ("reposts", "replies", "followers") else [""]))
                 for name in HEADER}  # fmt: skip
        cells["is_quote"] = rng.choice(CELLS["is_repost"])
        rows.append([cells[name] for name in HEADER])
    return rows


def _as_stored(row: tuple[object, ...]) -> tuple[object, ...]:
    return row[:-1]  # all but collected_at, the time each was read


def test_every_fast_row_is_the_row_paths_post_and_the_rest_are_left_to_it() -> None:
    columns = {name: index for index, name in enumerate(HEADER)}
    fast_taken = 0
    for tz in (UTC, ZoneInfo("UTC"), ZoneInfo("Europe/Berlin")):
        fast = _FastRows(columns, "archive", tz)
        rows = _rows(20_000)
        checked = [row for start in range(0, len(rows), 500) for row in fast.rows(rows[start : start + 500])]
        for line, (row, fast_row) in enumerate(zip(rows, checked, strict=True), start=2):
            slow = _record(dict(zip(HEADER, row, strict=True)), line, "archive", Dates(tz))
            if fast_row is not None:
                fast_taken += 1
                assert isinstance(slow, Post), (row, slow)
                assert _as_stored(fast_row) == _as_stored(post_row(slow)), row
    assert fast_taken > 50  # the plain rows do take it (most combinations hold something unusual)


def test_a_chunk_of_plain_rows_is_taken_whole_and_one_odd_cell_leaves_only_its_row() -> None:
    columns = {name: index for index, name in enumerate(HEADER)}
    plain = ["", "2012-12-18T10:00:00Z", "quit instagram", "@alice", "en", "3", "", "0", "12", "", "", "yes"]
    fast = _FastRows(columns, "archive", UTC)
    assert all(row is not None for row in fast.rows([plain] * 300))
    for position, odd in ((1, "2012-12-18T10:00:00Z\n2012-12-18T10:00:00Z"), (5, "3\n4"), (1, "2012-02-30T10:00:00Z"),
                          (2, "fish &amp; chips"), (3, "a" * 257), (8, "-1")):  # fmt: skip
        rows = [list(plain) for _ in range(5)]
        rows[2][position] = odd
        assert [row is not None for row in fast.rows(rows)] == [True, True, False, True, True], odd


def test_the_fast_path_takes_a_plain_row() -> None:
    columns = {name: index for index, name in enumerate(HEADER)}
    row = ["", "2012-12-18T10:00:00Z", "quit instagram", "@alice", "en", "3", "", "0", "12", "", "", "yes"]
    (checked,) = _FastRows(columns, "archive", UTC).rows([row])
    assert checked is not None
    assert checked[2:12] == ("2012-12-18 10:00:00.000000", "quit instagram", "alice", "en", 3, None, 0, 12, None, False)
    assert checked[14] is True  # is_quote


def test_sqlite_times_are_written_as_the_dialect_writes_them() -> None:
    dialect = sqlite.dialect()
    bind = DateTime().dialect_impl(dialect).bind_processor(dialect)
    assert bind is not None
    for moment in itertools.islice(_moments(), 200):
        assert utc_text(moment) == bind(moment)
        assert utc_text(moment.replace(tzinfo=UTC)) == bind(moment)


def _moments() -> Iterator[datetime]:
    rng = random.Random(3)
    while True:
        yield datetime(rng.randint(1990, 2030), rng.randint(1, 12), rng.randint(1, 28), rng.randint(0, 23),
                       rng.randint(0, 59), rng.randint(0, 59), rng.choice([0, 1, 500_000, 999_999]))  # fmt: skip


def test_rejects_keep_their_lines_across_chunks_of_multi_line_rows(tmp_path: Path) -> None:
    """Each row spans two lines (a quoted line break), so row i starts on line 2 + 2i, whichever chunk it is in."""
    archive = tmp_path / "posts.csv"
    lines = ["id,created_at,text,likes\n"]
    for i in range(4_500):
        stamp = "2012-02-30T10:00:00Z" if i in (1_999, 2_000, 4_001) else "2012-12-18T10:00:00Z"
        likes = "-1" if i == 3_000 else str(i)
        lines.append(f'{i},{stamp},"post {i}\nsecond line",{likes}\n')
    lines[2_501] = '2500,2012-12-18T10:00:00Z,"broken"quote,1\n'  # row 2,500: two lines become one, bad quoting
    archive.write_text("".join(lines), encoding="utf-8")
    records = list(read_archive(archive, "csv", "archive", {}))
    rejects = [record for record in records if isinstance(record, Reject)]
    assert [(reject.line, reject.reason.split(":")[0]) for reject in rejects] == [
        (4_000, "created_at"), (4_002, "created_at"), (5_002, "broken CSV quoting"), (6_001, "likes"), (8_003, "created_at"),
    ]  # fmt: skip
    assert rejects[1].raw == '2000,2012-02-30T10:00:00Z,"post 2000\nsecond line",2000'
    posts = [row for record in records if isinstance(record, PostRows) for row in record.rows]
    assert [row[1] for row in posts] == [str(i) for i in range(4_500) if i not in (1_999, 2_000, 2_500, 3_000, 4_001)]
    assert posts[0][3] == "post 0\nsecond line"


def test_stable_ids_are_those_of_archives_imported_before() -> None:
    """The hash of author, time and text that an archive without ids was stored under (values from main's code)."""
    moment = datetime(2012, 12, 18, 10, 0, 0, 500_000, tzinfo=UTC)
    assert stable_post_id("@alice", moment, "quit instagram") == "h:0c2eeaa919473c2e6185cbae8745f6bc"
    berlin = datetime(2012, 12, 18, 11, 0, tzinfo=ZoneInfo("Europe/Berlin"))
    assert stable_post_id(None, berlin, "fish & chips") == "h:18c17d4f3c33b056e0c9eede719e7d71"
