"""Persistence: posts, event membership, scores, cursors, counts, runs and sent digests.

The only module that speaks SQL. SQLAlchemy Core over a SQLite file (WAL mode, so the daemon
and a CLI command can share it) or PostgreSQL, one code path for both. Times are stored as
naive UTC and handed back timezone-aware.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, fields
from datetime import UTC, datetime, timedelta
from itertools import chain, repeat
from operator import itemgetter
from pathlib import Path
from typing import Any

from sqlalchemy import (
    Boolean,
    Column,
    DateTime,
    Float,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    and_,
    create_engine,
    event,
    false,
    func,
    select,
    tuple_,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError, OperationalError, ProgrammingError, SQLAlchemyError
from sqlalchemy.schema import DDL, CreateColumn, CreateIndex, DropIndex

from monitor.errors import StoreError
from monitor.posts import (
    SCORE_ROW_FIELDS,
    UNSCORED_POST_FIELDS,
    Post,
    PostRows,
    ScoreRow,
    UnscoredPost,
    post_row,
    utc_naive,
    utc_text,
)
from monitor.sources.redaction import redact, redact_in_logs

SCHEMA_VERSION = 4
# Upgrades of a database made by an older version: MIGRATIONS[n] takes it from version n - 1 to n, on the
# connection of create_schema's transaction. New tables need no entry (create_all makes them); a new column
# on an existing table does (an ALTER TABLE … ADD COLUMN), together with SCHEMA_VERSION raised to n.
MIGRATIONS: dict[int, Callable[[Connection], None]] = {
    2: lambda conn: _add_column(conn, "posts", "is_quote"),  # quote posts marked
    3: lambda conn: _create_table(conn, "validations"),  # hand checks of the classifier (`validate`)
    # stored per-day analysis sums: an older program would write posts without marking their day stale
    4: lambda conn: _create_table(conn, "analysis_parts", "analysis_events"),
}
metadata = MetaData()

meta_table = Table(
    "meta",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("value", Text, nullable=False),
)
posts_table = Table(
    "posts",
    metadata,
    Column("source", String(128), primary_key=True),
    Column("post_id", String(256), primary_key=True),
    Column("created_at", DateTime, nullable=False, index=True),
    Column("text", Text, nullable=False),
    Column("author", String(256)),
    Column("lang", String(16)),
    Column("likes", Integer),
    Column("reposts", Integer),
    Column("replies", Integer),
    Column("followers", Integer),
    Column("url", Text),
    Column("is_repost", Boolean, nullable=False, default=False),
    Column("repost_of", String(256)),
    Column("is_bot", Boolean, nullable=False, default=False),
    Column("raw", Text),
    Column("collected_at", DateTime, nullable=False),
    Column("is_quote", Boolean, nullable=False, default=False, server_default=false()),  # since schema 2
)
event_posts_table = Table(
    "event_posts",
    metadata,
    Column("event", String(128), primary_key=True),
    Column("source", String(128), primary_key=True),
    Column("post_id", String(256), primary_key=True),
)
scores_table = Table(
    "scores",
    metadata,
    Column("source", String(128), primary_key=True),
    Column("post_id", String(256), primary_key=True),
    Column("scorer", String(64), primary_key=True),
    Column("status", String(32), nullable=False),  # "scored" or "skipped:<reason>"
    Column("lang", String(16)),  # the platform's tag or our guess
    Column("neg", Float),
    Column("neu", Float),
    Column("pos", Float),
    Column("compound", Float),
    Column("churn", Boolean),
    Column("aspects", Text),  # comma-separated aspect names
    Column("scored_at", DateTime, nullable=False),
)
cursors_table = Table(
    "cursors",
    metadata,
    Column("event", String(128), primary_key=True),
    Column("source", String(128), primary_key=True),
    Column("kind", String(64), primary_key=True),
    Column("value", Text, nullable=False),
    Column("updated_at", DateTime, nullable=False),
)
counts_table = Table(
    "counts",
    metadata,
    Column("event", String(128), primary_key=True),
    Column("source", String(128), primary_key=True),
    Column("bucket_start", DateTime, primary_key=True),
    Column("count", Integer, nullable=False),
)
runs_table = Table(
    "runs",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("verb", String(32), nullable=False),
    Column("event", String(128)),
    Column("source", String(128)),
    Column("started_at", DateTime, nullable=False),
    Column("finished_at", DateTime),
    Column("status", String(16), nullable=False),  # running, ok, partial, failed
    Column("posts_read", Integer, nullable=False, default=0),
    Column("posts_new", Integer, nullable=False, default=0),
    Column("cost_usd", Float, nullable=False, default=0.0),
    Column("message", Text),
)
digests_table = Table(
    "digests",
    metadata,
    Column("event", String(128), primary_key=True),
    Column("kind", String(32), primary_key=True),  # "digest" or "alert"
    Column("period", String(64), primary_key=True),  # e.g. "2012-12-18" or a spike's start
    Column("sent_at", DateTime, nullable=False),
    Column("message_id", Text),
)
# A digest or alert being sent right now: inserted (unique key) before talking to the server, so two runs
# started together cannot both send it; removed when the send is recorded or fails. A claim older than the
# caller's expiry is a crashed run's and is taken over.
send_claims_table = Table(
    "send_claims",
    metadata,
    Column("event", String(128), primary_key=True),
    Column("kind", String(32), primary_key=True),
    Column("period", String(64), primary_key=True),
    Column("claimed_at", DateTime, nullable=False),
)

feeds_table = Table(
    "feeds_read",
    metadata,
    Column("event", String(128), primary_key=True),
    Column("source", String(128), primary_key=True),
    Column("feed", String(256), primary_key=True),  # e.g. "mastodon@mastodon.social #instagram"
    Column("statuses", Integer, nullable=False),  # read from it so far, matching or not
    Column("last_read_at", DateTime, nullable=False),
)
sessions_table = Table(
    "sessions",
    metadata,
    Column("source", String(128), primary_key=True),
    Column("account", String(256), primary_key=True),
    Column("value", Text, nullable=False),  # a login session (tokens): a secret, never printed or logged
    Column("updated_at", DateTime, nullable=False),
)

# Each `validate` run: how our labels agreed with a person's on a labelled sample (the numbers as JSON).
validations_table = Table(
    "validations",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("event", String(128), nullable=False, index=True),
    Column("scorer", String(64), nullable=False),  # the scorer whose labels were checked
    Column("file", Text, nullable=False),  # the labelled sample's file name
    Column("labelled", Integer, nullable=False),  # posts the person labelled
    Column("result", Text, nullable=False),  # per-class precision and recall, confusion matrices (JSON)
    Column("validated_at", DateTime, nullable=False),
)

# An event's analysis in parts, one per UTC day of its posts' created_at (pipeline/analysis_parts.py). Every write
# that can change a day's numbers (a post linked to or unlinked from the event, a score written) raises the day's
# `version` in its own transaction; a stored state is current while its state_version equals version.
analysis_parts_table = Table(
    "analysis_parts",
    metadata,
    Column("event", String(128), primary_key=True),
    Column("day", String(10), primary_key=True),  # YYYY-MM-DD (UTC)
    Column("version", Integer, nullable=False),  # raised by every write to the day's posts, links or scores
    Column("state_version", Integer),  # the version the stored state was computed at
    Column("fingerprint", String(64)),  # of the settings and code the state was computed with
    Column("state", LargeBinary),  # the day's accumulator sums, serialised
)
# Events whose every day of posts has its analysis_parts row (listed once; from then on writes add the rows).
analysis_events_table = Table(
    "analysis_events",
    metadata,
    Column("event", String(128), primary_key=True),
    Column("listed_at", DateTime, nullable=False),
)

POST_COLUMNS = [field.name for field in fields(Post)]
CREATED_AT_INDEX = "ix_posts_created_at"  # the index SQLAlchemy names for posts.created_at (index=True)
_POST_FIELD_TO_COLUMN = {"id": "post_id"}


@dataclass(frozen=True)
class CursorUpdate:
    """A cursor to store in the same transaction as a page of posts."""

    event: str
    source: str
    kind: str  # e.g. "since_id", "next_token", "time_us"
    value: str | None  # None deletes the cursor


@dataclass(frozen=True)
class RunProgress:
    """A run's totals so far, written with a page so a killed run still shows what it read (and spent)."""

    run_id: int
    posts_read: int  # including this page
    posts_new_before: int  # new posts stored by earlier pages of the run
    cost_usd: float  # including this page


@dataclass(frozen=True)
class AddResult:
    """What a batch insert did."""

    new: int
    duplicate: int
    linked: int = 0  # posts added to the event: new ones, and ones already stored for another event


@dataclass(frozen=True)
class AnalysisPart:
    """One day of an event's analysis: how often its posts changed, and what the stored state was computed at."""

    version: int
    state_version: int | None
    fingerprint: str | None

    def current(self, fingerprint: str) -> bool:
        """Whether the stored state still holds: no write since it was computed, same settings and code."""
        return self.state_version == self.version and self.fingerprint == fingerprint


@dataclass(frozen=True)
class RunRecord:
    """One row of the run log."""

    id: int
    verb: str
    event: str | None
    source: str | None
    started_at: datetime
    finished_at: datetime | None
    status: str
    posts_read: int
    posts_new: int
    cost_usd: float
    message: str | None


def as_utc(moment: datetime | None) -> datetime | None:
    """Naive UTC from the database → aware UTC."""
    return moment.replace(tzinfo=UTC) if moment is not None and moment.tzinfo is None else moment


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    # 64 MiB of page cache (SQLite's default is 2 MiB): a growing primary-key index stays in memory while
    # an archive is imported (2× the insert rate at 1,000,000 posts); filled only as pages are read
    cursor.execute("PRAGMA cache_size=-65536")
    cursor.close()


def _bind_plain_values_directly() -> None:
    """Tell the sqlite3 module how to bind None and bool without its adaptation protocol.

    sqlite3 binds only exact int, float, str and bytes directly; anything else, None and bool included,
    first fails two attribute lookups (__adapt__, __conform__), which cost most of an executemany of
    posts (12 of their 17 fields are None or bool): binding 300,000 archive rows took 3.2 s, 0.8 s with these.
    A registered adapter is found by one dict lookup and binds the same values (bool as 0/1, None as NULL).
    """
    import sqlite3

    sqlite3.register_adapter(bool, int)
    none_to_null: Any = {}.get  # a C function of one argument that returns None
    sqlite3.register_adapter(type(None), none_to_null)


_POST_COLUMN_NAMES = [_POST_FIELD_TO_COLUMN.get(name, name) for name in POST_COLUMNS]
_CREATED_AT, _COLLECTED_AT = POST_COLUMNS.index("created_at"), POST_COLUMNS.index("collected_at")
_SQLITE_ROWS = 64  # rows in one INSERT on SQLite (64 posts bind 1,088 values: SQLite 3.32 allows 32,766)
_ROW_KEY, _SOURCE, _POST_ID, _CREATED_AT_OF = itemgetter(0, 1), itemgetter(0), itemgetter(1), itemgetter(_CREATED_AT)


def day_key(stored_time: Any) -> str:
    """The UTC day (YYYY-MM-DD) of a time as the driver takes it: SQLite's text or a naive UTC datetime."""
    return str(stored_time)[:10]


def _batched(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


class Store:
    """A connection pool on one database and the operations the pipeline needs."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.dialect = engine.dialect.name
        bind = DateTime().dialect_impl(engine.dialect).bind_processor(engine.dialect)
        self._datetime_to_db: Callable[[Any], Any] = bind or (lambda moment: moment)
        if self.dialect == "sqlite":  # the dialect's own text, ten times faster (a test holds them equal)
            self._datetime_to_db = utc_text

    # ---- setup ---------------------------------------------------------------------------

    def create_schema(self) -> None:
        """Create missing tables and check the schema version.

        Two processes opening a new database at once race to create it; the loser retries and finds it made.
        """
        for attempt in range(3):
            try:
                metadata.create_all(self.engine)
                break
            except (OperationalError, IntegrityError, ProgrammingError):
                if attempt == 2:
                    raise
                time.sleep(0.2 * (attempt + 1))
        with self.engine.begin() as conn:
            version = {"key": "schema_version", "value": str(SCHEMA_VERSION)}
            conn.execute(self._insert(meta_table), [version])  # new database; on SQLite it locks out other upgraders
            found = conn.execute(
                select(meta_table.c.value).where(meta_table.c.key == "schema_version").with_for_update()
            ).scalar()
            if found is not None and int(found) > SCHEMA_VERSION:
                raise StoreError(
                    f"database schema version {found} is newer than this program's {SCHEMA_VERSION}; upgrade backlash"
                )
            if found is not None and int(found) < SCHEMA_VERSION:
                _upgrade(conn, int(found))
            _create_missing_indexes(conn)  # e.g. after an import into an empty store was killed

    def schema_version(self) -> int:
        with self.engine.connect() as conn:
            value = conn.execute(select(meta_table.c.value).where(meta_table.c.key == "schema_version")).scalar()
        return int(value or 0)

    def close(self) -> None:
        self.engine.dispose()

    def location(self) -> str:
        """The database URL as logs may show it: the password replaced by ***."""
        return self.engine.url.render_as_string(hide_password=True)

    def database_files(self) -> list[Path]:
        """The files a SQLite database lives in (the file, its -wal, -shm and -journal); none for PostgreSQL."""
        database = self.engine.url.database
        if self.dialect != "sqlite" or not database or database == ":memory:":
            return []
        path = Path(database)
        return [path, *(path.with_name(path.name + suffix) for suffix in ("-wal", "-shm", "-journal"))]

    def _insert(self, table: Table) -> Any:
        """INSERT … ON CONFLICT DO NOTHING in this database's dialect."""
        return self._dialect_insert(table).on_conflict_do_nothing()

    def _upsert(self, table: Table, keys: list[str], values: dict[str, Any]) -> Any:
        statement = self._dialect_insert(table).values(**values)
        updates = {name: value for name, value in values.items() if name not in keys}
        return statement.on_conflict_do_update(index_elements=keys, set_=updates)

    # ---- posts ---------------------------------------------------------------------------

    @contextmanager
    def indexes_deferred(self) -> Iterator[bool]:
        """Around a bulk import: into an empty store, the posts' secondary indexes are built once at the end.

        Building an index from a full table (one sort) costs less than keeping it ordered post by post.
        Kill-safe: the indexes are built again when the block ends however it ends, and a killed import
        leaves a store whose next opening builds them (create_schema). Yields whether they were deferred.
        """
        try:
            with self.engine.begin() as conn:
                empty = conn.execute(select(posts_table.c.source).limit(1)).first() is None
                if empty:
                    for index in posts_table.indexes:
                        conn.execute(DropIndex(index, if_exists=True))
        except SQLAlchemyError as error:  # e.g. another process wrote posts in between
            raise StoreError(f"cannot prepare the import: {_error_text(error)}") from None
        try:
            yield empty
        finally:
            if empty:
                self._build_missing_indexes()

    def _build_missing_indexes(self) -> None:
        try:
            with self.engine.begin() as conn:
                _create_missing_indexes(conn)
        except SQLAlchemyError as error:  # the next opening of the store tries again
            raise StoreError(f"cannot build the posts' time index: {_error_text(error)}") from None

    def add_posts(
        self,
        event_name: str,
        posts: Sequence[Post] | PostRows,
        cursors: Iterable[CursorUpdate] = (),
        progress: RunProgress | None = None,
        feed_read: tuple[str, str, int] | None = None,
    ) -> AddResult:
        """Store a batch of posts for an event, and the cursors that go with it, in one transaction.

        A post already stored (same source and id) is not changed, only linked to the event, so
        inserting twice changes nothing; of two with the same key in one batch, the later is stored.
        Either the whole batch and its cursors are written, or none; the run's progress and the feed
        the page came from (source, feed, statuses read), when given, are written in the same transaction.
        """
        rows = posts.rows if isinstance(posts, PostRows) else [post_row(post) for post in posts]
        try:
            with self.engine.begin() as conn:
                new, linked = self._insert_rows(conn, event_name, rows) if rows else (0, 0)
                for cursor in cursors:
                    self._write_cursor(conn, cursor)
                if progress is not None:
                    _write_progress(conn, progress, new)
                if feed_read is not None:
                    self._write_feed_read(conn, event_name, *feed_read)
        except SQLAlchemyError as error:
            raise StoreError(f"cannot store posts: {_error_text(error)}") from None
        return AddResult(new=new, duplicate=len(rows) - new, linked=linked)

    def _insert_rows(self, conn: Connection, event_name: str, rows: list[tuple[Any, ...]]) -> tuple[int, int]:
        """Insert posts and their links (duplicates ignored); (posts new, links new)."""
        # sorted by key: each B-tree page is visited once per batch, not once per post (2× on a growing store);
        # reversed first, so of two posts with the same key the later comes first and is the one stored
        one_source = len(set(map(_SOURCE, rows))) == 1  # as in every import: the ids alone order them, faster
        ordered = sorted(reversed(rows), key=_POST_ID if one_source else _ROW_KEY)
        sqlite = self.dialect == "sqlite"
        bound = ordered if sqlite else [self._with_datetimes(row) for row in ordered]
        new = self._insert_many(conn, posts_table, _POST_COLUMN_NAMES, bound)
        if sqlite and new == len(ordered):
            linked = self._link_new_sqlite_rows(conn, event_name, new)
        else:  # some were stored before (or PostgreSQL): link each post of the batch
            linked = self._link_rows(conn, event_name, ordered)
        self._mark_days(conn, event_name, set(map(day_key, map(_CREATED_AT_OF, ordered))))
        return new, linked

    def _link_rows(self, conn: Connection, event_name: str, rows: list[tuple[Any, ...]]) -> int:
        links = list(zip(repeat(event_name), map(_SOURCE, rows), map(_POST_ID, rows), strict=False))
        return self._insert_many(conn, event_posts_table, ["event", "source", "post_id"], links)

    def _link_new_sqlite_rows(self, conn: Connection, event_name: str, new: int) -> int:
        """SQLite, every post of the batch new: linked from the posts table by rowid, without binding them again."""
        # new rows take the rowids after the largest, one by one, and the transaction holds the write lock
        last = conn.exec_driver_sql("SELECT last_insert_rowid()").scalar_one()
        return int(
            conn.exec_driver_sql(
                "INSERT INTO event_posts (event, source, post_id) SELECT ?, source, post_id FROM posts "
                "WHERE rowid > ? AND rowid <= ? ORDER BY rowid ON CONFLICT DO NOTHING",
                (event_name, last - new, last),
            ).rowcount
        )

    @staticmethod
    def _with_datetimes(row: tuple[Any, ...]) -> tuple[Any, ...]:
        """A row with its times as naive datetimes, for a driver that binds timestamps as such (psycopg)."""
        values = list(row)
        values[_CREATED_AT] = datetime.fromisoformat(values[_CREATED_AT])
        values[_COLLECTED_AT] = datetime.fromisoformat(values[_COLLECTED_AT])
        return tuple(values)

    def post_count(self, event_name: str | None = None) -> int:
        with self.engine.connect() as conn:
            if event_name is None:
                return int(conn.execute(select(func.count()).select_from(posts_table)).scalar_one())
            query = select(func.count()).select_from(event_posts_table).where(event_posts_table.c.event == event_name)
            return int(conn.execute(query).scalar_one())

    def event_names(self) -> list[str]:
        """The events with posts, in order: one step on the links' key per event (DISTINCT reads every link)."""
        event = event_posts_table.c.event
        found = select(func.min(event).label("event")).cte("found", recursive=True)
        following = select(func.min(event)).where(event > found.c.event).scalar_subquery()
        found = found.union_all(select(following).where(found.c.event.is_not(None)))
        with self.engine.connect() as conn:
            return list(conn.execute(select(found.c.event).where(found.c.event.is_not(None)).order_by("event")).scalars())

    def iter_event_posts(
        self, event_name: str, scorer: str | None = None, chunk_size: int = 10_000
    ) -> Iterator[list[dict[str, Any]]]:
        """An event's posts oldest first, in chunks of dicts, with the scorer's scores when given."""
        columns = [c for c in posts_table.c if c.name != "raw"]
        query = select(*columns)
        if scorer is not None:
            score_columns: list[Any] = [
                scores_table.c[name] for name in ("status", "neg", "neu", "pos", "compound", "churn", "aspects")
            ]
            score_columns.append(scores_table.c.lang.label("scored_lang"))
            query = select(*columns, *score_columns)
        query = self._event_posts_query(query, event_name, scorer)
        with self.engine.connect() as conn:
            result = conn.execution_options(stream_results=True, yield_per=chunk_size).execute(query)
            for partition in result.mappings().partitions(chunk_size):
                yield [_aware_row(dict(row)) for row in partition]

    def iter_analysis_frames(
        self,
        event_name: str,
        scorer: str,
        chunk_size: int = 50_000,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> Iterator[Any]:
        """An event's posts with the scorer's scores, oldest first, as pandas DataFrames of chunk_size rows.

        since, until (naive or aware UTC): only the posts created in [since, until), a range read on the
        created_at index.

        Columns: source, post_id, created_at (naive UTC: text on SQLite), text, author, lang (the language
        the scorer used: its guess, else the tag), lang_tag, likes, reposts, replies, followers, url,
        is_repost, is_quote (0/1), status, compound, churn, aspects. The driver's tuples go straight into
        columns: no dict, datetime or bool per post (that conversion was most of a report's time).
        """
        import pandas as pd

        posts, scores = posts_table.c, scores_table.c
        columns: list[Any] = [posts[name] for name in ("source", "post_id", "created_at", "text", "author")]
        columns.append(func.coalesce(func.nullif(scores.lang, ""), posts.lang).label("lang"))
        columns.append(posts.lang.label("lang_tag"))
        columns += [posts[name] for name in ("likes", "reposts", "replies", "followers", "url", "is_repost", "is_quote")]
        columns += [scores[name] for name in ("status", "compound", "churn", "aspects")]
        query = self._event_posts_query(select(*columns), event_name, scorer).where(*self._created_between(since, until))
        statement, params = self._driver_statement(query)
        with self.engine.connect() as conn:
            # the driver's own cursor (server-side on PostgreSQL): its tuples go into the frame as they are,
            # without SQLAlchemy's per-row type processing
            dbapi = conn.connection.dbapi_connection
            assert dbapi is not None
            cursor = dbapi.cursor(name="analysis_frames") if self.dialect == "postgresql" else dbapi.cursor()
            try:
                cursor.execute(self._by_created_at(statement, since is not None or until is not None), params)
                names = [description[0] for description in cursor.description]
                while rows := cursor.fetchmany(chunk_size):
                    yield pd.DataFrame.from_records(rows, columns=names, coerce_float=True)
            finally:
                cursor.close()

    def _created_between(self, since: datetime | None, until: datetime | None) -> list[Any]:
        """The WHERE terms of posts created in [since, until) (None: no bound)."""
        created = posts_table.c.created_at
        bounds = [] if since is None else [created >= self._datetime_to_db(utc_naive(since))]
        return bounds if until is None else [*bounds, created < self._datetime_to_db(utc_naive(until))]

    def posts_created_between(self, since: datetime | None = None, until: datetime | None = None) -> int:
        """Posts of every event created in [since, until), counted on the created_at index: how much a read costs."""
        query = select(func.count()).select_from(posts_table).where(*self._created_between(since, until))
        with self.engine.connect() as conn:
            return int(conn.execute(query).scalar_one())

    def created_at_of(self, position: int) -> datetime | None:
        """The creation time (naive UTC) of the post at this position in time order, of every event (None past the end)."""
        query = select(posts_table.c.created_at).order_by(posts_table.c.created_at).offset(position).limit(1)
        with self.engine.connect() as conn:
            return conn.execute(query).scalar()

    def _by_created_at(self, sql: str, range_read: bool) -> str:
        """A range read driven by the created_at index on SQLite too.

        Without statistics SQLite drives the join from the event's links (every post of the event, 1,000,000
        lookups to return one day's) and sorts; INDEXED BY reads only the day's posts, already in order.
        SQLAlchemy renders no index hint for SQLite, hence the text.
        """
        if not range_read or self.dialect != "sqlite":
            return sql
        return sql.replace("FROM posts ", f"FROM posts INDEXED BY {CREATED_AT_INDEX} ", 1)

    def _driver_statement(self, query: Any) -> tuple[str, Any]:
        """A query as the driver's SQL and parameters, for reading its plain tuples without SQLAlchemy's rows."""
        compiled = query.compile(dialect=self.engine.dialect)
        params: Any = compiled.construct_params()
        if compiled.positiontup is not None:  # qmark (SQLite): the values in the order of the markers
            params = [params[name] for name in compiled.positiontup]
        return str(compiled), params

    def _event_posts_query(self, query: Any, event_name: str, scorer: str | None) -> Any:
        """query over an event's posts (joined with the scorer's scores when given), oldest first."""
        source_join = posts_table.join(
            event_posts_table,
            and_(
                event_posts_table.c.source == posts_table.c.source, event_posts_table.c.post_id == posts_table.c.post_id
            ),
        )
        if scorer is not None:
            source_join = source_join.outerjoin(
                scores_table,
                and_(
                    scores_table.c.source == posts_table.c.source,
                    scores_table.c.post_id == posts_table.c.post_id,
                    scores_table.c.scorer == scorer,
                ),
            )
        return (
            query.select_from(source_join)
            .where(event_posts_table.c.event == event_name)
            .order_by(posts_table.c.created_at, posts_table.c.source, posts_table.c.post_id)
        )

    # ---- drill-down: the posts of a span, streamed after the analysis ------------------------

    def iter_window_texts(
        self, event_name: str, scorer: str, span: tuple[datetime, datetime | None], chunk_size: int = 20_000
    ) -> Iterator[list[tuple[str, int]]]:
        """(text, posts) of the event's scored posts created in span [start, end) (end None: no end): each
        distinct text once with the number of posts that have it (reposts repeat texts), in chunks; streamed
        (server-side on PostgreSQL), so memory holds one chunk.

        The time range leads (the event's membership is an EXISTS), so the planner walks the created_at index
        over the span instead of the whole event; the database counts the copies, not Python.
        """
        posts, scores, members = posts_table.c, scores_table.c, event_posts_table.c
        scored = and_(scores.source == posts.source, scores.post_id == posts.post_id, scores.scorer == scorer)
        member = select(members.post_id).where(
            members.event == event_name, members.source == posts.source, members.post_id == posts.post_id
        )
        start, end = span
        query = (
            select(posts.text, func.count())
            .select_from(posts_table.join(scores_table, scored))
            .where(posts.created_at >= utc_naive(start), scores.status == "scored", scores.compound.is_not(None))
            .where(member.exists())
            .group_by(posts.text)
        )
        query = query if end is None else query.where(posts.created_at < utc_naive(end))
        with self.engine.connect() as conn:
            result = conn.execution_options(stream_results=True, yield_per=chunk_size).execute(query)
            for partition in result.partitions(chunk_size):
                yield [(str(text), int(count)) for text, count in partition]

    # ---- the analysis in per-day parts ------------------------------------------------------

    def _mark_days(self, conn: Connection, event_name: str, days: Iterable[str]) -> None:
        """Raise the version of an event's days (creating their rows): their stored states are stale."""
        rows = [{"event": event_name, "day": day, "version": 1} for day in sorted(days)]
        if rows:
            conn.execute(self._bump(self._dialect_insert(analysis_parts_table)), rows)

    def _bump(self, statement: Any) -> Any:
        parts = analysis_parts_table.c
        return statement.on_conflict_do_update(index_elements=[parts.event, parts.day], set_={"version": parts.version + 1})

    def _dialect_insert(self, table: Table) -> Any:
        return (postgresql.insert if self.dialect == "postgresql" else sqlite.insert)(table)

    def _day_column(self) -> Any:
        """posts.created_at's UTC day as YYYY-MM-DD text, in SQL."""
        if self.dialect == "postgresql":
            return func.to_char(posts_table.c.created_at, "YYYY-MM-DD")
        return func.substr(posts_table.c.created_at, 1, 10)

    def _mark_scored_days(self, conn: Connection, keys: Sequence[tuple[str, str]]) -> None:
        """Raise the version of the days that hold these posts, in every event whose days are listed.

        Until a report has listed an event there is nothing to mark: a first score of a new store skips
        the two primary-key lookups a post (read in the write's own transaction, so never out of date).
        """
        if conn.execute(select(analysis_events_table.c.event).limit(1)).first() is None:
            return
        for chunk in _batched(sorted(set(keys)), 500):
            conn.exec_driver_sql(self._mark_scored_sql(len(chunk)), tuple(value for key in chunk for value in key))

    def _mark_scored_sql(self, keys: int) -> str:
        """Driver SQL that marks the days of `keys` posts given as parameters (source, post_id, …).

        The keys drive the join (CROSS JOIN fixes SQLite's order): two primary-key lookups per post. Written
        with an IN list or from event_posts, SQLite scanned every link of the event for each batch.
        """
        marker = "?" if self.engine.dialect.paramstyle == "qmark" else "%s"
        rows = ", ".join([f"({marker}, {marker})"] * keys)
        day = self._day_column().compile(dialect=self.engine.dialect, compile_kwargs={"literal_binds": True})
        return (
            f"WITH batch (source, post_id) AS (VALUES {rows}) "
            "INSERT INTO analysis_parts (event, day, version) "
            f"SELECT DISTINCT event_posts.event, {day}, 1 FROM batch CROSS JOIN posts "
            "CROSS JOIN analysis_events CROSS JOIN event_posts "
            "WHERE posts.source = batch.source AND posts.post_id = batch.post_id "
            "AND event_posts.event = analysis_events.event AND event_posts.source = posts.source "
            "AND event_posts.post_id = posts.post_id "
            "ON CONFLICT (event, day) DO UPDATE SET version = analysis_parts.version + 1"
        )

    def unlink_posts(self, event_name: str, keys: Sequence[tuple[str, str]]) -> int:
        """Take posts (source, post_id) out of an event; they stay stored, and in other events. Returns how many were in it."""
        links = event_posts_table.c
        removed = 0
        with self.engine.begin() as conn:
            for chunk in _batched(sorted(set(keys)), 500):
                mine = and_(links.event == event_name, tuple_(links.source, links.post_id).in_(list(chunk)))
                on_post = and_(posts_table.c.source == links.source, posts_table.c.post_id == links.post_id)
                days = select(self._day_column()).select_from(event_posts_table.join(posts_table, on_post)).where(mine)
                self._mark_days(conn, event_name, set(conn.execute(days.distinct()).scalars()))
                removed += int(conn.execute(event_posts_table.delete().where(mine)).rowcount or 0)
        return removed

    def analysis_parts(self, event_name: str) -> dict[str, AnalysisPart] | None:
        """Day → its AnalysisPart, or None while the event was never listed (mark_listed): its rows may miss days."""
        listed = select(analysis_events_table.c.event).where(analysis_events_table.c.event == event_name)
        with self.engine.connect() as conn:
            if conn.execute(listed).first() is None:
                return None
        return self._parts(event_name)

    def analysis_versions(self, event_name: str) -> dict[str, int]:
        """Day → version of the event's day rows that exist (listed or not)."""
        return {day: part.version for day, part in self._parts(event_name).items()}

    def _parts(self, event_name: str) -> dict[str, AnalysisPart]:
        parts = analysis_parts_table.c
        query = select(parts.day, parts.version, parts.state_version, parts.fingerprint).where(parts.event == event_name)
        with self.engine.connect() as conn:
            return {day: AnalysisPart(*values) for day, *values in conn.execute(query)}

    def mark_listed(self, event_name: str) -> None:
        """Record that every day with posts of the event has its row (a full analysis stored them all)."""
        with self.engine.begin() as conn:
            conn.execute(self._insert(analysis_events_table), [{"event": event_name, "listed_at": utc_naive(datetime.now(UTC))}])

    def analysis_state(self, event_name: str, day: str) -> bytes | None:
        parts = analysis_parts_table.c
        query = select(parts.state).where(parts.event == event_name, parts.day == day)
        with self.engine.connect() as conn:
            return conn.execute(query).scalar()

    def save_analysis_state(self, event_name: str, day: str, part: AnalysisPart, state: bytes) -> None:
        """Store a day's state as computed at part.version: a write since then leaves it stale, as it must.

        A day without a row yet gets one at that version; a row's own version is never lowered.
        """
        values = {"state": state, "state_version": part.version, "fingerprint": part.fingerprint}
        statement = self._dialect_insert(analysis_parts_table).values(event=event_name, day=day, version=part.version, **values)
        statement = statement.on_conflict_do_update(index_elements=["event", "day"], set_=values)
        with self.engine.begin() as conn:
            conn.execute(statement)

    # ---- cursors -------------------------------------------------------------------------

    def _write_cursor(self, conn: Connection, cursor: CursorUpdate) -> None:
        key = and_(
            cursors_table.c.event == cursor.event,
            cursors_table.c.source == cursor.source,
            cursors_table.c.kind == cursor.kind,
        )
        if cursor.value is None:
            conn.execute(cursors_table.delete().where(key))
            return
        values: dict[str, Any] = {
            "event": cursor.event,
            "source": cursor.source,
            "kind": cursor.kind,
            "value": cursor.value,
            "updated_at": utc_naive(datetime.now(UTC)),
        }
        conn.execute(self._upsert(cursors_table, ["event", "source", "kind"], values))

    def cursors(self) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(cursors_table).order_by("event", "source", "kind")).mappings()
            return [_aware_row(dict(row)) for row in rows]

    # ---- run log -------------------------------------------------------------------------

    def start_run(self, verb: str, event_name: str | None = None, source: str | None = None) -> int:
        values: dict[str, Any] = {"verb": verb, "event": event_name, "source": source, "status": "running"}
        values["started_at"] = utc_naive(datetime.now(UTC))
        with self.engine.begin() as conn:
            key = conn.execute(runs_table.insert().values(**values)).inserted_primary_key
        assert key is not None
        return int(key[0])

    def finish_run(
        self,
        run_id: int,
        status: str,
        posts_read: int = 0,
        posts_new: int = 0,
        cost_usd: float = 0.0,
        message: str | None = None,
    ) -> None:
        values: dict[str, Any] = {
            "status": status,
            "posts_read": posts_read,
            "posts_new": posts_new,
            "cost_usd": cost_usd,
        }
        values |= {"message": message and redact(message), "finished_at": utc_naive(datetime.now(UTC))}
        with self.engine.begin() as conn:
            conn.execute(runs_table.update().where(runs_table.c.id == run_id).values(**values))

    def abandon_unfinished_runs(self) -> int:
        """Mark runs still 'running' as abandoned: their process died (called by the daemon once it holds the lock)."""
        values = {"status": "abandoned", "finished_at": utc_naive(datetime.now(UTC))}
        values["message"] = "the process ended before the run finished"
        with self.engine.begin() as conn:
            result = conn.execute(runs_table.update().where(runs_table.c.status == "running").values(**values))
        return int(result.rowcount or 0)

    def last_collected(self, event_name: str) -> datetime | None:
        """When the event's last successful live collection started (posts up to then are in), or None."""
        query = select(func.max(runs_table.c.started_at)).where(
            runs_table.c.verb == "collect",
            runs_table.c.event == event_name,
            runs_table.c.status.in_(("ok", "partial")),
        )
        with self.engine.connect() as conn:
            return as_utc(conn.execute(query).scalar())

    def recent_runs(self, limit: int = 10) -> list[RunRecord]:
        query = select(runs_table).order_by(runs_table.c.id.desc()).limit(limit)
        with self.engine.connect() as conn:
            return [RunRecord(**_aware_row(dict(row))) for row in conn.execute(query).mappings()]

    def spend_since(self, since: datetime, source: str | None = None) -> tuple[int, float]:
        """Posts read and estimated cost of runs started since a moment (e.g. the month's start)."""
        query = select(
            func.coalesce(func.sum(runs_table.c.posts_read), 0), func.coalesce(func.sum(runs_table.c.cost_usd), 0.0)
        )
        query = query.where(runs_table.c.started_at >= utc_naive(since))
        if source is not None:
            query = query.where(runs_table.c.source == source)
        with self.engine.connect() as conn:
            row = conn.execute(query).one()
        posts_read, cost = row[0], row[1]
        return int(posts_read), float(cost)

    # ---- counts (volume without reading posts) --------------------------------------------

    def add_counts(
        self,
        event_name: str,
        source: str,
        buckets: Sequence[tuple[datetime, int]],
        cursors: Iterable[CursorUpdate] = (),
    ) -> None:
        """Store hourly post counts (replacing earlier counts of the same bucket) with their cursors."""
        with self.engine.begin() as conn:
            for start, count in buckets:
                values = {"event": event_name, "source": source, "bucket_start": utc_naive(start), "count": count}
                conn.execute(self._upsert(counts_table, ["event", "source", "bucket_start"], values))
            for cursor in cursors:
                self._write_cursor(conn, cursor)

    def counts(self, event_name: str) -> list[tuple[str, datetime, int]]:
        query = (
            select(counts_table.c.source, counts_table.c.bucket_start, counts_table.c.count)
            .where(counts_table.c.event == event_name)
            .order_by(counts_table.c.bucket_start)
        )
        with self.engine.connect() as conn:
            return [(source, start.replace(tzinfo=UTC), count) for source, start, count in conn.execute(query)]

    # ---- feeds read (coverage: a feed read without a matching post still counts) ------------

    def _write_feed_read(self, conn: Connection, event_name: str, source: str, feed: str, statuses: int) -> None:
        values = {"event": event_name, "source": source, "feed": feed, "statuses": statuses}
        statement = self._dialect_insert(feeds_table).values(**values, last_read_at=utc_naive(datetime.now(UTC)))
        updates = {"statuses": feeds_table.c.statuses + statement.excluded.statuses}
        updates["last_read_at"] = statement.excluded.last_read_at
        conn.execute(statement.on_conflict_do_update(index_elements=["event", "source", "feed"], set_=updates))

    def feeds_read(self, event_name: str) -> dict[str, int]:
        """Every feed an event's collects have read → statuses read from it, by feed name."""
        query = (
            select(feeds_table.c.feed, func.sum(feeds_table.c.statuses))
            .where(feeds_table.c.event == event_name)
            .group_by(feeds_table.c.feed)
            .order_by(feeds_table.c.feed)
        )
        with self.engine.connect() as conn:
            return {feed: int(statuses) for feed, statuses in conn.execute(query)}

    # ---- sent digests and alerts -----------------------------------------------------------

    def was_sent(self, event_name: str, kind: str, period: str) -> bool:
        with self.engine.connect() as conn:
            return self._sent(conn, event_name, kind, period)

    def _sent(self, conn: Connection, event_name: str, kind: str, period: str) -> bool:
        query = (
            select(func.count())
            .select_from(digests_table)
            .where(digests_table.c.event == event_name, digests_table.c.kind == kind, digests_table.c.period == period)
        )
        return bool(conn.execute(query).scalar_one())

    def mark_sent(self, event_name: str, kind: str, period: str, message_id: str) -> None:
        with self.engine.begin() as conn:
            self._write_sent(conn, event_name, kind, period, message_id)

    def _write_sent(self, conn: Connection, event_name: str, kind: str, period: str, message_id: str) -> None:
        values: dict[str, Any] = {"event": event_name, "kind": kind, "period": period, "message_id": message_id}
        values["sent_at"] = utc_naive(datetime.now(UTC))
        conn.execute(self._upsert(digests_table, ["event", "kind", "period"], values))

    def claim_send(
        self, event_name: str, kind: str, keys: Sequence[str], expiry: timedelta, resend: bool = False
    ) -> str:
        """Claim the sending of keys (a digest's period, an alert's spikes) for this run, all or none.

        Returns "claimed", "busy" (another run holds a claim younger than expiry) or "sent" (already recorded
        as sent; with resend, sent keys are claimed again). The claim is a row with a unique key, so of two
        runs started together exactly one gets it; finish_send or release_claim ends it.
        """
        now = utc_naive(datetime.now(UTC))
        mine = and_(
            send_claims_table.c.event == event_name,
            send_claims_table.c.kind == kind,
            send_claims_table.c.period.in_(list(keys)),
        )
        with self.engine.connect() as conn, conn.begin() as transaction:
            # A write first: on SQLite it takes the database's write lock, so the rest runs alone.
            conn.execute(send_claims_table.delete().where(mine, send_claims_table.c.claimed_at < now - expiry))
            claim = self._insert(send_claims_table).returning(send_claims_table.c.period)
            rows = [{"event": event_name, "kind": kind, "period": key, "claimed_at": now} for key in keys]
            if sum(len(conn.execute(claim.values(**row)).all()) for row in rows) < len(rows):
                transaction.rollback()
                return "busy"
            # Checked after the insert: a run that sent these keys recorded them before its claim went away.
            if not resend and any(self._sent(conn, event_name, kind, key) for key in keys):
                transaction.rollback()
                return "sent"
        return "claimed"

    def finish_send(self, event_name: str, kind: str, keys: Sequence[str], message_id: str) -> None:
        """Record keys as sent (the server accepted the message) and end their claim, in one transaction."""
        with self.engine.begin() as conn:
            for key in keys:
                self._write_sent(conn, event_name, kind, key, message_id)
            conn.execute(self._claims(event_name, kind, keys))

    def release_claim(self, event_name: str, kind: str, keys: Sequence[str]) -> None:
        """End a claim without recording a send (it failed): the next run sends these keys."""
        with self.engine.begin() as conn:
            conn.execute(self._claims(event_name, kind, keys))

    def _claims(self, event_name: str, kind: str, keys: Sequence[str]) -> Any:
        return send_claims_table.delete().where(
            send_claims_table.c.event == event_name,
            send_claims_table.c.kind == kind,
            send_claims_table.c.period.in_(list(keys)),
        )

    def last_sent(self, event_name: str, kind: str) -> datetime | None:
        query = select(func.max(digests_table.c.sent_at)).where(
            digests_table.c.event == event_name, digests_table.c.kind == kind
        )
        with self.engine.connect() as conn:
            return as_utc(conn.execute(query).scalar())

    # ---- status ----------------------------------------------------------------------------

    def post_counts_by_source(self) -> list[tuple[str, str, int]]:
        """(event, source, posts) for every event and source in the store."""
        query = (
            select(event_posts_table.c.event, event_posts_table.c.source, func.count())
            .group_by(event_posts_table.c.event, event_posts_table.c.source)
            .order_by(event_posts_table.c.event, event_posts_table.c.source)
        )
        with self.engine.connect() as conn:
            return [(event_name, source, int(n)) for event_name, source, n in conn.execute(query)]

    def scored_counts(self, event_name: str, scorer: str) -> dict[str, int]:
        """How many of an event's posts this scorer has scored, skipped (by reason) and not yet seen."""
        join = event_posts_table.join(
            scores_table,
            and_(
                scores_table.c.source == event_posts_table.c.source,
                scores_table.c.post_id == event_posts_table.c.post_id,
                scores_table.c.scorer == scorer,
            ),
        )
        query = (
            select(scores_table.c.status, func.count())
            .select_from(join)
            .where(event_posts_table.c.event == event_name)
            .group_by(scores_table.c.status)
        )
        with self.engine.connect() as conn:
            counts = {status: int(n) for status, n in conn.execute(query)}
        counts["unscored"] = self.post_count(event_name) - sum(counts.values())
        return counts

    # ---- scoring ---------------------------------------------------------------------------

    def _unscored_join(self, scorer: str) -> Any:
        return posts_table.outerjoin(
            scores_table,
            and_(
                scores_table.c.source == posts_table.c.source,
                scores_table.c.post_id == posts_table.c.post_id,
                scores_table.c.scorer == scorer,
            ),
        )

    def count_unscored(self, scorer: str) -> int:
        """Posts (of any event) that this scorer has not scored or skipped yet."""
        query = select(func.count()).select_from(self._unscored_join(scorer)).where(scores_table.c.source.is_(None))
        with self.engine.connect() as conn:
            return int(conn.execute(query).scalar_one())

    def iter_unscored(self, scorer: str, chunk_size: int = 20_000) -> Iterator[list[UnscoredPost]]:
        """Chunks of posts (UNSCORED_POST_FIELDS, as the driver's tuples) without a score from this scorer.

        Keyset pagination on the primary key, so each chunk costs the same on a million-post store
        and a chunk written in between does not shift the next one.
        """
        base = select(*[posts_table.c[name] for name in UNSCORED_POST_FIELDS]).select_from(self._unscored_join(scorer))
        base = base.where(scores_table.c.source.is_(None))
        base = base.order_by(posts_table.c.source, posts_table.c.post_id).limit(chunk_size)
        after: tuple[str, str] | None = None
        while True:
            query = base if after is None else base.where(tuple_(posts_table.c.source, posts_table.c.post_id) > after)
            statement, params = self._driver_statement(query)
            with self.engine.connect() as conn:
                # the driver's plain tuples: SQLAlchemy's rows (or a dict a post) cost several µs per post here
                cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
                try:
                    cursor.execute(statement, params)
                    chunk: list[UnscoredPost] = list(cursor.fetchall())
                finally:
                    cursor.close()
            if not chunk:
                return
            yield chunk
            after = (chunk[-1][0], chunk[-1][1])  # source, post_id

    def add_scores(self, rows: Sequence[ScoreRow | dict[str, Any]]) -> None:
        """Write one chunk of scores in one transaction; a score already stored is kept (idempotent).

        A row is a sequence of SCORE_ROW_FIELDS (as BatchScorer makes them) or a dict of some of them (None for the rest).
        """
        dialect = self.engine.dialect
        bind = scores_table.c.scored_at.type.dialect_impl(dialect).bind_processor(dialect)
        scored_at = utc_naive(datetime.now(UTC))
        scored_at = bind(scored_at) if bind else scored_at
        tuples: list[ScoreRow] = [tuple(map(row.get, SCORE_ROW_FIELDS)) if isinstance(row, dict) else row for row in rows]
        values = [(*row, scored_at) for row in tuples]
        try:
            with self.engine.begin() as conn:
                # the driver's executemany on plain tuples: SQLAlchemy's per-row compile costs ~30 µs a score
                for batch in _batched(values, 5_000):
                    self._insert_many(conn, scores_table, [*SCORE_ROW_FIELDS, "scored_at"], batch)
                self._mark_scored_days(conn, [(row[0], row[1]) for row in tuples])  # source, post_id
        except SQLAlchemyError as error:
            raise StoreError(f"cannot store scores: {_error_text(error)}") from None

    def _insert_many(self, conn: Connection, table: Table, names: Sequence[str], rows: Sequence[tuple[Any, ...]]) -> int:
        """Rows inserted … ON CONFLICT DO NOTHING, by the driver's executemany; how many were new (both drivers
        count only the rows inserted, summed over an executemany).

        On SQLite _SQLITE_ROWS rows a statement: a step per row from Python cost more than the insert itself.
        """
        if self.dialect != "sqlite":
            return int(conn.exec_driver_sql(self._bulk_insert_sql(table, names), list(rows)).rowcount)
        whole = len(rows) - len(rows) % _SQLITE_ROWS
        flat = chain.from_iterable
        groups = [tuple(flat(rows[at : at + _SQLITE_ROWS])) for at in range(0, whole, _SQLITE_ROWS)]
        new = conn.exec_driver_sql(self._bulk_insert_sql(table, names, _SQLITE_ROWS), groups).rowcount if groups else 0
        if whole < len(rows):
            rest = self._bulk_insert_sql(table, names, len(rows) - whole)
            new += conn.exec_driver_sql(rest, tuple(flat(rows[whole:]))).rowcount
        return int(new)

    def _bulk_insert_sql(self, table: Table, names: Sequence[str], rows: int = 1) -> str:
        """INSERT of `rows` rows a statement … ON CONFLICT DO NOTHING as driver SQL, in the driver's own parameter style."""
        marker = "?" if self.engine.dialect.paramstyle == "qmark" else "%s"
        row = f"({', '.join([marker] * len(names))})"
        return f"INSERT INTO {table.name} ({', '.join(names)}) VALUES {', '.join([row] * rows)} ON CONFLICT DO NOTHING"

    # ---- daemon: last run of a verb, one-process lock ---------------------------------------

    def last_run(self, verb: str) -> RunRecord | None:
        """The most recent run of a verb (e.g. "job:collect"), or None."""
        query = select(runs_table).where(runs_table.c.verb == verb).order_by(runs_table.c.id.desc()).limit(1)
        with self.engine.connect() as conn:
            row = conn.execute(query).mappings().first()
        return RunRecord(**_aware_row(dict(row))) if row is not None else None

    def hold_lock(self, name: str) -> Callable[[], None] | None:
        """Take a lock on this database held until the returned release() or the process's end; None if taken.

        SQLite: an OS lock on a file beside the database (`<file>.<name>.lock`). PostgreSQL: a session
        advisory lock, which also excludes a process on another host; both vanish when a process dies.
        """
        if self.dialect == "postgresql":
            return self._hold_advisory_lock(name)
        database = self.engine.url.database
        if not database or database == ":memory:":
            return lambda: None
        return _hold_file_lock(Path(f"{database}.{name}.lock"))

    def _hold_advisory_lock(self, name: str) -> Callable[[], None] | None:
        key = int.from_bytes(hashlib.sha256(f"backlash:{name}".encode()).digest()[:8], "big", signed=True)
        conn = self.engine.connect()
        taken = bool(conn.execute(select(func.pg_try_advisory_lock(key))).scalar())
        conn.commit()  # a session lock outlives the transaction; an idle-in-transaction session would be killed
        if not taken:
            conn.close()
            return None

        def release() -> None:
            conn.execute(select(func.pg_advisory_unlock(key)))
            conn.commit()
            conn.close()

        return release

    # ---- hand checks of the classifier ------------------------------------------------------

    def post_scores(
        self, event_name: str, scorer: str, keys: Sequence[tuple[str, str]]
    ) -> dict[tuple[str, str], dict[str, Any]]:
        """(source, post_id) → the post's status, compound and churn under this scorer, for keys of the event.

        Posts of the event that this scorer has not seen map to status None; keys not in the event are absent.
        """
        found: dict[tuple[str, str], dict[str, Any]] = {}
        join = event_posts_table.outerjoin(
            scores_table,
            and_(
                scores_table.c.source == event_posts_table.c.source,
                scores_table.c.post_id == event_posts_table.c.post_id,
                scores_table.c.scorer == scorer,
            ),
        )
        columns = (event_posts_table.c.source, event_posts_table.c.post_id, *(scores_table.c[n] for n in _CHECKED))
        with self.engine.connect() as conn:
            for chunk in _batched(list(keys), 500):
                query = (
                    select(*columns)
                    .select_from(join)
                    .where(
                        event_posts_table.c.event == event_name,
                        tuple_(event_posts_table.c.source, event_posts_table.c.post_id).in_(list(chunk)),
                    )
                )
                for source, post_id, *values in conn.execute(query):
                    found[(source, post_id)] = dict(zip(_CHECKED, values, strict=True))
        return found

    def add_validation(self, event_name: str, scorer: str, file: str, labelled: int, result: str) -> None:
        """Record one hand check of the classifier (result: its numbers as JSON)."""
        values = {"event": event_name, "scorer": scorer, "file": file, "labelled": labelled, "result": result}
        with self.engine.begin() as conn:
            conn.execute(validations_table.insert().values(**values, validated_at=utc_naive(datetime.now(UTC))))

    def latest_validation(self, event_name: str) -> dict[str, Any] | None:
        """The event's most recent hand check (scorer, file, labelled, result JSON, validated_at), or None."""
        query = (
            select(validations_table)
            .where(validations_table.c.event == event_name)
            .order_by(validations_table.c.id.desc())
            .limit(1)
        )
        with self.engine.connect() as conn:
            row = conn.execute(query).mappings().first()
        return _aware_row(dict(row)) if row is not None else None

    # ---- login sessions of sources (secrets: never printed) ----------------------------------

    def get_session(self, source: str, account: str) -> str | None:
        """The saved login session of a source's account, so a run refreshes it instead of logging in."""
        query = select(sessions_table.c.value).where(
            sessions_table.c.source == source, sessions_table.c.account == account
        )
        with self.engine.connect() as conn:
            return conn.execute(query).scalar()

    def set_session(self, source: str, account: str, value: str | None) -> None:
        """Save (or with None forget) a source's login session."""
        key = and_(sessions_table.c.source == source, sessions_table.c.account == account)
        with self.engine.begin() as conn:
            if value is None:
                conn.execute(sessions_table.delete().where(key))
                return
            values = {"source": source, "account": account, "value": value, "updated_at": utc_naive(datetime.now(UTC))}
            conn.execute(self._upsert(sessions_table, ["source", "account"], values))


def _create_missing_indexes(conn: Connection) -> None:
    """Build the posts' secondary indexes a bulk import dropped, if any.

    Only a missing one is created: on PostgreSQL even CREATE INDEX IF NOT EXISTS locks out writers first.
    """
    from sqlalchemy import inspect

    present = {index["name"] for index in inspect(conn).get_indexes(posts_table.name)}
    for index in posts_table.indexes:
        if index.name not in present:
            conn.execute(CreateIndex(index, if_not_exists=True))  # two processes may both find it missing


def _create_table(conn: Connection, *tables: str) -> None:
    """CREATE TABLE for tables as defined above, unless create_all already made them (it does, before upgrading)."""
    for table in tables:
        metadata.tables[table].create(conn, checkfirst=True)


def _add_column(conn: Connection, table: str, column: str) -> None:
    """ALTER TABLE … ADD COLUMN for a column as the table above defines it, in the connection's dialect."""
    definition = CreateColumn(metadata.tables[table].c[column]).compile(dialect=conn.dialect)
    conn.execute(DDL(f"ALTER TABLE {table} ADD COLUMN {definition}"))


_CHECKED = ("status", "compound", "churn")


def _hold_file_lock(path: Path) -> Callable[[], None] | None:
    """An exclusive flock on path; the OS drops it when the process ends, even on SIGKILL."""
    from filelock import FileLock, Timeout

    lock = FileLock(path, timeout=0)
    try:
        lock.acquire()
    except Timeout:
        return None
    return lock.release


def _write_progress(conn: Connection, progress: RunProgress, new_in_page: int) -> None:
    values = {"posts_read": progress.posts_read, "cost_usd": progress.cost_usd}
    values["posts_new"] = progress.posts_new_before + new_in_page
    conn.execute(runs_table.update().where(runs_table.c.id == progress.run_id).values(**values))


def _aware_row(row: dict[str, Any]) -> dict[str, Any]:
    for key, value in row.items():
        if isinstance(value, datetime):
            row[key] = as_utc(value)
    return row


def _upgrade(conn: Connection, found: int) -> None:
    """Run the MIGRATIONS after version `found` in order, then stamp the database with SCHEMA_VERSION."""
    for version in range(found + 1, SCHEMA_VERSION + 1):
        MIGRATIONS[version](conn)
    stamp = meta_table.update().where(meta_table.c.key == "schema_version").values(value=str(SCHEMA_VERSION))
    conn.execute(stamp)


def open_store(url: str) -> Store:
    """Open (and create or check the schema of) the database at a SQLAlchemy URL."""
    if url.startswith("sqlite:///") and url not in ("sqlite:///", "sqlite:///:memory:"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    url = _with_driver(url)
    _register_password(url)
    try:
        engine = create_engine(url, future=True)
        if engine.dialect.name == "sqlite":
            _bind_plain_values_directly()
            event.listen(engine, "connect", _sqlite_pragmas)
        store = Store(engine)
        store.create_schema()
    except SQLAlchemyError as error:
        raise StoreError(f"cannot open the database: {redact(_error_text(error))}") from None
    return store


def _error_text(error: SQLAlchemyError) -> str:
    """The driver's own message, without SQLAlchemy's statement dump and background link."""
    original = getattr(error, "orig", None)
    return f"{(original or error).__class__.__name__}: {str(original or error).splitlines()[0]}"


def _with_driver(url: str) -> str:
    """postgresql:// means psycopg 3, the driver we install."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def _register_password(url: str) -> None:
    """A password in the database URL is a secret like the others: masked in every message and log line."""
    from sqlalchemy.engine import make_url

    try:
        password = make_url(url).password
    except Exception:  # noqa: BLE001 - a URL we cannot parse has nothing to redact
        return
    if password:
        redact_in_logs(str(password))
