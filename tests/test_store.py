"""The store on a real database: idempotent inserts, all-or-nothing batches, cursors, runs, digests."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd
import pytest

from monitor.errors import StoreError
from monitor.posts import Post
from monitor.store import MIGRATIONS, SCHEMA_VERSION, CursorUpdate, Store, metadata, open_store
from tests.workspaces import record_feed_read, store_cursor, stored_cursor

T0 = datetime(2012, 12, 18, 9, 0, tzinfo=UTC)


def make_posts(count: int, source: str = "x", start: int = 0) -> list[Post]:
    return [
        Post(source=source, id=str(start + i), created_at=T0 + timedelta(minutes=i), text=f"post {start + i}")
        for i in range(count)
    ]


def test_inserting_twice_changes_nothing(store: Store) -> None:
    first = store.add_posts("e", make_posts(10))
    second = store.add_posts("e", make_posts(10))
    assert (first.new, first.duplicate) == (10, 0)
    assert (second.new, second.duplicate) == (0, 10)
    assert store.post_count("e") == 10


def test_post_can_belong_to_several_events(store: Store) -> None:
    store.add_posts("a", make_posts(3))
    result = store.add_posts("b", make_posts(3))
    assert result.new == 0
    assert store.post_count("a") == store.post_count("b") == 3
    assert store.post_count() == 3


def test_event_names_are_the_events_with_posts_in_order(store: Store) -> None:
    assert store.event_names() == []
    for event in ("zeta", "alpha", "mid-2012", "alpha"):
        store.add_posts(event, make_posts(3))
    store.add_posts("gone", make_posts(1, start=50))
    assert store.event_names() == ["alpha", "gone", "mid-2012", "zeta"]
    assert store.unlink_posts("gone", [("x", "50")]) == 1
    assert store.event_names() == ["alpha", "mid-2012", "zeta"]  # no post left in it


def test_same_id_from_two_sources_are_two_posts(store: Store) -> None:
    store.add_posts("e", make_posts(2, source="x") + make_posts(2, source="mastodon@example.social"))
    assert store.post_count("e") == 4


def test_new_posts_are_linked_to_their_event_only_and_stored_ones_are_linked_too(store: Store) -> None:
    """A batch of new posts (69: one statement of 64 and one of 5) is linked to its own event and no other's posts."""
    store.add_posts("a", make_posts(5))
    added = store.add_posts("b", make_posts(69, start=5))
    assert (added.new, added.duplicate, added.linked) == (69, 0, 69)
    assert (store.post_count("a"), store.post_count("b")) == (5, 69)
    mixed = store.add_posts("b", [*make_posts(5), *make_posts(5, start=74)])  # 5 stored for "a", 5 new
    assert (mixed.new, mixed.duplicate, mixed.linked) == (5, 5, 10)
    assert (store.post_count("a"), store.post_count("b"), store.post_count()) == (5, 79, 79)


def test_of_two_posts_with_one_key_in_a_batch_the_later_is_stored(store: Store) -> None:
    first, second = make_posts(2)
    later = dataclasses.replace(first, text="edited")
    added = store.add_posts("e", [first, second, later])
    assert (added.new, added.duplicate, added.linked) == (2, 1, 2)
    texts = {row["post_id"]: row["text"] for chunk in store.iter_event_posts("e") for row in chunk}
    assert texts == {"0": "edited", "1": "post 1"}
    assert store.add_posts("e", [dataclasses.replace(first, text="again")]).new == 0  # a stored post stays
    assert {row["text"] for chunk in store.iter_event_posts("e") for row in chunk} == {"edited", "post 1"}


def test_failed_batch_leaves_nothing_half_written(store: Store) -> None:
    good = make_posts(5)
    broken = dataclasses.replace(good[-1], id="broken", text=None)  # type: ignore[arg-type]
    with pytest.raises(StoreError):
        store.add_posts("e", [*good[:4], broken], cursors=[CursorUpdate("e", "x", "since_id", "4")])
    assert store.post_count("e") == 0
    assert stored_cursor(store, "e", "x", "since_id") is None


def test_cursor_is_committed_with_its_page(store: Store) -> None:
    store.add_posts("e", make_posts(3), cursors=[CursorUpdate("e", "x", "since_id", "2")])
    assert stored_cursor(store, "e", "x", "since_id") == "2"
    store.add_posts("e", make_posts(3, start=3), cursors=[CursorUpdate("e", "x", "since_id", "5")])
    assert stored_cursor(store, "e", "x", "since_id") == "5"
    store_cursor(store, CursorUpdate("e", "x", "since_id", None))
    assert stored_cursor(store, "e", "x", "since_id") is None


def test_times_come_back_in_utc(store: Store) -> None:
    store.add_posts("e", make_posts(1))
    [row] = next(store.iter_event_posts("e"))
    assert row["created_at"] == T0
    assert row["created_at"].tzinfo is not None


def test_iter_event_posts_in_chunks_oldest_first(store: Store) -> None:
    store.add_posts("e", list(reversed(make_posts(25))))
    chunks = list(store.iter_event_posts("e", chunk_size=10))
    assert [len(chunk) for chunk in chunks] == [10, 10, 5]
    ids = [row["post_id"] for chunk in chunks for row in chunk]
    assert ids == [str(i) for i in range(25)]


def test_run_log_and_spend(store: Store) -> None:
    run = store.start_run("collect", "e", "x")
    store.finish_run(run, "ok", posts_read=200, posts_new=150, cost_usd=1.0)
    posts, cost = store.spend_since(datetime.now(UTC) - timedelta(days=1), "x")
    assert (posts, cost) == (200, 1.0)
    [record] = store.recent_runs()
    assert (record.verb, record.status, record.posts_new) == ("collect", "ok", 150)


def test_the_last_collection_is_the_latest_successful_collect_run_of_the_event(store: Store) -> None:
    assert store.last_collected("e") is None
    before = datetime.now(UTC).replace(microsecond=0)
    store.finish_run(store.start_run("collect", "e", "x"), "ok")
    found = store.last_collected("e")
    assert found is not None and before <= found <= datetime.now(UTC) and found.tzinfo is not None
    store.finish_run(store.start_run("collect", "e", "x"), "failed")  # a failed run read nothing new
    store.finish_run(store.start_run("collect", "other", "x"), "ok")
    store.finish_run(store.start_run("report", "e"), "ok")
    assert store.last_collected("e") == found


def test_sent_digests_are_remembered(store: Store) -> None:
    assert not store.was_sent("e", "digest", "2012-12-18")
    store.mark_sent("e", "digest", "2012-12-18", "<id@x>")
    assert store.was_sent("e", "digest", "2012-12-18")
    assert not store.was_sent("e", "digest", "2012-12-19")


def test_a_send_is_claimed_by_one_run_released_on_failure_and_taken_over_when_stale(store: Store) -> None:
    hour = timedelta(hours=1)
    assert store.claim_send("e", "digest", ["2012-12-18"], hour) == "claimed"
    assert store.claim_send("e", "digest", ["2012-12-18"], hour) == "busy"  # a second run started together
    store.release_claim("e", "digest", ["2012-12-18"])  # the send failed: the next run tries again
    assert store.claim_send("e", "digest", ["2012-12-18"], hour) == "claimed"
    assert store.claim_send("e", "digest", ["2012-12-18"], timedelta(0)) == "claimed"  # the holder died: taken over
    store.finish_send("e", "digest", ["2012-12-18"], "<id@x>")
    assert store.was_sent("e", "digest", "2012-12-18")
    assert store.claim_send("e", "digest", ["2012-12-18"], hour) == "sent"
    assert store.claim_send("e", "digest", ["2012-12-18"], hour, resend=True) == "claimed"  # --force
    assert store.claim_send("e", "alert", ["a", "b"], hour) == "claimed"
    assert store.claim_send("e", "alert", ["b", "c"], hour) == "busy"  # all keys or none
    store.release_claim("e", "alert", ["a", "b"])
    assert store.claim_send("e", "alert", ["c"], hour) == "claimed"


def test_counts_replace_the_same_bucket(store: Store) -> None:
    store.add_counts("e", "x", [(T0, 5), (T0 + timedelta(hours=1), 7)])
    store.add_counts("e", "x", [(T0 + timedelta(hours=1), 9)])
    assert [count for _, _, count in store.counts("e")] == [5, 9]


def test_schema_version_is_recorded_and_checked(store: Store) -> None:
    assert store.schema_version() == SCHEMA_VERSION


def stamp(store: Store, version: int) -> None:
    """Make the database look as if an older (or newer) version of the program had made it."""
    with store.engine.begin() as conn:
        conn.exec_driver_sql(f"UPDATE meta SET value = '{version}' WHERE key = 'schema_version'")


def test_every_schema_version_after_the_first_has_its_migration() -> None:
    assert sorted(MIGRATIONS) == list(range(2, SCHEMA_VERSION + 1))


def test_an_older_database_is_upgraded_once_on_opening(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    url = store.engine.url.render_as_string(hide_password=False)
    stamp(store, SCHEMA_VERSION - 1)
    seen: list[int] = []  # the version each run of the migration found

    def migrate(conn: Any) -> None:
        seen.append(int(conn.exec_driver_sql("SELECT value FROM meta WHERE key = 'schema_version'").scalar()))

    monkeypatch.setitem(MIGRATIONS, SCHEMA_VERSION, migrate)
    for _ in range(2):
        opened = open_store(url)
        assert opened.schema_version() == SCHEMA_VERSION
        opened.close()
    assert seen == [SCHEMA_VERSION - 1]


def test_a_newer_database_is_refused_and_left_as_it_is(store: Store) -> None:
    url = store.engine.url.render_as_string(hide_password=False)
    stamp(store, SCHEMA_VERSION + 1)
    try:
        with pytest.raises(StoreError, match=f"schema version {SCHEMA_VERSION + 1} is newer than this program's"):
            open_store(url)
        assert store.schema_version() == SCHEMA_VERSION + 1
    finally:
        stamp(store, SCHEMA_VERSION)  # the shared PostgreSQL test database must stay openable


def test_quote_flag_is_stored(store: Store) -> None:
    plain, quote = make_posts(2)
    store.add_posts("e", [plain, dataclasses.replace(quote, is_quote=True)])
    rows = [row for chunk in store.iter_event_posts("e") for row in chunk]
    assert [(row["post_id"], row["is_quote"]) for row in rows] == [("0", False), ("1", True)]


# The posts table and the schema version as version 1 of this program created them, in plain SQL.
VERSION_1_SQL = [
    "CREATE TABLE meta (key VARCHAR(64) NOT NULL, value TEXT NOT NULL, PRIMARY KEY (key))",
    "CREATE TABLE posts (source VARCHAR(128) NOT NULL, post_id VARCHAR(256) NOT NULL, created_at {time} NOT NULL, "
    "text TEXT NOT NULL, author VARCHAR(256), lang VARCHAR(16), likes INTEGER, reposts INTEGER, replies INTEGER, "
    "followers INTEGER, url TEXT, is_repost BOOLEAN NOT NULL, repost_of VARCHAR(256), is_bot BOOLEAN NOT NULL, "
    "raw TEXT, collected_at {time} NOT NULL, PRIMARY KEY (source, post_id))",
    "CREATE TABLE event_posts (event VARCHAR(128) NOT NULL, source VARCHAR(128) NOT NULL, "
    "post_id VARCHAR(256) NOT NULL, PRIMARY KEY (event, source, post_id))",
    "INSERT INTO meta (key, value) VALUES ('schema_version', '1')",
    "INSERT INTO posts VALUES ('x', '7', '2012-12-18 09:00:00', 'quitting instagram', 'jane', 'en', 3, 1, 0, 50, "
    "'https://x.com/jane/status/7', {false}, NULL, {false}, NULL, '2012-12-18 10:00:00')",
    "INSERT INTO event_posts VALUES ('e', 'x', '7')",
]


def make_version_1_database(store: Store) -> str:
    """Replace the store's tables by a version 1 database with one post; return the URL to open it again."""
    url = store.engine.url.render_as_string(hide_password=False)
    metadata.drop_all(store.engine)
    postgres = store.dialect == "postgresql"
    time_type, false = ("TIMESTAMP WITHOUT TIME ZONE", "false") if postgres else ("DATETIME", "0")
    connection = store.engine.raw_connection()
    cursor = connection.cursor()
    for statement in VERSION_1_SQL:
        cursor.execute(statement.format(time=time_type, false=false))
    connection.commit()
    connection.close()
    store.close()
    return url


def test_a_version_1_database_is_upgraded_on_open_and_keeps_its_posts(store: Store) -> None:
    url = make_version_1_database(store)
    upgraded = open_store(url)
    assert upgraded.schema_version() == SCHEMA_VERSION == 4
    (old,) = [row for chunk in upgraded.iter_event_posts("e") for row in chunk]
    assert (old["post_id"], old["text"], old["author"], old["likes"], old["is_quote"]) == (
        "7", "quitting instagram", "jane", 3, False,
    )  # fmt: skip
    assert old["created_at"] == datetime(2012, 12, 18, 9, 0, tzinfo=UTC)
    quote = dataclasses.replace(make_posts(1)[0], is_quote=True)
    assert upgraded.add_posts("e", [quote]).new == 1
    upgraded.close()
    reopened = open_store(url)  # a second open finds version 4 and changes nothing
    flags = {row["post_id"]: row["is_quote"] for chunk in reopened.iter_event_posts("e") for row in chunk}
    reopened.close()
    assert flags == {"7": False, "0": True}


def test_feeds_read_add_up_per_event_and_feed(store: Store) -> None:
    record_feed_read(store, "e", "mastodon", "mastodon@a.example #instagram", 40)
    record_feed_read(store, "e", "mastodon", "mastodon@b.example #instagram", 0)
    record_feed_read(store, "e", "mastodon", "mastodon@a.example #instagram", 3)
    record_feed_read(store, "other", "mastodon", "mastodon@c.example #instagram", 9)
    assert store.feeds_read("e") == {"mastodon@a.example #instagram": 43, "mastodon@b.example #instagram": 0}


def test_sqlite_uses_wal_and_creates_parent_folder(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "nested" / "folder" / "b.db"
    opened = open_store(f"sqlite:///{path}")
    with opened.engine.connect() as conn:
        mode = conn.exec_driver_sql("PRAGMA journal_mode").scalar()
    opened.close()
    assert path.exists()
    assert mode == "wal"


def test_unfinished_runs_are_marked_abandoned(store: Store) -> None:
    finished = store.start_run("collect", "e", "x")
    store.finish_run(finished, "ok")
    store.start_run("collect", "e", "x")  # its process was killed
    assert store.abandon_unfinished_runs() == 1
    assert [run.status for run in store.recent_runs()] == ["abandoned", "ok"]


def test_processes_opening_a_new_database_at_once_all_succeed(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import subprocess
    import sys

    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    code = f"from monitor.store import open_store; open_store({url!r}).close()"
    processes = [subprocess.Popen([sys.executable, "-c", code], stderr=subprocess.PIPE) for _ in range(4)]
    errors = [process.communicate()[1].decode() for process in processes]
    assert [process.returncode for process in processes] == [0, 0, 0, 0], errors
    assert open_store(url).schema_version() == SCHEMA_VERSION


def test_processes_opening_an_older_database_at_once_upgrade_it_once(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import subprocess
    import sys

    url = f"sqlite:///{tmp_path / 'old.db'}"
    old = open_store(url)
    stamp(old, SCHEMA_VERSION - 1)
    with old.engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE upgrades (pid INTEGER)")
    old.close()
    code = (
        "import os; from monitor import store; "
        "store.MIGRATIONS[store.SCHEMA_VERSION] = "
        "lambda conn: conn.exec_driver_sql(f'INSERT INTO upgrades VALUES ({os.getpid()})'); "
        f"store.open_store({url!r}).close()"
    )
    processes = [subprocess.Popen([sys.executable, "-c", code], stderr=subprocess.PIPE) for _ in range(4)]
    errors = [process.communicate()[1].decode() for process in processes]
    assert [process.returncode for process in processes] == [0, 0, 0, 0], errors
    upgraded = open_store(url)
    with upgraded.engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM upgrades").scalar() == 1
    assert upgraded.schema_version() == SCHEMA_VERSION


def test_analysis_frames_hold_every_post_oldest_first_with_the_scorers_language(store: Store) -> None:
    posts = [dataclasses.replace(post, lang="en" if int(post.id) % 2 else None) for post in make_posts(25)]
    store.add_posts("e", list(reversed(posts)))
    store.add_posts("other", make_posts(3, start=100))
    scores = [
        {"source": "x", "post_id": str(i), "scorer": "k", "status": "scored", "lang": lang, "compound": -0.5,
         "churn": i == 1, "aspects": "ads"}
        for i, lang in ((0, "de"), (1, ""), (2, None))
    ]  # fmt: skip
    store.add_scores(scores)
    frames = list(store.iter_analysis_frames("e", "k", chunk_size=10))
    assert [len(frame) for frame in frames] == [10, 10, 5]
    frame = frames[0]
    assert list(frame["post_id"]) == [str(i) for i in range(10)]
    assert _values(frame["lang"][:4]) == ["de", "en", None, "en"]  # the scorer's guess, else the tag
    assert _values(frame["lang_tag"][:4]) == [None, "en", None, "en"]
    assert _values(frame["status"][:4]) == ["scored", "scored", "scored", None]
    assert frame["compound"][0] == -0.5 and bool(frame["churn"][1]) and not bool(frame["is_repost"][0])
    assert pd.to_datetime(frame["created_at"], utc=True)[0] == T0


def _values(column: pd.Series) -> list[Any]:
    return [None if pd.isna(value) else value for value in column]


def test_a_version_2_database_gains_the_validations_table(store: Store) -> None:
    url = store.engine.url.render_as_string(hide_password=False)
    with store.engine.begin() as conn:
        conn.exec_driver_sql("DROP TABLE validations")
    stamp(store, 2)
    opened = open_store(url)
    try:
        assert opened.schema_version() == SCHEMA_VERSION
        assert opened.latest_validation("e") is None
        opened.add_validation("e", "scorer-1", "sample.csv", 200, '{"churn": null}')
        opened.add_validation("e", "scorer-1", "later.csv", 150, '{"churn": null}')
        latest = opened.latest_validation("e")
        assert latest is not None and (latest["file"], latest["labelled"]) == ("later.csv", 150)
        assert latest["validated_at"].tzinfo is not None
    finally:
        opened.close()
