"""A bulk import into an empty store builds the posts' time index once at the end, and a killed one loses nothing."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import yaml
from sqlalchemy import inspect

from monitor.pipeline import open_workspace
from monitor.pipeline.archive import IMPORT_BATCH
from monitor.store import Store, open_store
from tests.archive_files import numbered_archive
from tests.conftest import BASE_CONFIG
from tests.test_store import make_posts

EVENT = "instagram-tos-2012"
TIME_INDEX = "ix_posts_created_at"


def index_names(store: Store) -> set[str]:
    return {str(index["name"]) for index in inspect(store.engine).get_indexes("posts")}


def test_into_an_empty_store_the_time_index_is_built_at_the_end(store: Store) -> None:
    with store.indexes_deferred() as deferred:
        store.add_posts("e", make_posts(100))
        assert deferred and TIME_INDEX not in index_names(store)
    assert TIME_INDEX in index_names(store)
    assert store.post_count("e") == 100


def test_into_a_store_with_posts_the_index_stays(store: Store) -> None:
    store.add_posts("e", make_posts(10))
    with store.indexes_deferred() as deferred:
        store.add_posts("e", make_posts(10, start=10))
        assert not deferred and TIME_INDEX in index_names(store)
    assert store.post_count("e") == 20


def test_a_store_left_without_its_index_gets_it_back_when_opened(store: Store) -> None:
    """The block never ends, as when the process is killed inside it: the next open builds the index."""
    url = store.engine.url.render_as_string(hide_password=False)
    killed = store.indexes_deferred()
    killed.__enter__()
    store.add_posts("e", make_posts(50))
    assert TIME_INDEX not in index_names(store)  # the import's deferral dropped it: the open below must repair
    store.close()
    reopened = open_store(url)
    try:
        assert TIME_INDEX in index_names(reopened)
        assert reopened.post_count("e") == 50
    finally:
        reopened.close()


def _stored(database: Path) -> tuple[int, int, set[str]]:
    """(posts, event links, names of the posts' indexes), read without opening the store (which would repair it)."""
    with sqlite3.connect(database) as conn:
        posts = conn.execute("SELECT count(*) FROM posts").fetchone()[0]
        links = conn.execute("SELECT count(*) FROM event_posts").fetchone()[0]
        indexes = {name for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE tbl_name = 'posts'")}
    return posts, links, indexes


def _posts_so_far(database: Path) -> int:
    try:
        return _stored(database)[0]
    except sqlite3.OperationalError:  # no file or no tables yet
        return 0


def test_an_import_killed_half_way_is_finished_by_running_it_again(tmp_path: Path) -> None:
    """SIGKILL after the first batches: the index is missing, and comes back; the rerun stores every row once."""
    rows = IMPORT_BATCH + IMPORT_BATCH // 5  # killed once the first transaction is in, before the second
    archive, database, config = tmp_path / "big.csv", tmp_path / "store.db", tmp_path / "config.yaml"
    numbered_archive(archive, rows)
    config.write_text(yaml.safe_dump({**BASE_CONFIG, "database": f"sqlite:///{database}"}), encoding="utf-8")
    command = [sys.executable, "-m", "monitor", "--config", str(config), "import", str(archive), "--event", EVENT]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while process.poll() is None and _posts_so_far(database) == 0:
            time.sleep(0.05)
        os.kill(process.pid, signal.SIGKILL)
    finally:
        process.wait()
    posts, _, indexes = _stored(database)
    assert 0 < posts < rows, "killed before the import finished"
    assert TIME_INDEX not in indexes  # it was deferred, and the kill left it missing
    ws = open_workspace(config)
    ws.close()
    assert TIME_INDEX in _stored(database)[2]  # opening the store built it again
    rerun = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stderr
    assert _stored(database)[:2] == (rows, rows)
    assert TIME_INDEX in _stored(database)[2]
