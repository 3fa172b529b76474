"""The verbs (collect, import, score, report, digest, status, export) that the CLI and the daemon call.

Each verb composes the modules below it and returns a result object; it never prints.
Long work reports progress through an optional callback so the CLI can draw a bar.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from monitor.config import Config, load_config
from monitor.errors import UsageError
from monitor.posts import Post
from monitor.sources.archive import Reject
from monitor.store import RunRecord, Store, open_store

ProgressCallback = Callable[[int], None]  # called with the number of items just finished


@dataclass
class Workspace:
    """The loaded config and the open store: what every verb works on."""

    config: Config
    store: Store

    def close(self) -> None:
        self.store.close()


def open_workspace(config_path: str | Path | None = None, config: Config | None = None) -> Workspace:
    """Load the config (unless given) and open its database."""
    config = config or load_config(config_path)
    return Workspace(config=config, store=open_store(config.database_url()))


# ---- import -------------------------------------------------------------------------------

IMPORT_BATCH = 5_000
REJECTS_SHOWN = 20


@dataclass
class ImportResult:
    """What `import` did with one archive."""

    path: Path
    event: str
    source: str
    read: int = 0
    new: int = 0
    duplicate: int = 0
    rejects: list[Reject] = field(default_factory=list)
    rejects_file: Path | None = None

    @property
    def rejected(self) -> int:
        return len(self.rejects)


def import_archive(
    ws: Workspace,
    path: Path,
    event_name: str,
    fmt: str | None = None,
    mapping: Mapping[str, str] | None = None,
    source: str | None = None,
    on_bytes: ProgressCallback | None = None,
) -> ImportResult:
    """Stream an archive into the store in batches; rejected records are kept with their line numbers."""
    from monitor.sources import archive

    event = ws.config.event(event_name)
    fmt = fmt or archive.guess_format(path)
    source = source or ("x" if fmt == "twarc" else "archive")
    result = ImportResult(path=path, event=event.name, source=source)
    run_id = ws.store.start_run("import", event.name, source)
    records = archive.read_archive(path, fmt, source, mapping or {}, ws.config.tz, on_bytes)
    try:
        _store_records(ws, records, result)
    except BaseException as error:
        ws.store.finish_run(run_id, "failed", result.read, result.new, message=str(error)[:500])
        raise
    result.rejects_file = _write_rejects(path, result.rejects)
    status = "partial" if result.rejects else "ok"
    ws.store.finish_run(run_id, status, result.read, result.new, message=f"{result.rejected} rejected")
    return result


def _store_records(ws: Workspace, records: Iterable[Post | Reject], result: ImportResult) -> None:
    batch: list[Post] = []
    for record in records:
        if isinstance(record, Reject):
            result.rejects.append(record)
            continue
        result.read += 1
        batch.append(record)
        if len(batch) >= IMPORT_BATCH:
            _flush(ws, batch, result)
    _flush(ws, batch, result)


def _flush(ws: Workspace, batch: list[Post], result: ImportResult) -> None:
    if batch:
        added = ws.store.add_posts(result.event, batch)
        result.new += added.new
        result.duplicate += added.duplicate
        batch.clear()


def _write_rejects(path: Path, rejects: list[Reject]) -> Path | None:
    """All rejected lines to <archive>.rejects.csv beside the archive (or in the cwd if that is read-only)."""
    if not rejects:
        return None
    for target in (path.with_name(path.name + ".rejects.csv"), Path.cwd() / (path.name + ".rejects.csv")):
        try:
            with target.open("w", encoding="utf-8", newline="") as handle:
                writer = csv.writer(handle)
                writer.writerow(["line", "reason"])
                writer.writerows((reject.line, reject.reason) for reject in rejects)
            return target
        except OSError:
            continue
    return None


# ---- export -------------------------------------------------------------------------------

EXPORT_COLUMNS = [
    "source", "id", "created_at", "author", "text", "lang", "likes", "reposts", "replies", "followers",
    "url", "is_repost", "neg", "neu", "pos", "compound", "churn",
]  # fmt: skip


def export_posts(
    ws: Workspace, event_name: str, out: Path, fmt: str = "csv", on_rows: ProgressCallback | None = None
) -> int:
    """Write an event's posts with their current scores (empty until scored); return the row count."""
    event = ws.config.event(event_name)
    rows = (_export_row(row) for chunk in ws.store.iter_event_posts(event.name, current_scorer(ws)) for row in chunk)
    if fmt == "csv":
        return _export_csv(rows, out, on_rows)
    raise UsageError(f"--format {fmt!r}: expected csv or parquet")


def current_scorer(ws: Workspace) -> str | None:
    """The scorer version key of the current config, once scoring exists."""
    return None


def _export_row(row: dict[str, Any]) -> dict[str, Any]:
    exported = {name: row.get(name) for name in EXPORT_COLUMNS}
    exported["id"] = row["post_id"]
    exported["created_at"] = row["created_at"].isoformat().replace("+00:00", "Z")
    if row.get("status") not in (None, "scored"):
        for name in ("neg", "neu", "pos", "compound", "churn"):
            exported[name] = None
    return exported


def _export_csv(rows: Iterable[dict[str, Any]], out: Path, on_rows: ProgressCallback | None) -> int:
    out.parent.mkdir(parents=True, exist_ok=True)
    count = 0
    temporary = out.with_name(out.name + ".part")
    with temporary.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=EXPORT_COLUMNS)
        writer.writeheader()
        for row in rows:
            writer.writerow(row)
            count += 1
            if on_rows is not None and count % 1000 == 0:
                on_rows(1000)
    os.replace(temporary, out)
    return count


# ---- status -------------------------------------------------------------------------------


@dataclass
class EventStatus:
    """Counts for one event."""

    name: str
    posts_by_source: dict[str, int]
    scored: dict[str, int]  # status → count, plus "unscored"


@dataclass
class StatusReport:
    """What `status` shows."""

    database: str
    events: list[EventStatus]
    cursors: list[dict[str, Any]]
    runs: list[RunRecord]


def status(ws: Workspace) -> StatusReport:
    """Posts and scores per event and source, stored cursors and the last runs."""
    by_event: dict[str, dict[str, int]] = {event.name: {} for event in ws.config.events}
    for event_name, source, posts in ws.store.post_counts_by_source():
        by_event.setdefault(event_name, {})[source] = posts
    scorer = current_scorer(ws)
    events = [
        EventStatus(name, sources, ws.store.scored_counts(name, scorer) if scorer else {})
        for name, sources in by_event.items()
    ]
    return StatusReport(
        database=_safe_url(ws.config.database_url()),
        events=events,
        cursors=ws.store.cursors(),
        runs=ws.store.recent_runs(10),
    )


def _safe_url(url: str) -> str:
    """A database URL without its password, fit for printing."""
    if "@" not in url or "://" not in url:
        return url
    scheme, rest = url.split("://", 1)
    credentials, host = rest.rsplit("@", 1)
    user = credentials.split(":", 1)[0]
    return f"{scheme}://{user}:***@{host}" if ":" in credentials else url
