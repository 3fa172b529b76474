"""Hostile archives through the whole pipeline as real processes: import → score → report → digest --dry-run.

A fixed seed makes 200 hostile CSV and JSON Lines rows (random bytes, huge and tiny numbers, impossible
dates, every Unicode category, lone surrogates, NUL, right-to-left marks, broken quoting, deep nesting)
mixed with 50 good rows each. Whatever the rows, no command may crash: no traceback, exit 0, 2 or 3, and
every good row stored — on SQLite, and on PostgreSQL when BACKLASH_TEST_DATABASE_URL is set.
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from monitor.pipeline import open_workspace
from tests.conftest import POSTGRES_URL, _reset_postgres
from tests.workspaces import event_rows

EVENT = "instagram-tos-2012"
SEED = 20121217
HOSTILE_ROWS = 200
GOOD_ROWS = 50

NUMBERS = [
    "1e308", "-1e308", "1e-308", "1e400", "-1e400", "99999999999999999999", "-99999999999999999999", "inf",
    "-inf", "nan", "NaN", "Infinity", "-0", "0x1F", "1_000", "٣", "１２", "1e30", "2147483648", "-1", "", " ",
    "9" * 5000, "1.5", ".", "e", "+", "1,000",
]  # fmt: skip
DATES = [
    "0000-00-00", "0001-01-01", "0001-01-01T00:00:00+05:00", "9999-12-31T23:59:59-14:00", "2999-01-01",
    "1969-12-31T23:59:59Z", "1970-01-01", "1989-12-31T23:59:59Z", "2012-02-30", "2012-12-18T25:00:00",
    "Mon, 32 Dec 2012 10:00:00 +0000", "-1", "1e30", "99999999999999999999", "253402300800", "nan", "inf",
    "+275760-09-13", "2012-12-18T10:00:00+99:00", "Wed Dec 18 10:00:00 +0000 2012", "2012-12-18\x0010:00",
    "२०१२-१२-१८", "",
]  # fmt: skip
ODD_TEXT = [
    "\x00", "\u200f", "\u202e", "\u200b", "\u200d", "\ufeff", "\u2028", "\u2029", "\x1b[31m", "\r", "\t", "\x7f",
    "\x85", "\u0301", "\ufffd", "\uffff", "\U0010ffff", "\ue000", "𝕏", "🏳️‍🌈", "ﷺ", "Ꙭ", "$\\frac{a}{b}$", "$", "_",
    "^", "%s%n", "{platform}", "<script>", "&amp;", '"', "'", ",", "\n", "\\", "' OR 1=1 --", "ＩＮＳＴＡＧＲＡＭ",
]  # fmt: skip


def _unicode_char(rng: random.Random) -> str:
    """A code point from anywhere: controls, marks, symbols, CJK, private use, planes 1-16 (no surrogates)."""
    while True:
        point = rng.choice([rng.randrange(0, 0x80), rng.randrange(0x80, 0x3000), rng.randrange(0x3000, 0x110000)])
        if not 0xD800 <= point <= 0xDFFF:
            return chr(point)


def _hostile_text(rng: random.Random) -> str:
    parts = [rng.choice(ODD_TEXT) if rng.random() < 0.4 else _unicode_char(rng) for _ in range(rng.randrange(0, 40))]
    if rng.random() < 0.05:
        parts.append("x" * rng.choice([131_071, 131_073, 300_000]))
    return "".join(parts)


def _good_row(index: int, prefix: str) -> dict[str, str]:
    day = 10 + index % 30
    stamp = f"2012-12-{day:02d}T{index % 24:02d}:15:00Z" if day <= 31 else f"2013-01-{day - 31:02d}T08:00:00Z"
    text = ["quit instagram, they will sell my photos", "love the new filters", "boycott instagram ads"][index % 3]
    return {"id": f"{prefix}good-{index}", "created_at": stamp, "text": f"{text} #{index}", "author": f"user{index}",
            "lang": "en", "likes": str(index)}  # fmt: skip


def _hostile_row(rng: random.Random, index: int, prefix: str) -> dict[str, str]:
    row = _good_row(index, prefix) | {"id": f"{prefix}bad-{index}"}
    for name in rng.sample(list(row), rng.randrange(1, len(row) + 1)):
        row[name] = rng.choice(
            [rng.choice(NUMBERS), rng.choice(DATES), _hostile_text(rng), rng.choice(ODD_TEXT)]
            if name != "created_at" or rng.random() < 0.8
            else [rng.choice(DATES)]
        )
    return row


def _rows(rng: random.Random, prefix: str) -> list[dict[str, str] | None]:
    """Good rows (ids PREFIXgood-N) and hostile ones, shuffled; None stands for a line of random bytes."""
    rows: list[dict[str, str] | None] = [_good_row(i, prefix) for i in range(GOOD_ROWS)]
    rows += [None if rng.random() < 0.1 else _hostile_row(rng, i, prefix) for i in range(HOSTILE_ROWS)]
    rng.shuffle(rows)
    return rows


def _csv_field(value: str) -> bytes:
    data = value.encode("utf-8")
    return b'"' + data.replace(b'"', b'""') + b'"' if any(c in data for c in b'",\r\n') else data


def write_csv(path: Path, rng: random.Random) -> None:
    header = ["id", "created_at", "text", "author", "lang", "likes"]
    lines = [",".join(header).encode()]
    for row in _rows(rng, "csv-"):
        if row is None:  # raw bytes: invalid UTF-8, stray quotes, wrong column counts
            lines.append(bytes(rng.randrange(256) for _ in range(rng.randrange(1, 80))).replace(b"\n", b" "))
        else:
            lines.append(b",".join(_csv_field(row[name]) for name in header))
    path.write_bytes(b"\n".join(lines) + b"\n")


def _json_value(rng: random.Random, value: str) -> object:
    """The same value as JSON would carry it: sometimes a number, a nested object or a lone surrogate."""
    roll = rng.random()
    if roll < 0.1:
        return {"nested": [value, None, True]}
    if roll < 0.2:
        try:
            return json.loads(value)  # 1e400 → inf, 99999999999999999999 → int, NaN → nan
        except ValueError:
            return value
    if roll < 0.3:
        return value + rng.choice(["\ud800", "\udfff", "\ud83d", "\udc80"])  # written as \ud800 escapes
    return value


def write_jsonl(path: Path, rng: random.Random) -> None:
    lines: list[bytes] = []
    for row in _rows(rng, "jsonl-"):
        if row is None:
            huge_number = b'{"created_at": "2012-12-18", "text": "x", "likes": ' + b"9" * 5000 + b"}"
            garbage = bytes(rng.randrange(256) for _ in range(40))
            lines.append(rng.choice([b"[1, 2]", b"null", b"{", b"[" * 100_000, huge_number, garbage]))
        else:
            good = row["id"].startswith("jsonl-good-")
            item = row if good else {name: _json_value(rng, value) for name, value in row.items()}
            lines.append(json.dumps(item, ensure_ascii=rng.random() < 0.5).encode("utf-8", "surrogatepass"))
    path.write_bytes(b"\n".join(line.replace(b"\n", b" ") for line in lines) + b"\n")


@pytest.fixture(params=["sqlite", "postgresql"])
def fuzz_config(request: pytest.FixtureRequest, write_config: Callable[..., Path]) -> Iterator[Path]:
    if request.param == "sqlite":
        yield write_config()
        return
    if not POSTGRES_URL:
        pytest.skip("PostgreSQL: set BACKLASH_TEST_DATABASE_URL to fuzz it too")
    _reset_postgres(POSTGRES_URL)
    yield write_config(database=POSTGRES_URL)
    _reset_postgres(POSTGRES_URL)


def backlash(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "monitor", "--config", str(config), *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, cwd=config.parent)


def assert_no_crash(done: subprocess.CompletedProcess[str], what: str) -> None:
    assert "Traceback" not in done.stderr, f"{what}:\n{done.stderr[-3000:]}"
    assert "unexpected" not in done.stderr, f"{what}:\n{done.stderr[-3000:]}"
    assert done.returncode in (0, 2, 3), f"{what}: exit {done.returncode}\n{done.stderr[-3000:]}"


def test_hostile_archives_never_crash_the_pipeline_and_every_good_row_is_stored(
    fuzz_config: Path, tmp_path: Path
) -> None:
    rng = random.Random(SEED)
    write_csv(tmp_path / "hostile.csv", rng)
    write_jsonl(tmp_path / "hostile.jsonl", rng)
    for archive in ("hostile.csv", "hostile.jsonl"):
        done = backlash(fuzz_config, "import", str(tmp_path / archive), "--event", EVENT)
        assert_no_crash(done, f"import {archive}")
        assert done.returncode == 3, done.stdout + done.stderr  # hostile rows are rejected, not fatal
    for command in (["score"], ["report", "--event", EVENT], ["digest", "--event", EVENT, "--dry-run"]):
        assert_no_crash(backlash(fuzz_config, *command), " ".join(command))
    ws = open_workspace(fuzz_config)
    try:
        ids = {row["post_id"] for row in event_rows(ws.store, EVENT)}
    finally:
        ws.close()
    assert {f"{prefix}good-{i}" for prefix in ("csv-", "jsonl-") for i in range(GOOD_ROWS)} <= ids
