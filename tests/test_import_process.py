"""A big archive is read in a second process: the same records, rejects, errors and progress as the thread reads."""

from __future__ import annotations

import csv
import json
import multiprocessing
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner, Result

from monitor.cli import cli
from monitor.errors import SourceError, UsageError
from monitor.pipeline.archive import IMPORT_BATCH
from monitor.sources import archive
from monitor.sources.forked import lists_from_process
from tests.archive_files import numbered_archive
from tests.conftest import BASE_CONFIG

EVENT = "instagram-tos-2012"
IN_PROCESS, IN_THREAD = 0, 1 << 62  # READ_IN_PROCESS_BYTES: every file read in a process, or none


@pytest.fixture(autouse=True)
def _a_core_is_idle(monkeypatch: pytest.MonkeyPatch) -> None:
    """The reader process starts only when a core is idle: here, whatever the machine's load."""
    monkeypatch.setattr("monitor.cores.core_idle", lambda: True)


# the CLI with the same answer, for the tests that import in a process of their own (to signal it)
# and a reader only two lists ahead, so it is still reading (waiting on the pipe) when the first batch is stored
IDLE_CLI = (
    "import monitor.cores as c, monitor.sources.archive as a; c.core_idle = lambda: True; "
    "a._PROCESS_AHEAD = 2; from monitor.cli import main; main()"
)


def _hostile_archive(path: Path, rows: int) -> None:
    """Good rows with, every few hundred, a bad date, a wrong width, a repeated id, an empty text; broken quoting last."""
    start = datetime(2012, 12, 17, tzinfo=UTC)
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "author", "created_at", "text", "likes"])
        for number in range(rows):
            stamp = (start + timedelta(seconds=number)).isoformat().replace("+00:00", "Z")
            row = [f"p{number}", f"user{number % 97}", stamp, f"quit instagram, post {number}", str(number % 50)]
            if number % 311 == 5:
                row[2] = "13/11/2022"
            elif number % 409 == 7:
                row = row[:3]
            elif number % 257 == 9:
                row[0] = f"p{number - 100}"  # the same id as an earlier row, another text: which one is stored?
            elif number % 503 == 11:
                row[3] = "  "
            elif number % 601 == 13:
                row[4] = "many"
            writer.writerow(row)
        handle.write('p-last,u,2012-12-18T00:00:00Z,"broken "quote,1\n')


def _import(config: Path, archive_path: Path, read_in_process_bytes: int, monkeypatch: pytest.MonkeyPatch) -> Result:
    monkeypatch.setattr(archive, "READ_IN_PROCESS_BYTES", read_in_process_bytes)
    return CliRunner().invoke(cli, ["--config", str(config), "import", str(archive_path), "--event", EVENT])


def _stored(database: Path) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """Every post (without collected_at, the import's own time) and every link, in rowid order."""
    with sqlite3.connect(database) as conn:
        columns = [row[1] for row in conn.execute("PRAGMA table_info(posts)") if row[1] != "collected_at"]
        posts = conn.execute(f"SELECT rowid, {', '.join(columns)} FROM posts ORDER BY rowid").fetchall()
        links = conn.execute("SELECT rowid, * FROM event_posts ORDER BY rowid").fetchall()
    return posts, links


@pytest.fixture
def forks(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The reads a reader process made, recorded: a test comparing it with the thread must see it used."""
    reads: list[str] = []
    real = archive.lists_from_process

    def recorded(*args: Any, **kwargs: Any) -> Iterator[list[Any]]:
        reads.append("process")
        return real(*args, **kwargs)

    monkeypatch.setattr(archive, "lists_from_process", recorded)
    return reads


def _config(folder: Path, name: str) -> tuple[Path, Path]:
    database, config = folder / f"{name}.db", folder / f"{name}.yaml"
    config.write_text(yaml.safe_dump({**BASE_CONFIG, "database": f"sqlite:///{database}"}), encoding="utf-8")
    return config, database


def test_an_import_read_in_a_process_stores_and_rejects_what_one_read_in_a_thread_does(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, forks: list[str]
) -> None:
    """Batches of 700 posts and lists of 1,000 records: rejects and repeated ids fall across both boundaries."""
    monkeypatch.setattr("monitor.pipeline.archive.IMPORT_BATCH", 700)
    source = tmp_path / "hostile.csv"
    _hostile_archive(source, 5_000)
    outcomes = []
    for name, limit in (("thread", IN_THREAD), ("process", IN_PROCESS)):
        folder = tmp_path / name
        folder.mkdir()
        copy = folder / "posts.csv"
        copy.write_bytes(source.read_bytes())
        config, database = _config(folder, name)
        result = _import(config, copy, limit, monkeypatch)
        again = _import(config, copy, limit, monkeypatch)  # everything a duplicate now
        rejects = (folder / "posts.csv.rejects.csv").read_bytes()
        outputs = [run.output.replace(str(folder), "X") for run in (result, again)]
        outcomes.append((result.exit_code, *outputs, rejects))
        outcomes.append(_stored(database))
        assert len(forks) == (2 if limit == IN_PROCESS else 0)  # both imports of the file, in a process or none
    assert outcomes[0] == outcomes[2]
    assert outcomes[1] == outcomes[3]
    assert outcomes[0][0] == 3 and "rejected" in outcomes[0][1]
    assert len(outcomes[1][0]) > 4_000


def test_the_reader_process_reports_a_bad_header_as_the_thread_does(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, forks: list[str]
) -> None:
    path = tmp_path / "headless.csv"
    path.write_text("when,what\n2012-12-18T10:00:00Z,hello\n", encoding="utf-8")
    messages = []
    for limit in (IN_THREAD, IN_PROCESS):
        monkeypatch.setattr(archive, "READ_IN_PROCESS_BYTES", limit)
        with pytest.raises(UsageError) as raised:
            list(archive.read_archive(path, "csv", "archive", {}))
        messages.append(str(raised.value))
    assert forks == ["process"]  # the second read
    assert messages[0] == messages[1]
    assert "no column 'created_at'" in messages[0]


def test_the_reader_process_reports_every_byte_it_reads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, forks: list[str]
) -> None:
    path = tmp_path / "posts.csv"
    _hostile_archive(path, 3_000)
    totals = []
    for limit in (IN_THREAD, IN_PROCESS):
        monkeypatch.setattr(archive, "READ_IN_PROCESS_BYTES", limit)
        counted: list[int] = []
        records = list(archive.read_archive(path, "csv", "archive", {}, on_bytes=counted.append))
        totals.append((sum(counted), len(records)))
    assert forks == ["process"]
    assert totals[0] == totals[1]
    assert totals[0][0] == path.stat().st_size


def test_the_reader_process_reads_json_lines_as_the_thread_does(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, forks: list[str]
) -> None:
    path = tmp_path / "posts.jsonl"
    lines = [json.dumps({"id": f"p{n}", "created_at": "2012-12-18T10:00:00Z", "text": f"post {n}"}) for n in range(2_500)]
    lines[7], lines[1_500] = "{not json", json.dumps({"id": "x", "created_at": "13/11/2022", "text": "a"})
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    seen = []
    for limit in (IN_THREAD, IN_PROCESS):
        monkeypatch.setattr(archive, "READ_IN_PROCESS_BYTES", limit)
        records = list(archive.read_archive(path, "jsonl", "archive", {}))
        seen.append([record if isinstance(record, archive.Reject) else record.id for record in records])  # type: ignore[union-attr]
    assert forks == ["process"]
    assert seen[0] == seen[1]
    assert [record.line for record in seen[0] if isinstance(record, archive.Reject)] == [8, 1_501]


def test_on_a_busy_machine_a_big_archive_is_read_in_the_thread(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "posts.csv"
    _hostile_archive(path, 100)
    monkeypatch.setattr(archive, "READ_IN_PROCESS_BYTES", IN_PROCESS)
    monkeypatch.setattr("monitor.cores.core_idle", lambda: False)
    monkeypatch.setattr(archive, "lists_from_process", None)  # called, it would fail
    assert any(isinstance(record, archive.Reject) for record in archive.read_archive(path, "csv", "archive", {}))


def _endless(_counter: Callable[[int], None] | None) -> Iterator[list[int]]:
    while True:
        yield list(range(1000))


def _dies(_counter: Callable[[int], None] | None) -> Iterator[list[int]]:
    yield [1, 2]
    os._exit(9)


def test_stopping_early_ends_the_reader_process() -> None:
    lists = lists_from_process(_endless, None, ahead=4)
    assert next(lists) == list(range(1000))
    assert [child.name for child in multiprocessing.active_children()] == ["archive-reader"]
    lists.close()
    assert multiprocessing.active_children() == []


def test_a_reader_process_that_dies_is_an_error_not_the_end_of_the_file() -> None:
    lists = lists_from_process(_dies, None, ahead=4)
    assert next(lists) == [1, 2]
    with pytest.raises(SourceError, match="stopped unexpectedly"):
        next(lists)


def _counts(database: Path) -> tuple[int, int]:
    try:
        with sqlite3.connect(database) as conn:
            return (
                conn.execute("SELECT count(*) FROM posts").fetchone()[0],
                conn.execute("SELECT count(*) FROM event_posts").fetchone()[0],
            )
    except sqlite3.OperationalError:  # no file or no tables yet
        return 0, 0


def _processes_reading(archive_path: Path) -> list[int]:
    """The processes whose command line names the archive (a reader process is a fork: it has its parent's)."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and str(archive_path).encode() in (entry / "cmdline").read_bytes():
                found.append(int(entry.name))
        except OSError:
            continue
    return found


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the reader process is Linux's")
def test_ctrl_c_during_a_big_import_leaves_a_store_the_rerun_completes(tmp_path: Path) -> None:
    """Ctrl-C reaches both processes (the whole group): one 'interrupted', exit 130, no reader left, nothing lost."""
    rows = IMPORT_BATCH + IMPORT_BATCH // 5
    source = tmp_path / "big.csv"
    numbered_archive(source, rows)
    assert source.stat().st_size >= archive.READ_IN_PROCESS_BYTES
    config, database = _config(tmp_path, "store")
    command = [sys.executable, "-c", IDLE_CLI, "--config", str(config), "import", str(source), "--event", EVENT]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    while process.poll() is None and _counts(database)[0] == 0:
        time.sleep(0.05)
    assert len(_processes_reading(source)) == 2  # the import and its reader, both running
    os.killpg(process.pid, signal.SIGINT)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr
    assert stderr.decode().strip().splitlines()[-1].endswith("error: interrupted")
    assert "Traceback" not in stderr.decode()
    time.sleep(0.5)
    assert _processes_reading(source) == []
    posts, links = _counts(database)
    assert 0 < posts < rows and posts == links
    rerun = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stderr
    assert _counts(database) == (rows, rows)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the reader process is Linux's")
def test_a_killed_import_leaves_no_reader_process(tmp_path: Path) -> None:
    rows = IMPORT_BATCH + IMPORT_BATCH // 5
    source = tmp_path / "big.csv"
    numbered_archive(source, rows)
    config, database = _config(tmp_path, "store")
    command = [sys.executable, "-c", IDLE_CLI, "--config", str(config), "import", str(source), "--event", EVENT]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while process.poll() is None and _counts(database)[0] == 0:
            time.sleep(0.05)
        assert len(_processes_reading(source)) == 2  # the import and its reader, both running
        process.send_signal(signal.SIGTERM)
    finally:
        process.wait()
    assert process.returncode == -signal.SIGTERM and 0 < _counts(database)[0] < rows  # killed half way
    deadline = time.monotonic() + 10
    while _processes_reading(source) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _processes_reading(source) == []
