"""`import` (archive files streamed into the store, rejects beside them) and `export` (an event's posts with their scores, as CSV or Parquet)."""

from __future__ import annotations

import csv
import os
import stat
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from monitor.errors import UsageError
from monitor.pipeline.runlog import recorded_run
from monitor.pipeline.workspace import ProgressCallback, Workspace, current_scorer, refuse_overwriting
from monitor.posts import Post, PostRows, post_row
from monitor.sources.archive import EXPORT_COLUMNS, Record, Reject, neutralise_cell

# posts per transaction: a commit writes every index page it touched, and hashed ids touch most of them, so
# fewer, larger commits write less (50,000 → 200,000 saved 30 % CPU at 1,000,000 posts, 25.6 → 17.8 s, for
# 70 MB more at the peak); each costs ≈ 0.5 KB a post held
IMPORT_BATCH = 200_000


REJECTS_SHOWN = 20


@dataclass
class ImportResult:
    """What `import` did with one archive: counts, the first rejects to show, and where all of them went."""

    path: Path
    event: str
    source: str
    read: int = 0
    new: int = 0
    duplicate: int = 0
    added_to_event: int = 0  # posts the event gained (new, or stored before for another event)
    rejected: int = 0
    rejects: list[Reject] = field(default_factory=list)  # the first REJECTS_SHOWN only; all are in rejects_file
    rejects_file: Path | None = None
    fmt: str = "csv"  # as read: "json" when a .json file (or --format jsonl) turned out to be one JSON array
    delimiter: str = ","  # CSV: the one sniffed from the header, or --delimiter


def import_archive(
    ws: Workspace,
    path: Path,
    event_name: str,
    fmt: str | None = None,
    mapping: Mapping[str, str] | None = None,
    source: str | None = None,
    on_bytes: ProgressCallback | None = None,
    delimiter: str | None = None,
    date_format: str | None = None,
) -> ImportResult:
    """Stream an archive into the store in batches; rejected records go to <archive>.rejects.csv as they come.

    A CSV's delimiter is sniffed from its header unless given; JSON that is one array is read as such.
    """
    from monitor.sources import archive

    event = ws.config.event(event_name)
    fmt = fmt or archive.guess_format(path)
    fmt = "json" if fmt == "jsonl" and archive.is_json_array(path) else fmt
    delimiter = delimiter or (archive.sniff_delimiter(path) if fmt == "csv" else ",")
    source = _source_name(source) if source else ("x" if fmt == "twarc" else "archive")
    result = ImportResult(path=path, event=event.name, source=source, fmt=fmt, delimiter=delimiter)
    rejects = _RejectsFile(path)
    with recorded_run(ws.store, "import", event.name, source, tally=lambda: (result.read, result.new, 0.0)) as run:
        try:
            records = archive.read_archive(
                path, fmt, source, mapping or {}, ws.config.tz, on_bytes, delimiter, date_format
            )
            with ws.store.indexes_deferred():
                _store_records(ws, records, result, rejects)
        finally:
            result.rejects_file = rejects.close()
        run.status = "partial" if result.rejected else "ok"
        run.message = f"{result.rejected} rejected"
    return result


def _source_name(name: str) -> str:
    """An --source name under the same rule as event names (it is a database key, shown in status)."""
    from monitor.config import check_name

    try:
        return check_name(name)
    except ValueError as error:
        raise UsageError(f"--source {error}") from None


def _store_records(
    ws: Workspace, records: Iterable[Record], result: ImportResult, rejects: _RejectsFile
) -> None:
    batch: list[tuple[Any, ...]] = []
    for record in records:
        if isinstance(record, PostRows):
            batch += record.rows
            result.read += len(record.rows)
        elif isinstance(record, Post):
            batch.append(post_row(record))
            result.read += 1
        else:
            _note_reject(record, result, rejects)
            continue
        while len(batch) >= IMPORT_BATCH:  # a chunk of rows may go past the batch: the rest starts the next
            _flush(ws, batch[:IMPORT_BATCH], result)
            del batch[:IMPORT_BATCH]
            rejects.flush()
    _flush(ws, batch, result)


def _note_reject(reject: Reject, result: ImportResult, rejects: _RejectsFile) -> None:
    result.rejected += 1
    if len(result.rejects) < REJECTS_SHOWN:
        result.rejects.append(reject)
    rejects.write(reject)


def _flush(ws: Workspace, batch: list[tuple[Any, ...]], result: ImportResult) -> None:
    if batch:
        added = ws.store.add_posts(result.event, PostRows(batch))
        result.new += added.new
        result.duplicate += added.duplicate
        result.added_to_event += added.linked


class _RejectsFile:
    """<archive>.rejects.csv beside the archive (or in the cwd if that is read-only), written as rejects come.

    Each row is the line, the reason and the record as the archive has it (`raw`, neutralised like an
    export's cells: the file is meant to be opened in a spreadsheet and fixed).

    Opened on the first reject, so a clean import leaves no file; flushed with every stored batch,
    so an import killed half-way leaves the rejects of the batches it stored. Never written through a
    symbolic link (it could point at any file the user may write): one there is refused before the import.
    """

    def __init__(self, archive: Path) -> None:
        name = archive.name + ".rejects.csv"
        self._targets = [archive.with_name(name), Path.cwd() / name]
        _refuse_unless_regular(self._targets[0])
        self._handle: TextIO | None = None
        self._writer: Any = None
        self.path: Path | None = None

    def write(self, reject: Reject) -> None:
        if self._handle is None and self._targets:
            self._open()
        if self._writer is not None:
            self._writer.writerow((reject.line, reject.reason, neutralise_cell(reject.raw)))

    def _open(self) -> None:
        while self._targets:
            target = self._targets.pop(0)
            try:
                self._handle = _open_no_follow(target)
            except OSError:  # read-only folder, or a link that appeared since: the next place
                continue
            self._writer = csv.writer(self._handle)
            self._writer.writerow(["line", "reason", "raw"])
            self.path = target
            return

    def flush(self) -> None:
        if self._handle is not None:
            self._handle.flush()

    def close(self) -> Path | None:
        """Close the file; its path, or None when nothing was rejected (or no place could be written)."""
        if self._handle is not None:
            self._handle.close()
            self._handle = None
        return self.path


def _refuse_unless_regular(path: Path) -> None:
    """A usage error when `path` exists as anything but a plain file (a symbolic link, a FIFO, a folder)."""
    try:
        mode = path.lstat().st_mode
    except FileNotFoundError:
        return
    if stat.S_ISLNK(mode):
        raise UsageError(f"{path}: is a symbolic link; rejects are never written through one (remove it)")
    if not stat.S_ISREG(mode):
        raise UsageError(f"{path}: exists and is not a regular file (remove it)")


def _open_no_follow(path: Path) -> TextIO:
    """Open for writing, truncated; fails (OSError) rather than follow a symbolic link or block on a FIFO."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
    # surrogateescape: a row's bytes that were not UTF-8 are written back as the archive has them
    return os.fdopen(os.open(path, flags, 0o666), "w", encoding="utf-8", errors="surrogateescape", newline="")


def export_posts(
    ws: Workspace, event_name: str, out: Path, fmt: str = "csv", on_rows: ProgressCallback | None = None
) -> int:
    """Write an event's posts with their current scores (empty until scored); return the row count."""
    event = ws.config.event(event_name)
    refuse_overwriting(ws, out, "--out")
    rows = (_export_row(row) for chunk in ws.store.iter_event_posts(event.name, current_scorer(ws)) for row in chunk)
    if fmt == "csv":
        return _export_csv(rows, out, on_rows)
    if fmt == "parquet":
        return export_parquet(ws, event.name, out, on_rows)
    raise UsageError(f"--format {fmt!r}: expected csv or parquet")


def _export_row(row: dict[str, Any]) -> dict[str, Any]:
    exported = {name: row.get(name) for name in EXPORT_COLUMNS}
    exported["id"] = row["post_id"]
    exported["created_at"] = row["created_at"].isoformat().replace("+00:00", "Z")
    if row.get("status") not in (None, "scored"):
        for name in ("neg", "neu", "pos", "compound", "churn"):
            exported[name] = None
    return exported


def _export_csv(rows: Iterable[dict[str, Any]], out: Path, on_rows: ProgressCallback | None) -> int:
    from monitor.files import replacing

    count = 0
    with replacing(out) as temporary, temporary.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=EXPORT_COLUMNS)
        writer.writeheader()
        for row in rows:
            writer.writerow(
                {name: neutralise_cell(value) if isinstance(value, str) else value for name, value in row.items()}
            )
            count += 1
            if on_rows is not None and count % 1000 == 0:
                on_rows(1000)
    return count


def export_series(ws: Workspace, event_name: str, out: Path) -> int:
    """Write the per-bin series behind an event's charts as CSV (the same as summary.json's `series`); rows written."""
    from monitor.analysis import SERIES_FIELDS, series_rows
    from monitor.files import replacing
    from monitor.pipeline.report import analyze_event

    refuse_overwriting(ws, out, "--out")
    rows = series_rows(analyze_event(ws, ws.config.event(event_name).name))
    with replacing(out) as temporary, temporary.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=SERIES_FIELDS)
        writer.writeheader()
        writer.writerows({**row, "bin": row["bin"].isoformat()} for row in rows)
    return len(rows)


def export_parquet(ws: Workspace, event_name: str, out: Path, on_rows: ProgressCallback | None = None) -> int:
    """Write an event's posts with their current scores as a Parquet dataset: out/event=<E>/day=<YYYY-MM-DD>/."""
    from monitor import parquet

    rows = (_parquet_row(row) for chunk in ws.store.iter_event_posts(event_name, current_scorer(ws)) for row in chunk)
    return parquet.write_event_dataset(rows, out, event_name, on_rows)


def _parquet_row(row: dict[str, Any]) -> dict[str, Any]:
    """A stored post with its scores → parquet.POST_FIELDS (times stay datetimes)."""
    exported = _export_row(row)
    exported["created_at"] = row["created_at"]
    exported["is_repost"] = bool(row.get("is_repost"))
    exported["is_quote"] = bool(row.get("is_quote"))
    exported["aspects"] = row.get("aspects") if row.get("status") == "scored" else None
    exported["status"] = row.get("status")
    exported["scored_lang"] = row.get("scored_lang")
    return exported
