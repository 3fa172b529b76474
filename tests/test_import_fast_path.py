"""The CSV fast path (rows checked column by column) stores exactly what the row path (Post) would, or leaves the row to it."""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterator
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from sqlalchemy import DateTime
from sqlalchemy.dialects import sqlite

from monitor.posts import Post, post_row, utc_text
from monitor.sources.archive import Dates, _FastRows, _record

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
