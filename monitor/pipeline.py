"""The verbs (collect, import, score, report, digest, status, export) that the CLI and the daemon call.

Each verb composes the modules below it and returns a result object; it never prints.
Long work reports progress through an optional callback so the CLI can draw a bar.
"""

from __future__ import annotations

import csv
import logging
import os
import stat
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from monitor.config import Config, EventConfig, load_config
from monitor.errors import DeliveryError, MonitorError, NotConfiguredError, UsageCapError, UsageError
from monitor.posts import CheckedPost, Post
from monitor.sources.archive import EXPORT_COLUMNS, Record, Reject, neutralise_cell
from monitor.sources.base import Page, Source
from monitor.store import CursorUpdate, RunProgress, RunRecord, Store, open_store

if TYPE_CHECKING:
    from email.message import EmailMessage

    from monitor.analysis import Analysis
    from monitor.digest import Period, Spend
    from monitor.report import ReportResult

log = logging.getLogger(__name__)

ProgressCallback = Callable[[int], None]  # called with the number of items just finished


@dataclass
class Workspace:
    """The loaded config and the open store: what every verb works on."""

    config: Config
    store: Store
    config_file: Path | None = None  # the file the config was read from, when it was

    def close(self) -> None:
        self.store.close()


def open_workspace(config_path: str | Path | None = None, config: Config | None = None) -> Workspace:
    """Load the config (unless given), register its secrets for redaction, and open its database."""
    from monitor.config import config_path as find_config
    from monitor.sources.redaction import redact_environment

    config_file = None if config is not None else find_config(config_path).resolve()
    config = config or load_config(config_path)
    redact_environment(config.secret_variables(), os.environ)
    return Workspace(config=config, store=open_store(config.database_url()), config_file=config_file)


# ---- import -------------------------------------------------------------------------------

IMPORT_BATCH = 20_000  # posts per transaction: SQLite rewrites the index pages a commit touched
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
    rejected: int = 0
    rejects: list[Reject] = field(default_factory=list)  # the first REJECTS_SHOWN only; all are in rejects_file
    rejects_file: Path | None = None


def import_archive(
    ws: Workspace,
    path: Path,
    event_name: str,
    fmt: str | None = None,
    mapping: Mapping[str, str] | None = None,
    source: str | None = None,
    on_bytes: ProgressCallback | None = None,
) -> ImportResult:
    """Stream an archive into the store in batches; rejected records go to <archive>.rejects.csv as they come."""
    from monitor.sources import archive

    event = ws.config.event(event_name)
    fmt = fmt or archive.guess_format(path)
    source = _source_name(source) if source else ("x" if fmt == "twarc" else "archive")
    result = ImportResult(path=path, event=event.name, source=source)
    rejects = _RejectsFile(path)
    run_id = ws.store.start_run("import", event.name, source)
    records = archive.read_archive(path, fmt, source, mapping or {}, ws.config.tz, on_bytes)
    try:
        _store_records(ws, records, result, rejects)
    except BaseException as error:
        ws.store.finish_run(run_id, "failed", result.read, result.new, message=str(error)[:500])
        raise
    finally:
        result.rejects_file = rejects.close()
    status = "partial" if result.rejected else "ok"
    ws.store.finish_run(run_id, status, result.read, result.new, message=f"{result.rejected} rejected")
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
    batch: list[Post | CheckedPost] = []
    for record in records:
        if isinstance(record, Reject):
            _note_reject(record, result, rejects)
            continue
        result.read += 1
        batch.append(record)
        if len(batch) >= IMPORT_BATCH:
            _flush(ws, batch, result)
            rejects.flush()
    _flush(ws, batch, result)


def _note_reject(reject: Reject, result: ImportResult, rejects: _RejectsFile) -> None:
    result.rejected += 1
    if len(result.rejects) < REJECTS_SHOWN:
        result.rejects.append(reject)
    rejects.write(reject)


def _flush(ws: Workspace, batch: list[Post | CheckedPost], result: ImportResult) -> None:
    if batch:
        added = ws.store.add_posts(result.event, batch)
        result.new += added.new
        result.duplicate += added.duplicate
        batch.clear()


class _RejectsFile:
    """<archive>.rejects.csv beside the archive (or in the cwd if that is read-only), written as rejects come.

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
            self._writer.writerow((reject.line, reject.reason))

    def _open(self) -> None:
        while self._targets:
            target = self._targets.pop(0)
            try:
                self._handle = _open_no_follow(target)
            except OSError:  # read-only folder, or a link that appeared since: the next place
                continue
            self._writer = csv.writer(self._handle)
            self._writer.writerow(["line", "reason"])
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
    return os.fdopen(os.open(path, flags, 0o666), "w", encoding="utf-8", newline="")


# ---- export -------------------------------------------------------------------------------


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


def refuse_overwriting(ws: Workspace, path: Path, option: str) -> None:
    """A usage error when an output path is the database (or its -wal/-shm) or the config file."""
    protected = [(file, "the database") for file in ws.store.database_files()]
    if ws.config_file is not None:
        protected.append((ws.config_file, "the config file"))
    for file, what in protected:
        if _same_file(path, file):
            raise UsageError(f"{option} {path}: that is {what} ({file}); write to another file")


def _same_file(path: Path, other: Path) -> bool:
    if path.resolve() == other.resolve():
        return True
    try:
        return os.path.samefile(path, other)  # a hard link, or another name through a symlinked folder
    except OSError:
        return False  # one of them does not exist


def current_scorer(ws: Workspace) -> str | None:
    """The scorer version key of the current config."""
    return str(scorer_spec(ws).key())


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
    x_spend: tuple[int, float, int] | None = None  # posts read this month, estimated USD, monthly budget


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
        x_spend=_x_spend(ws),
    )


def _x_spend(ws: Workspace) -> tuple[int, float, int] | None:
    """This month's X reads and cost against the budget, when an event collects from X."""
    if not any("x" in event.sources for event in ws.config.events):
        return None
    posts, usd = spend_this_month(ws, "x")
    return posts, usd, ws.config.sources.x.monthly_post_budget


def _safe_url(url: str) -> str:
    """A database URL without its password, fit for printing."""
    if "@" not in url or "://" not in url:
        return url
    scheme, rest = url.split("://", 1)
    credentials, host = rest.rsplit("@", 1)
    user = credentials.split(":", 1)[0]
    return f"{scheme}://{user}:***@{host}" if ":" in credentials else url


# ---- collect ------------------------------------------------------------------------------


@dataclass
class SourceOutcome:
    """What one source did for one event in a collect run."""

    event: str
    source: str
    status: str  # "ok", "failed" or "skipped"
    kind: str = "posts"  # "posts" (search) or "counts" (volume only)
    read: int = 0  # posts read from the API (what is billed)
    new: int = 0  # posts not stored before
    malformed: int = 0  # items the source logged and left out
    counted: int = 0  # posts counted by a counts endpoint
    hours: int = 0  # hourly buckets stored by a counts endpoint
    cost_usd: float = 0.0  # estimated price of this run
    message: str = ""  # why it failed or was skipped, or how it stopped
    run_id: int | None = None  # its row in the run log, kept current page by page
    usage_capped: bool = False  # the platform answered with its usage cap: the run asks it nothing more


@dataclass
class CollectResult:
    """One outcome per event and source, in the order they ran."""

    outcomes: list[SourceOutcome] = field(default_factory=list)

    @property
    def failed(self) -> bool:
        return any(outcome.status == "failed" for outcome in self.outcomes)


def collect(
    ws: Workspace,
    event_name: str | None = None,
    source_name: str | None = None,
    counts: bool = False,
    stop: threading.Event | None = None,
) -> CollectResult:
    """Pull new posts (or hourly counts) for each event from each of its live sources.

    Each page is stored with its cursor in one transaction. A source that fails or is not configured
    is reported in its outcome and the others still run; a set `stop` ends the run after the current page.
    """
    plan = _collect_plan(ws.config.selected_events(event_name), source_name)
    result = CollectResult()
    opened: dict[str, Source | MonitorError] = {}
    try:
        for event, name in plan:
            if stop is not None and stop.is_set():
                break
            if name not in opened:
                opened[name] = _open_source(ws.config, name)
            outcome = _collect_one(ws, event, opened[name], name, counts, stop)
            result.outcomes.append(outcome)
            if outcome.usage_capped:
                opened[name] = _retire_capped(opened[name], name)
    finally:
        for source in opened.values():
            if isinstance(source, Source):
                source.close()
    return result


def _collect_plan(events: list[EventConfig], source_name: str | None) -> list[tuple[EventConfig, str]]:
    plan = [(event, name) for event in events for name in event.sources if source_name in (None, name)]
    if source_name is not None and not plan:
        used = sorted({name for event in events for name in event.sources}) or ["none"]
        raise UsageError(f"--source {source_name!r}: no selected event collects from it (sources: {', '.join(used)})")
    return plan


def _open_source(config: Config, name: str) -> Source | MonitorError:
    """The source built from its config, or the reason it is switched off (logged once, loudly)."""
    from monitor.sources import SOURCE_CLASSES, source_class

    try:
        if name not in SOURCE_CLASSES:
            raise NotConfiguredError(f"{name} source skipped: this version has no collector for it")
        return source_class(name).from_config(config)
    except NotConfiguredError as error:
        log.warning("%s", error)
        return error
    except ImportError as error:
        log.warning("%s source skipped: cannot load its module (%s)", name, error)
        return NotConfiguredError(f"{name} source skipped: cannot load its module ({error})")


def _collect_one(
    ws: Workspace,
    event: EventConfig,
    source: Source | MonitorError,
    name: str,
    counts: bool,
    stop: threading.Event | None,
) -> SourceOutcome:
    outcome = SourceOutcome(event.name, name, "ok", kind="counts" if counts else "posts")
    if isinstance(source, MonitorError):
        outcome.status, outcome.message = "skipped", str(source)
        return outcome
    source.stop = stop
    source.sessions = ws.store
    if not counts and not _apply_budget(ws, source, outcome):
        return outcome
    run_id = ws.store.start_run("counts" if counts else "collect", event.name, name)
    outcome.run_id = run_id
    try:
        (_store_counts if counts else _store_pages)(ws, event, source, outcome)
    except NotConfiguredError as error:
        outcome.status, outcome.message = "skipped", str(error)
    except MonitorError as error:
        outcome.status, outcome.message = "failed", f"{error}; the cursor stays at the last stored page"
        outcome.usage_capped = isinstance(error, UsageCapError)
        log.error("collect %s from %s failed: %s", event.name, name, error)
    except BaseException as error:
        ws.store.finish_run(run_id, "failed", outcome.read, outcome.new, outcome.cost_usd, _run_message(error))
        raise
    ws.store.finish_run(run_id, outcome.status, outcome.read, outcome.new, outcome.cost_usd, outcome.message or None)
    return outcome


def _retire_capped(source: Source | MonitorError, name: str) -> MonitorError:
    """Close a source whose usage cap is reached; its remaining outcomes this run are skipped with this reason."""
    if isinstance(source, Source):
        source.close()
    return UsageCapError(
        f"{name} source skipped: its usage cap was reached earlier in this run; the next run tries again"
    )


def _run_message(error: BaseException) -> str:
    return f"{error.__class__.__name__}: {error}"[:500]


def _apply_budget(ws: Workspace, source: Source, outcome: SourceOutcome) -> bool:
    """Set the source's read limit from the per-run and monthly budgets; False when the month's is spent."""
    if source.name != "x":
        return True
    settings = ws.config.sources.x
    read_this_month, _ = spend_this_month(ws, source.name)
    remaining = settings.monthly_post_budget - read_this_month
    if remaining <= 0:
        outcome.status = "skipped"
        outcome.message = f"monthly budget of {settings.monthly_post_budget} posts spent ({read_this_month} read)"
        log.warning("x source skipped: %s", outcome.message)
        return False
    source.read_limit = min(settings.max_posts_per_run, remaining)
    return True


def _store_pages(ws: Workspace, event: EventConfig, source: Source, outcome: SourceOutcome) -> None:
    cursor = _stored_cursor(ws, event.name, source.name)
    for page in source.search(event, cursor):
        updates = [CursorUpdate(event.name, source.name, kind, value) for kind, value in page.cursor.items()]
        feed_read = (source.name, page.feed, page.read) if page.feed is not None else None
        added = ws.store.add_posts(
            event.name, page.posts, cursors=updates, progress=_progress(outcome, page), feed_read=feed_read
        )
        outcome.read += page.read
        outcome.new += added.new
        outcome.malformed += page.skipped
        outcome.cost_usd += page.cost_usd
        if source.read_limit is not None and outcome.read >= source.read_limit:
            outcome.message = f"stopped at the read limit of {source.read_limit} posts; the next run resumes"
            break
    if source.stop is not None and source.stop.is_set():
        outcome.message = "stopped on request; the next run resumes"
    if outcome.malformed:
        outcome.message = "; ".join(filter(None, [outcome.message, f"{outcome.malformed} malformed posts skipped"]))


def _progress(outcome: SourceOutcome, page: Page) -> RunProgress | None:
    """The run's totals including this page, stored with it: a killed run still shows what it read and cost."""
    if outcome.run_id is None:
        return None
    return RunProgress(outcome.run_id, outcome.read + page.read, outcome.new, outcome.cost_usd + page.cost_usd)


def _store_counts(ws: Workspace, event: EventConfig, source: Source, outcome: SourceOutcome) -> None:
    cursor = _stored_cursor(ws, event.name, source.name)
    for page in source.counts(event, cursor):
        updates = [CursorUpdate(event.name, source.name, kind, value) for kind, value in page.cursor.items()]
        ws.store.add_counts(event.name, source.name, page.buckets, cursors=updates)
        outcome.hours += len(page.buckets)
        outcome.counted += sum(count for _start, count in page.buckets)
        outcome.cost_usd += page.cost_usd


def _stored_cursor(ws: Workspace, event_name: str, source_name: str) -> dict[str, str]:
    return {
        row["kind"]: row["value"]
        for row in ws.store.cursors()
        if row["event"] == event_name and row["source"] == source_name
    }


def spend_this_month(ws: Workspace, source_name: str = "x") -> tuple[int, float]:
    """Posts read and estimated cost of a source's runs since the 1st of this month (config's time zone)."""
    now = datetime.now(ws.config.tz)
    month_start = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    return ws.store.spend_since(month_start, source_name)


# ---- score --------------------------------------------------------------------------------


@dataclass
class ScoreResult:
    """What `score` did."""

    scorer: str  # the scorer version key stored with each score
    scored: int = 0
    skipped: dict[str, int] = field(default_factory=dict)  # "skipped:language", "skipped:bot" → posts
    reused: int = 0  # posts whose identical text was scored once for several posts
    total: int = 0  # posts this run looked at (scored + skipped)
    workers: int = 1


def scorer_spec(ws: Workspace) -> Any:
    """The ScorerSpec the workspace's config describes."""
    from monitor.scoring import spec_from_config

    return spec_from_config(ws.config)


def score(ws: Workspace, workers: int | None = None, on_progress: ProgressCallback | None = None) -> ScoreResult:
    """Score every post the current scorer has not scored yet, chunk by chunk; return the counts.

    workers: processes (None = config.scoring.workers; 0 = all cores). Reading the next chunk and
    writing the last one overlap with the workers' scoring of the current one.
    """
    from monitor.scoring import BatchScorer

    count = workers if workers is not None else ws.config.scoring.workers
    count = count or os.cpu_count() or 1
    batch = BatchScorer(scorer_spec(ws), workers=count)
    result = ScoreResult(scorer=batch.key, workers=count)
    run_id = ws.store.start_run("score")
    try:
        _score_chunks(ws, batch, result, on_progress)
    except BaseException as error:
        ws.store.finish_run(run_id, "failed", result.total, result.scored, message=str(error)[:500])
        raise
    finally:
        batch.close()
    ws.store.finish_run(run_id, "ok", result.total, result.scored, message=f"scorer {batch.key}")
    return result


def _score_chunks(ws: Workspace, batch: Any, result: ScoreResult, on_progress: ProgressCallback | None) -> None:
    pending = None
    for chunk in ws.store.iter_unscored(batch.key, ws.config.scoring.chunk_size):
        # the next chunk goes to the workers before the last one is written, so they never wait for the database
        submitted = batch.submit(chunk)
        if pending is not None:
            _write_chunk(ws, batch.collect(pending), result, on_progress)
        pending = submitted
    if pending is not None:
        _write_chunk(ws, batch.collect(pending), result, on_progress)


def _write_chunk(ws: Workspace, chunk: Any, result: ScoreResult, on_progress: ProgressCallback | None) -> None:
    ws.store.add_scores(chunk.rows)
    result.scored += chunk.scored
    result.reused += chunk.reused
    result.total += len(chunk.rows)
    for reason, posts in chunk.skipped.items():
        result.skipped[reason] = result.skipped.get(reason, 0) + posts
    if on_progress is not None:
        on_progress(len(chunk.rows))


def count_unscored(ws: Workspace) -> int:
    """Posts the current scorer has not seen yet (the progress bar's total)."""
    return ws.store.count_unscored(scorer_spec(ws).key())


# ---- analysis -----------------------------------------------------------------------------

def analyze_event(ws: Workspace, event_name: str) -> Any:
    """Stream an event's posts with the current scores, chunk by chunk, into its Analysis (monitor.analysis.Analysis).

    Only per-bin and per-window sums, term counts and the top posts stay in memory, never all the texts.
    """
    event = ws.config.event(event_name)
    accumulator = analysis_accumulator(ws, event)
    for frame in ws.store.iter_analysis_frames(event.name, scorer_spec(ws).key(), chunk_size=ANALYSIS_CHUNK):
        accumulator.add(frame)
    return finish_analysis(ws, event.name, accumulator)


def finish_analysis(ws: Workspace, event_name: str, accumulator: Any) -> Any:
    """The Analysis of a fed accumulator, with the event's stored hourly counts and the feeds read."""
    import pandas as pd

    counts = pd.DataFrame(ws.store.counts(event_name), columns=["source", "bucket_start", "count"])
    return accumulator.finish(counts, generated_at=datetime.now(UTC), feeds_read=ws.store.feeds_read(event_name))


ANALYSIS_CHUNK = 50_000  # posts in memory at once while analysing (about 60 MB with their texts)


def analysis_accumulator(ws: Workspace, event: EventConfig) -> Any:
    """An empty AnalysisAccumulator for one event with the workspace's settings."""
    from monitor.analysis import AnalysisAccumulator

    return AnalysisAccumulator(
        event=event, milestones=ws.config.milestones_utc(event), tz=ws.config.timezone, alerts=ws.config.alerts
    )


# ---- report and demo ----------------------------------------------------------------------


def report(
    ws: Workspace, event_name: str | None = None, analyse: Callable[[Workspace, str], Any] | None = None
) -> list[ReportResult]:
    """Write dashboards/<event>/ for one event (or every configured event); return what was written.

    compare.png overlays every configured event with posts in the store, so each is analysed once.
    analyse: how an event is analysed (default analyze_event; report_dask passes the Dask one).
    """
    from monitor.report import write_report

    selected = [event.name for event in ws.config.selected_events(event_name)]
    stored = set(ws.store.event_names())
    analyses = {name: (analyse or analyze_event)(ws, name) for name in _events_to_analyse(ws, selected, stored)}
    comparable = [analysis for name, analysis in analyses.items() if name in stored]
    results = []
    for name in selected:
        run_id = ws.store.start_run("report", name)
        written = write_report(analyses[name], comparable, ws.config.out_dir())
        ws.store.finish_run(run_id, "ok", analyses[name].coverage.posts, message=str(written.folder))
        results.append(written)
    return results


def _events_to_analyse(ws: Workspace, selected: list[str], stored: set[str]) -> list[str]:
    """The selected events, then the other configured events that have posts (for the comparison)."""
    others = [event.name for event in ws.config.events if event.name in stored and event.name not in selected]
    return selected + others


DEMO_EVENT = "instagram-tos-2012"


@dataclass
class DemoResult:
    """What `demo` wrote, for the CLI to list."""

    config_path: Path  # a config for running further commands on the demo database
    database: Path
    posts: int
    scored: ScoreResult
    reports: list[ReportResult]
    seconds: float
    digests: list[DigestResult] = field(default_factory=list)  # dry runs: .eml files, never sent

    @property
    def files(self) -> list[Path]:
        emails = [result.path for result in self.digests if result.path is not None]
        return [self.config_path, self.database, *(path for result in self.reports for path in result.files), *emails]


def demo_config(base_dir: Path) -> Config:
    """The demo's own settings: a database under base_dir/data, reports under base_dir/dashboards."""
    from monitor.config import parse_config

    data = {
        "database": f"sqlite:///{(base_dir / 'data' / 'demo.db').resolve()}",
        "timezone": "UTC",
        "events": [
            {
                "name": DEMO_EVENT,
                "platform": "Instagram",
                "title": "Instagram terms of service change (simulated)",
                "milestones": {"announced": "2012-12-17", "reversed": "2012-12-20", "effective": "2013-01-16"},
                "baseline_days": 7,
                "sources": ["simulated"],
                "simulated": True,
                "aspects": {
                    "ads": ["ad", "ads", "advertis*", "sponsor*"],
                    "photos": ["photo*", "pics", "picture*", "sell*", "image*"],
                    "privacy": ["privacy", "data", "rights"],
                },
            }
        ],
        "scoring": {"languages": ["en"], "lexicon": {"boycott": -2.5, "ripoff": -2.0}},
        "reports": {"out_dir": str((base_dir / "dashboards").resolve())},
        "email": {"recipients": ["team@example.org"], "sender": "monitor@example.org"},
    }
    return parse_config(data, base_dir.resolve())


def demo(base_dir: Path, seed: int | None = None, posts: int | None = None) -> DemoResult:
    """The whole pipeline on a simulated backlash, in its own database under base_dir.

    Imports the simulation, scores, reports and writes the digest as a .eml file (a dry run: nothing is sent).

    The demo database is rebuilt on every run, so the demo always shows the same simulation for a seed.
    """
    import time

    from monitor.sources import simulated

    started = time.monotonic()
    config = demo_config(base_dir)
    database = Path(config.database.removeprefix("sqlite:///"))
    _remove_database(database)
    ws = open_workspace(config=config)
    try:
        source = simulated.SimulatedSource(config, seed or simulated.DEFAULT_SEED, posts or simulated.DEFAULT_POSTS)
        outcome = SourceOutcome(DEMO_EVENT, source.name, "ok")
        _store_pages(ws, config.event(DEMO_EVENT), source, outcome)
        scored = score(ws, workers=1)
        reports = report(ws)
        emails = digest(ws, dry_run=True)
    finally:
        ws.close()
    config_path = _write_demo_config(config, database.parent / "demo-config.yaml")
    seconds = time.monotonic() - started
    return DemoResult(config_path, database, outcome.new, scored, reports, seconds, emails)


def _remove_database(database: Path) -> None:
    for path in (database, database.with_name(database.name + "-wal"), database.with_name(database.name + "-shm")):
        path.unlink(missing_ok=True)


def _write_demo_config(config: Config, path: Path) -> Path:
    """Save the demo's settings so `backlash --config data/demo-config.yaml status` etc. work on its database."""
    import yaml

    document = config.model_dump(mode="json", exclude_defaults=True)
    path.write_text(
        "# Written by `backlash demo`: the simulated backlash.\n" + yaml.safe_dump(document, sort_keys=False)
    )
    return path


# ---- digest and alerts ----------------------------------------------------------------------


@dataclass
class DigestResult:
    """What `digest` did for one event."""

    event: str
    status: str  # "sent", "written" (dry run), "skipped", "off" (no recipients) or "failed"
    detail: str  # one line for the user
    period: str | None = None
    path: Path | None = None  # the .eml of a dry run
    message_id: str | None = None
    refused: list[str] = field(default_factory=list)  # recipients the server refused (the others got it)


@dataclass
class AlertResult:
    """What `check_alerts` did for one event."""

    event: str
    status: str  # "sent", "written" (dry run), "held" (cool-down), "none", "off" or "failed"
    detail: str
    spikes: list[str] = field(default_factory=list)  # keys of the spikes this result is about
    path: Path | None = None
    message_id: str | None = None


def digest(
    ws: Workspace, event_name: str | None = None, dry_run: bool = False, force: bool = False
) -> list[DigestResult]:
    """Email (or, dry run, write as .eml) the digest of the latest whole period, once per period per event."""
    results = []
    for event in ws.config.selected_events(event_name):
        if not ws.config.email.recipients and not dry_run:
            results.append(DigestResult(event.name, "off", _EMAIL_OFF))
            _log.info("digest of %s: %s", event.name, _EMAIL_OFF)
            continue
        results.extend(send_due_digests(ws, analyze_event(ws, event.name), dry_run=dry_run, force=force))
    return results


_EMAIL_OFF = "switched off: email.recipients is empty in the config"
_log = logging.getLogger(__name__)
CATCH_UP_PERIODS = 7  # the most digests one run sends: the latest period and unsent ones just before it


def send_due_digests(
    ws: Workspace, analysis: Analysis, dry_run: bool = False, force: bool = False, now: datetime | None = None
) -> list[DigestResult]:
    """Digest the latest period and, oldest first, the unsent periods since the last digest that went out.

    A period whose send failed (server down on the day) is therefore sent by the next run, even when
    that run falls in a later period. A first digest ever, a dry run or --force covers the latest only.
    """
    now = now or datetime.now(UTC)
    latest = _latest_period(ws, analysis, now)
    if latest is None:
        return [DigestResult(analysis.event, "skipped", "no posts yet")]
    periods = [latest] if dry_run or force else _unsent_periods(ws, analysis, latest)
    results: list[DigestResult] = []
    for period in periods:
        results.append(send_digest(ws, analysis, dry_run, force, now, period))
        if results[-1].status == "failed":
            break  # the server is down: the rest waits for the next run, in order
    return results


def _latest_period(ws: Workspace, analysis: Analysis, now: datetime) -> Period | None:
    """The last whole period the event's data covers, or None before its first post."""
    from monitor import digest as mail

    as_of = mail.data_as_of(analysis, now)
    return None if as_of is None else mail.latest_period(as_of, ws.config.email.period, ws.config.tz)


def _unsent_periods(ws: Workspace, analysis: Analysis, latest: Period) -> list[Period]:
    """The latest period, preceded by the unsent ones back to the last period sent (at most CATCH_UP_PERIODS)."""
    due = [latest]
    if ws.store.last_sent(analysis.event, "digest") is None or ws.store.was_sent(analysis.event, "digest", latest.key):
        return due  # never sent (no back-catalogue for a new user), or up to date
    first_post = analysis.coverage.first_post
    while len(due) < CATCH_UP_PERIODS:
        earlier = due[0].previous()
        if ws.store.was_sent(analysis.event, "digest", earlier.key) or (first_post and earlier.end <= first_post):
            break
        due.insert(0, earlier)
    return due


def send_digest(
    ws: Workspace,
    analysis: Analysis,
    dry_run: bool = False,
    force: bool = False,
    now: datetime | None = None,
    period: Period | None = None,
) -> DigestResult:
    """Digest one period (the latest by default): skip it when already sent (unless force), mark it sent once
    the server accepts."""
    from monitor import digest as mail

    now = now or datetime.now(UTC)
    period = period or _latest_period(ws, analysis, now)
    if period is None:
        return DigestResult(analysis.event, "skipped", "no posts yet")
    if not dry_run and not force and ws.store.was_sent(analysis.event, "digest", period.key):
        return DigestResult(analysis.event, "skipped", _already_sent(period.key), period.key)
    message = mail.build_digest(
        analysis,
        period,
        sender=ws.config.email.sender,
        recipients=ws.config.email.recipients,
        timeline_png=_timeline_png(ws, analysis),
        dashboard_link=_dashboard_link(ws, analysis.event),
        spend=_month_spend(ws, analysis, now),
        now=now,
    )
    file_name = f"digest-{period.key}.eml"
    return _deliver(ws, message, analysis.event, "digest", [period.key], dry_run, file_name, resend=force)


def _deliver(
    ws: Workspace,
    message: EmailMessage,
    event_name: str,
    kind: str,
    keys: list[str],
    dry_run: bool,
    file_name: str,
    resend: bool = False,
) -> DigestResult:
    """Write the message (dry run), or claim its keys, send it and record them as sent under the server's acceptance.

    The claim makes two runs started together send it once; a failed send releases it for the next run.
    """
    from monitor import digest as mail

    message_id = str(message["Message-ID"])
    subject = str(message["Subject"])
    if dry_run:
        path = mail.write_eml(message, ws.config.out_dir() / event_name / file_name)
        return DigestResult(event_name, "written", f"{subject} → {path}", keys[0], path, message_id)
    expiry = claim_expiry(ws.config.email.timeout)
    claim = ws.store.claim_send(event_name, kind, keys, expiry, resend=resend)
    if claim != "claimed":
        return DigestResult(event_name, "skipped", _unclaimed(claim, keys[0], expiry), keys[0])
    try:
        refused = mail.send(message, ws.config.email, os.environ, _ca_file(ws))
    except BaseException as error:
        ws.store.release_claim(event_name, kind, keys)
        if not isinstance(error, DeliveryError):
            raise
        _log.error("%s of %s not sent: %s", kind, event_name, error)
        return DigestResult(event_name, "failed", str(error), keys[0])
    ws.store.finish_send(event_name, kind, keys, message_id)
    to = ", ".join(address for address in ws.config.email.recipients if address not in refused)
    return DigestResult(event_name, "sent", f"{subject} → {to}", keys[0], None, message_id, refused)


CLAIM_MIN_EXPIRY = timedelta(minutes=10)


def claim_expiry(smtp_timeout: timedelta) -> timedelta:
    """When a claim to send is a crashed run's: well past the longest a send can take (bounded by email.timeout)."""
    return max(CLAIM_MIN_EXPIRY, 10 * smtp_timeout)


def _already_sent(key: str) -> str:
    return f"{key} already sent (--force sends again)"


def _unclaimed(claim: str, key: str, expiry: timedelta) -> str:
    if claim == "sent":
        return _already_sent(key)
    minutes = round(expiry.total_seconds() / 60)
    return f"{key} is being sent by another run (its claim is taken over after {minutes} min if that run died)"


def _ca_file(ws: Workspace) -> Path | None:
    ca_file = ws.config.email.ca_file
    return ws.config.resolve_path(ca_file) if ca_file else None


def _timeline_png(ws: Workspace, analysis: Analysis) -> bytes:
    """The timeline chart the last report wrote; drawn from the analysis in hand (and kept there) if none has."""
    from monitor.plots import write_timeline

    path = ws.config.out_dir() / analysis.event / "timeline.png"
    if not path.is_file():
        write_timeline(analysis, path)
    return path.read_bytes()


def _dashboard_link(ws: Workspace, event_name: str) -> str:
    """The dashboard's web address when email.dashboard_url is set, else its path on this machine."""
    base = ws.config.email.dashboard_url
    if base:
        return f"{base.rstrip('/')}/{event_name}/index.html"
    return str((ws.config.out_dir() / event_name / "index.html").resolve())


def _month_spend(ws: Workspace, analysis: Analysis, now: datetime) -> Spend | None:
    """The X API's estimated spend this month, for events that collect from X."""
    from monitor.digest import Spend

    if "x" not in ws.config.event(analysis.event).sources:
        return None
    month_start = now.astimezone(ws.config.tz).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    posts_read, cost = ws.store.spend_since(month_start, source="x")
    return Spend("x", f"{month_start:%B %Y}", posts_read, cost)


def check_alerts(ws: Workspace, event_name: str | None = None, dry_run: bool = False) -> list[AlertResult]:
    """Email a short alert for spikes not alerted yet, at most one email per event per cool-down."""
    results = []
    for event in ws.config.selected_events(event_name):
        if not ws.config.email.recipients and not dry_run:
            results.append(AlertResult(event.name, "off", _EMAIL_OFF))
            continue
        results.append(send_alerts(ws, analyze_event(ws, event.name), dry_run=dry_run))
    return results


def send_alerts(ws: Workspace, analysis: Analysis, dry_run: bool = False, now: datetime | None = None) -> AlertResult:
    """Alert the new spikes of one analysed event; spikes that start inside the cool-down are held, not alerted later."""
    from monitor import digest as mail

    now = now or datetime.now(UTC)
    settings = ws.config.alerts
    already = {s.key() for s in analysis.spikes if _alert_recorded(ws, analysis.event, s.key())}
    last = ws.store.last_sent(analysis.event, "alert")
    plan = mail.plan_alerts(analysis, already, last, now, settings.min_volume, settings.cooldown, settings.max_age)
    if plan.hold:
        return _hold_alerts(ws, analysis.event, plan.hold, last, dry_run)
    if not plan.send:
        waiting = f" ({len(plan.waiting)} too small or too old)" if plan.waiting else ""
        return AlertResult(analysis.event, "none", f"no new spikes{waiting}")
    message = mail.build_alert(
        analysis,
        plan.send,
        sender=ws.config.email.sender,
        recipients=ws.config.email.recipients,
        timeline_png=_timeline_png(ws, analysis),
        dashboard_link=_dashboard_link(ws, analysis.event),
        now=now,
    )
    keys = [spike.key() for spike in plan.send]
    file_name = f"alert-{keys[0].replace(':', '-').replace('+', 'p')}.eml"
    sent = _deliver(ws, message, analysis.event, "alert", keys, dry_run, file_name)
    return AlertResult(analysis.event, sent.status, sent.detail, keys, sent.path, sent.message_id)


def _alert_recorded(ws: Workspace, event_name: str, key: str) -> bool:
    return ws.store.was_sent(event_name, "alert", key) or ws.store.was_sent(event_name, "alert-held", key)


def _hold_alerts(
    ws: Workspace, event_name: str, spikes: list[Any], last: datetime | None, dry_run: bool
) -> AlertResult:
    """Record spikes that started inside the cool-down so they are not alerted late; the digest lists them."""
    keys = [spike.key() for spike in spikes]
    if not dry_run:
        for key in keys:
            ws.store.mark_sent(event_name, "alert-held", key, "")
    until = (last + ws.config.alerts.cooldown) if last else None
    detail = (
        f"{len(keys)} new spike(s) held: last alert less than alerts.cooldown ago (until {until:%Y-%m-%d %H:%M} UTC)"
    )
    return AlertResult(event_name, "held", detail, keys)


# ---- scale: Parquet datasets and the Dask engine ------------------------------------------------------


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


UNSCORED_FIELDS = [
    ("source", "string"),
    ("post_id", "string"),
    ("text", "string"),
    ("lang", "string"),
    ("is_bot", "bool"),
]


def dask_dataset(ws: Workspace) -> Path:
    """Where the Dask engine stages its Parquet data: parquet/ beside a SQLite database, else ./data/parquet.

    With a remote cluster this folder must be on a file system every worker sees at the same path.
    """
    url = ws.config.database_url()
    if url.startswith("sqlite:///") and url != "sqlite:///:memory:":
        return Path(url.removeprefix("sqlite:///")).parent / "parquet"
    return ws.config.resolve_path(Path("data/parquet"))


def score_dask(
    ws: Workspace,
    scheduler: str | None = None,
    dataset: Path | None = None,
    workers: int | None = None,
    on_progress: ProgressCallback | None = None,
    processes: bool = True,
) -> ScoreResult:
    """Score every post the current scorer has not scored yet on a Dask cluster; the scores go into the store.

    The unscored posts are staged as Parquet files (one per scoring.chunk_size posts) under the dataset
    folder, scored there with one analyzer per worker, and each partition's scores written back as it arrives.
    """
    import shutil

    from monitor import dask_engine, parquet
    from monitor.scoring import ChunkScores

    dask_engine.require_dask()
    spec = scorer_spec(ws)
    folder = (dataset or dask_dataset(ws)) / "unscored"
    parts = parquet.write_parts(
        ws.store.iter_unscored(spec.key(), ws.config.scoring.chunk_size), folder, UNSCORED_FIELDS
    )
    result = ScoreResult(scorer=spec.key())
    if not parts:
        return result
    run_id = ws.store.start_run("score")
    try:
        with dask_engine.connect(scheduler, workers or dask_engine.LOCAL_WORKERS, processes) as client:
            result.workers = dask_engine.worker_count(client)
            for rows in dask_engine.score_dataset(client, folder, spec):
                _write_chunk(ws, ChunkScores.of_rows(rows), result, on_progress)
    except BaseException as error:
        ws.store.finish_run(run_id, "failed", result.total, result.scored, message=str(error)[:500])
        raise
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    ws.store.finish_run(run_id, "ok", result.total, result.scored, message=f"scorer {result.scorer} on dask")
    return result


def analyze_event_dask(ws: Workspace, event_name: str, client: Any, dataset: Path | None = None) -> Any:
    """analyze_event on a Dask cluster: the event is exported as a Parquet dataset, analysed partition by
    partition on the workers, and the partial sums merged there."""
    from monitor import dask_engine

    event = ws.config.event(event_name)
    folder = (dataset or dask_dataset(ws)) / "posts"
    export_parquet(ws, event.name, folder)
    accumulator = dask_engine.analyze_dataset(client, folder / f"event={event.name}", analysis_accumulator(ws, event))
    return finish_analysis(ws, event.name, accumulator)


def report_dask(
    ws: Workspace,
    event_name: str | None = None,
    scheduler: str | None = None,
    dataset: Path | None = None,
    workers: int | None = None,
    processes: bool = True,
) -> list[ReportResult]:
    """report() with each event analysed on a Dask cluster (a LocalCluster unless a scheduler is given)."""
    from monitor import dask_engine

    dask_engine.require_dask()
    with dask_engine.connect(scheduler, workers or dask_engine.LOCAL_WORKERS, processes) as client:
        return report(ws, event_name, analyse=lambda ws, name: analyze_event_dask(ws, name, client, dataset))
