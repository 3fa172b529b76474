"""`export` never writes over the live database or the config, and never leaves half a file."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from monitor.cli import cli
from monitor.pipeline import open_workspace
from monitor.posts import Post

EVENT = "instagram-tos-2012"


def run(config: Path, *args: str) -> Result:
    return CliRunner().invoke(cli, ["--config", str(config), *args])


def store_posts(config: Path, count: int) -> None:
    ws = open_workspace(config)
    start = datetime(2012, 12, 17, tzinfo=UTC)
    posts = [
        Post(source="archive", id=str(n), created_at=start + timedelta(seconds=n), text=f"instagram terms {n} " * 8)
        for n in range(count)
    ]
    for first in range(0, count, 20_000):
        ws.store.add_posts(EVENT, posts[first : first + 20_000])
    ws.close()


@pytest.mark.parametrize("target", ["data/test.db", "data/test.db-wal", "data/test.db-shm", "config.yaml"])
@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_export_refuses_to_write_over_the_database_or_the_config(
    write_config: Callable[..., Path], tmp_path: Path, target: str, fmt: str
) -> None:
    config = write_config()
    store_posts(config, 10)
    before = {path: path.read_bytes() for path in (tmp_path / "data").iterdir()} | {config: config.read_bytes()}
    out = tmp_path / target
    result = run(config, "export", "--event", EVENT, "--format", fmt, "--out", str(out))
    assert result.exit_code == 2
    what = "the config file" if target == "config.yaml" else "the database"
    assert result.output == f"error: --out {out}: that is {what} ({out}); write to another file\n"
    after = {path: path.read_bytes() for path in (tmp_path / "data").iterdir()} | {config: config.read_bytes()}
    assert after.keys() >= before.keys() and after[config] == before[config]
    assert after[tmp_path / "data" / "test.db"] == before[tmp_path / "data" / "test.db"]


def test_export_through_another_name_of_the_database_is_refused(
    write_config: Callable[..., Path], tmp_path: Path
) -> None:
    config = write_config()
    store_posts(config, 10)
    (tmp_path / "link").symlink_to(tmp_path / "data")
    result = run(config, "export", "--event", EVENT, "--out", str(tmp_path / "link" / "test.db"))
    assert result.exit_code == 2 and "that is the database" in result.output


def test_the_daemon_refuses_a_log_file_that_is_the_database(write_config: Callable[..., Path], tmp_path: Path) -> None:
    config = write_config()
    database = tmp_path / "data" / "test.db"
    store_posts(config, 1)
    size = database.stat().st_size
    result = run(config, "run", "--log-file", str(database))
    assert result.exit_code == 2
    assert result.output == f"error: --log-file {database}: that is the database ({database}); write to another file\n"
    assert database.stat().st_size == size


def test_an_interrupted_export_leaves_the_old_file_whole_and_no_partial_file(
    write_config: Callable[..., Path], tmp_path: Path
) -> None:
    config = write_config()
    store_posts(config, 60_000)
    folder = tmp_path / "exports"
    folder.mkdir()
    out = folder / "posts.csv"
    command = [sys.executable, "-m", "monitor", "--config", str(config), "export", "--event", EVENT, "--out", str(out)]
    for _ in range(3):  # on a busy machine the export may finish before we look: then once more
        out.write_text("the previous export\n", encoding="utf-8")
        export = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        if _stopped_half_way(export, folder, out):
            break
        export.communicate(timeout=60)
    else:
        pytest.fail("the export finished before it could be interrupted, three times")
    os.kill(export.pid, signal.SIGINT)
    os.kill(export.pid, signal.SIGCONT)
    _, err = export.communicate(timeout=60)
    assert export.returncode == 130, err
    assert err == "error: interrupted\n"
    assert out.read_text(encoding="utf-8") == "the previous export\n"
    assert sorted(path.name for path in folder.iterdir()) == ["posts.csv"]


def _stopped_half_way(export: subprocess.Popen[str], folder: Path, out: Path) -> bool:
    """Stop the export (SIGSTOP) once its partial file holds 100 kB; whether it was still running then."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and export.poll() is None:
        if any(path != out and _size(path) > 100_000 for path in folder.iterdir()):
            os.kill(export.pid, signal.SIGSTOP)
            if export.poll() is None and any(path != out for path in folder.iterdir()):
                return True
            export.send_signal(signal.SIGCONT)  # finished meanwhile (then a no-op): let it end, not wait stopped
            return False
        time.sleep(0.005)
    return False


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:  # renamed into place as we looked
        return 0


FORMULA_TEXTS = [
    "=HYPERLINK(\"http://evil.example\",\"click\")", "+1+2", "-2+3 instagram", "@SUM(A1:A9)", "\tleading tab",
    "\rleading return", "'=a text that really starts with a quote", "''=two quotes", "'just a quote", "plain text",
]  # fmt: skip


def test_csv_export_neutralises_formulas_and_import_gives_the_original_text_back(
    write_config: Callable[..., Path], tmp_path: Path
) -> None:
    import csv

    config = write_config()
    ws = open_workspace(config)
    start = datetime(2012, 12, 17, tzinfo=UTC)
    posts = [
        Post(source="archive", id=str(n), created_at=start + timedelta(minutes=n), text=text, author=f"=cmd{n}")
        for n, text in enumerate(FORMULA_TEXTS)
    ]
    ws.store.add_posts(EVENT, posts)
    ws.close()
    out = tmp_path / "posts.csv"
    assert run(config, "export", "--event", EVENT, "--out", str(out)).exit_code == 0
    with out.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    for row in rows:
        for name in ("text", "author"):
            assert not row[name].startswith(("=", "+", "-", "@", "\t", "\r")), row[name]
    quoted = {"'" + text for text in FORMULA_TEXTS if text.lstrip("'")[0] in "=+-@\t\r"}
    assert {row["text"] for row in rows} == quoted | {"'just a quote", "plain text"}
    other = tmp_path / "copy"
    other.mkdir()
    copy = write_config(database=f"sqlite:///{other / 'copy.db'}")
    assert run(copy, "import", str(out), "--event", EVENT).exit_code == 0
    ws = open_workspace(copy)
    back = {row["post_id"]: row for chunk in ws.store.iter_event_posts(EVENT) for row in chunk}
    ws.close()
    assert {post.id: post.text for post in posts} == {key: row["text"] for key, row in back.items()}
    assert {post.id: post.author for post in posts} == {key: row["author"] for key, row in back.items()}


def test_a_csv_that_is_not_our_export_keeps_its_quotes(write_config: Callable[..., Path], tmp_path: Path) -> None:
    config = write_config()
    archive = tmp_path / "theirs.csv"
    archive.write_text("created_at,text\n2012-12-17T10:00:00Z,'=1+2 is what they typed\n", encoding="utf-8")
    assert run(config, "import", str(archive), "--event", EVENT).exit_code == 0
    ws = open_workspace(config)
    [row] = [row for chunk in ws.store.iter_event_posts(EVENT) for row in chunk]
    ws.close()
    assert row["text"] == "'=1+2 is what they typed"
