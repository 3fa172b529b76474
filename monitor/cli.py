"""The `backlash` command: arguments in, one pipeline call, output and exit codes out.

The only module that prints. Errors the tool expects (MonitorError) become one line on stderr
and exit code 2 (bad usage or config), 3 (partial success) or 1; never a traceback unless
BACKLASH_DEBUG=1.
"""

from __future__ import annotations

import functools
import logging
import os
import re
import select
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import click

from monitor.errors import MonitorError, UsageError
from monitor.quick_exit import skip_last_collection

F = TypeVar("F", bound=Callable[..., Any])
EXIT_PARTIAL = 3


def echo(message: str = "", err: bool = False) -> None:
    """Every line the CLI prints goes out here, with known secrets (tokens, passwords, sessions) masked."""
    from monitor.sources.redaction import redact

    click.echo(redact(message), err=err)


def echo_error(message: str) -> None:
    from monitor.sources.redaction import redact

    click.secho(redact(f"error: {message}"), fg="red", err=True)


def handle_errors(command: F) -> F:
    """Turn MonitorError into one line and its exit code; anything else into one line and exit 1."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except MonitorError as error:
            echo_error(str(error))
            sys.exit(error.exit_code)
        except KeyboardInterrupt:
            echo_error("interrupted")
            sys.exit(130)
        except BrokenPipeError as error:
            if output_closed():
                raise  # our reader went away (`status | head`): click exits 1 without a word
            exit_unexpected(error)
        except Exception as error:  # noqa: BLE001 - the last line of defence; BACKLASH_DEBUG shows the trace
            if os.environ.get("BACKLASH_DEBUG"):
                raise
            exit_unexpected(error)

    return wrapper  # type: ignore[return-value]


def exit_unexpected(error: BaseException) -> None:
    """A bug or an error we did not foresee: one line and exit 1."""
    echo_error(f"unexpected {error.__class__.__name__}: {error} (set BACKLASH_DEBUG=1 for details)")
    sys.exit(1)


def output_closed() -> bool:
    """Whether stdout or stderr is a pipe whose reader has gone (poll reports an error on its write end)."""
    for stream in (sys.stdout, sys.stderr):
        try:
            descriptor = stream.fileno()
        except (OSError, ValueError, AttributeError):
            continue  # not a real file (a test runner's buffer)
        poller = select.poll()
        poller.register(descriptor, select.POLLOUT)
        if any(events & select.POLLERR for _fd, events in poller.poll(0)):
            return True
    return False


def setup_logging(level: str, log_file: str | None = None) -> None:
    """Timestamped lines on stderr (and optionally a rotating file); never the third-party debug noise."""
    from logging.handlers import RotatingFileHandler

    from monitor.sources.redaction import RedactingFormatter

    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if log_file:
        handlers.append(RotatingFileHandler(log_file, maxBytes=10_000_000, backupCount=5, encoding="utf-8"))
    formatter = RedactingFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    for handler in handlers:
        handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = handlers
    root.setLevel(level.upper())
    for noisy in ("urllib3", "requests_oauthlib", "oauthlib", "matplotlib", "PIL", "tweepy", "apscheduler.executors"):
        logging.getLogger(noisy).setLevel(max(logging.INFO, root.level))


@contextmanager
def progress_bar(description: str, total: int | None) -> Iterator[Callable[[int], None]]:
    """A rich progress bar on a terminal; nothing when stderr is a file or a pipe."""
    if not sys.stderr.isatty():
        yield lambda _done: None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn()]
    with Progress(*columns, console=Console(stderr=True), transient=True) as progress:
        task = progress.add_task(description, total=total)
        yield lambda done: progress.advance(task, done)


class AppContext:
    """What the group's options give every command: the config path, loaded on first use."""

    def __init__(self, config_path: str | None) -> None:
        self.config_path = config_path
        self._workspace: Any = None

    def workspace(self) -> Any:
        from monitor.pipeline import open_workspace

        if self._workspace is None:
            self._workspace = open_workspace(self.config_path)
        return self._workspace


pass_app = click.make_pass_decorator(AppContext)


LOG_LEVELS = click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False)  # --log-level, here and on `run`


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False),
    default=None,
    help="Config file (default: $BACKLASH_CONFIG or ./config.yaml).",
)
@click.option(
    "--log-level",
    type=LOG_LEVELS,
    default="WARNING",
    show_default=True,
    help="How much to log on stderr.",
)
@click.version_option(package_name="backlash-monitor")
@click.pass_context
def cli(ctx: click.Context, config_path: str | None, log_level: str) -> None:
    """Backlash Monitor: collect, score, chart and mail the reaction to a platform's policy change.

    Quick start: `backlash demo` runs the whole pipeline on a simulated backlash with no
    credentials. With your own data: `backlash import FILE --event E`, then `score`, `report`.
    """
    setup_logging(log_level)
    ctx.obj = AppContext(config_path)


# ---- archive import, export, status -------------------------------------------------------------


@cli.command("import")
@click.argument("file", type=click.Path(exists=True, path_type=Path))
@click.option("--event", "event_name", required=True, help="Event the posts belong to (as named in the config).")
@click.option(
    "--format", "fmt", type=click.Choice(["csv", "jsonl", "twarc", "parquet"]), help="Default: from the file name."
)
@click.option("--map", "mapping", multiple=True, metavar="FIELD=COLUMN", help="Read FIELD from another column.")
@click.option("--source", default=None, help="Source name stored with the posts (default: archive; x for twarc).")
@click.option(
    "--delimiter", default=None, help="CSV delimiter: one character or tab (default: sniffed from the header)."
)
@click.option(
    "--date-format", default=None, metavar="FORMAT", help="created_at as strptime reads it, e.g. '%d/%m/%Y %H:%M'."
)
@pass_app
@handle_errors
def import_command(
    app: AppContext,
    file: Path,
    event_name: str,
    fmt: str | None,
    mapping: tuple[str, ...],
    source: str | None,
    delimiter: str | None,
    date_format: str | None,
) -> None:
    """Load an archive of posts (CSV, JSON Lines or a JSON array, twarc2 output, Parquet file or dataset folder) into an event.

    CSV needs `created_at,text`; `id,author,lang,likes,reposts,replies,followers,url,is_repost,
    is_quote` are optional; `;`, tab and `|` separated files are recognised by their header. Dates are
    ISO 8601 (or RFC 2822, epoch seconds); day/month dates such as 13/11/2022 need --date-format.
    Rows without an id get a stable hash of author + time + text, so importing the same file twice adds
    nothing. Rejected rows are listed (line and reason), written with their raw text to
    FILE.rejects.csv, and make the exit code 3; the good rows are kept.

    Example: backlash import tweets.csv --event instagram-tos-2012 --map text=Tweet --map "created_at=Date Created"
    """
    from monitor.pipeline import REJECTS_SHOWN, import_archive
    from monitor.sources.archive import check_date_format, parse_delimiter, parse_mapping

    fields = parse_mapping(mapping)
    separator = parse_delimiter(delimiter) if delimiter is not None else None
    strptime_format = check_date_format(date_format) if date_format is not None else None
    size = file.stat().st_size if file.is_file() else None
    with progress_bar(f"importing {file.name}", size) as advance:
        result = import_archive(
            app.workspace(), file, event_name, fmt, fields, source, advance, separator, strptime_format
        )
    for note in _layout_notes(result, delimiter is None):
        echo(note)
    echo(
        f"{result.path}: read {result.read}, new {result.new}, duplicate {result.duplicate}, "
        f"rejected {result.rejected} → event {result.event} (source {result.source}; {result.added_to_event} added to it)"
    )
    for line in _reject_lines(result.rejects[:REJECTS_SHOWN], result.rejected):
        echo(line, err=True)
    if result.rejects_file:
        echo(f"all rejected lines: {result.rejects_file}", err=True)
    if result.rejected:
        sys.exit(EXIT_PARTIAL)


def _reject_lines(shown: list[Any], total: int) -> list[str]:
    """The rejects shown, a run of rows refused for the same reason (its quoted value aside) folded after the first.

    A file whose every date needs --date-format says so once, not twenty times.
    """
    lines: list[str] = []
    run: list[Any] = []
    for reject in shown:
        if run and _reason_kind(reject.reason) != _reason_kind(run[0].reason):
            lines += _folded(run)
            run = []
        run.append(reject)
    lines += _folded(run)
    if total > len(shown):
        lines.append(f"  … and {total - len(shown):,} more")
    return lines


def _reason_kind(reason: str) -> str:
    """A reason without the values it quotes: "created_at: '13/11/2022' is day/month…" → "created_at: '' is day/month…"
    (a mapped column's name is quoted too, before the value)."""
    return re.sub(r"'[^']*'", "''", reason)


def _folded(run: list[Any]) -> list[str]:
    """One run of same-reason rejects: each line when there are three or fewer, else the first and a count."""
    if len(run) <= 3:
        return [f"  line {reject.line}: {reject.reason}" for reject in run]
    first, rest = run[0], run[1:]
    contiguous = rest[-1].line - rest[0].line + 1 == len(rest)
    where = (
        f"lines {rest[0].line}–{rest[-1].line}" if contiguous else f"between lines {rest[0].line} and {rest[-1].line}"
    )
    return [f"  line {first.line}: {first.reason}", f"  {len(rest)} more like it, {where}"]


def _layout_notes(result: Any, sniffed: bool) -> list[str]:
    """How the file was read, when it is not the plain case (a comma-separated CSV, JSON Lines)."""
    from monitor.sources.archive import DELIMITER_NAMES

    notes = []
    if result.fmt == "csv" and result.delimiter != ",":
        name = DELIMITER_NAMES.get(result.delimiter, repr(result.delimiter))
        how = "sniffed from the header; --delimiter overrides" if sniffed else "--delimiter"
        notes.append(f"{result.path}: read as {name}-separated ({how})")
    if result.fmt == "json":
        notes.append(f"{result.path}: read as one JSON array (not JSON Lines)")
    return notes


@cli.command("export")
@click.option("--event", "event_name", required=True, help="Event to export.")
@click.option("--format", "fmt", type=click.Choice(["csv", "parquet"]), default="csv", show_default=True)
@click.option("--out", type=click.Path(dir_okay=True, path_type=Path), required=True, help="File (or folder) to write.")
@click.option("--series", is_flag=True, help="Write the per-bin series behind the charts (CSV) instead of the posts.")
@pass_app
@handle_errors
def export_command(app: AppContext, event_name: str, fmt: str, out: Path, series: bool) -> None:
    """Write an event's posts with their scores (score columns empty until scored).

    `--format parquet` writes a dataset folder partitioned by event and day
    (OUT/event=E/day=YYYY-MM-DD/*.parquet) that `import`, Dask, pandas or DuckDB read back.
    `--series` writes one row per time bin instead: volume, originals, reposts, scored, mean compound
    with its 95 % band, negative and churn shares — the numbers behind the charts, for a spreadsheet.

    Example: backlash export --event instagram-tos-2012 --format csv --out instagram.csv
    """
    from monitor.pipeline import export_posts, export_series

    workspace = app.workspace()
    if series:
        if fmt != "csv":
            raise UsageError("--series writes CSV: drop --format parquet")
        echo(f"{out}: {export_series(workspace, event_name, out)} bins")
        return
    with progress_bar("exporting", workspace.store.post_count(event_name)) as advance:
        rows = export_posts(workspace, event_name, out, fmt, advance)
    echo(f"{out}: {rows} posts")


@cli.command("sample")
@click.option("--event", "event_name", required=True, help="Event whose scored posts are sampled.")
@click.option(
    "--n", "n", type=click.IntRange(min=1, max=100_000), default=200, show_default=True, help="Posts to draw."
)
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True, help="CSV file to write.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the draw (same seed, same sample).")
@pass_app
@handle_errors
def sample_command(app: AppContext, event_name: str, n: int, out: Path, seed: int) -> None:
    """Draw a stratified sample of an event's scored posts (within its window) for a person to label.

    The strata are our sentiment class × churn flag, drawn as evenly as they allow; fill in the empty
    `label_sentiment` (negative, neutral, positive) and `label_churn` (yes, no) columns in a spreadsheet,
    keep `id`, `source`, `stratum` and `weight`, and read it back with `validate`.

    Example: backlash sample --event instagram-tos-2012 --n 200 --out sample.csv
    """
    from monitor.pipeline import sample_posts

    result = sample_posts(app.workspace(), event_name, n, out, seed)
    echo(f"{result.path}: {result.drawn} posts of event {result.event} to label")
    for name, (size, drawn) in result.strata.items():
        echo(f"  {name:<24} {drawn:>6} of {size:,}")


@cli.command("validate")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--event", "event_name", required=True, help="Event the sample was drawn from.")
@pass_app
@handle_errors
def validate_command(app: AppContext, file: Path, event_name: str) -> None:
    """Check our labels against a person's on a sample from `sample`; store and print the agreement.

    Per class precision and recall with 95 % Wilson intervals (weighted by the strata's sampling rates) and
    the confusion matrix, for sentiment and for churn. The report shows them beside the churn share, with
    the share adjusted for them. Rows with a bad label or an unknown id are listed and make the exit code 3.

    Example: backlash validate sample.csv --event instagram-tos-2012
    """
    from monitor.agreement import describe
    from monitor.pipeline import REJECTS_SHOWN, validate_sample

    result = validate_sample(app.workspace(), file, event_name)
    echo(
        f"{result.path}: {result.rows} rows, {result.unlabelled} unlabelled, {result.rejected} rejected → event {result.event}"
    )
    for agreement, title in ((result.sentiment, "sentiment"), (result.churn, "churn intent")):
        for line in describe(agreement, title) if agreement else [f"{title}: no labels"]:
            echo(line)
    if result.changed:
        echo(f"{result.changed} labelled posts are labelled differently by the current scorer: sample again", err=True)
    for problem in result.problems[:REJECTS_SHOWN]:
        echo(f"{result.path}: line {problem.line}: {problem.field}: {problem.reason}", err=True)
    if result.rejected > REJECTS_SHOWN:
        echo(f"  … and {result.rejected - REJECTS_SHOWN} more", err=True)
    if result.rejected:
        sys.exit(EXIT_PARTIAL)


@cli.command("status")
@pass_app
@handle_errors
def status_command(app: AppContext) -> None:
    """Posts and scores per event and source, cursors, the last runs, and each daemon job's next and last run.

    Example: backlash status
    """
    from monitor.daemon import scheduled_jobs
    from monitor.pipeline import status

    for line in format_status(status(app.workspace())) + format_jobs(scheduled_jobs(app.workspace())):
        echo(line)


def format_status(report: Any) -> list[str]:
    """The status report as lines of text."""
    lines = [f"database: {report.database}", "", "events:"]
    for event in report.events:
        total = sum(event.posts_by_source.values())
        sources = ", ".join(f"{name} {count}" for name, count in event.posts_by_source.items()) or "no posts"
        lines.append(f"  {event.name}: {total} posts ({sources})")
        if event.scored:
            scored = ", ".join(f"{name} {count}" for name, count in sorted(event.scored.items()))
            lines.append(f"    scores: {scored}")
    if report.x_spend is not None:
        posts, usd, budget = report.x_spend
        share = f" ({posts / budget:.0%} of the budget)" if budget else ""
        lines += ["", f"X this month: {posts} of {budget} posts read{share}, estimated ${usd:.2f}"]
    lines += ["", "cursors:"] + [
        f"  {c['event']} / {c['source']} / {c['kind']} = {c['value']} (updated {c['updated_at']:%Y-%m-%d %H:%M} UTC)"
        for c in report.cursors
    ]
    if not report.cursors:
        lines.append("  none")
    lines += ["", "last runs:"] + [_run_line(run) for run in report.runs]
    if not report.runs:
        lines.append("  none")
    return lines


def _run_line(run: Any) -> str:
    what = " ".join(part for part in (run.verb, run.event, run.source) if part)
    took = f" in {(run.finished_at - run.started_at).total_seconds():.1f}s" if run.finished_at else ""
    cost = f", ${run.cost_usd:.2f}" if run.cost_usd else ""
    message = f" — {run.message}" if run.message else ""
    return (
        f"  {run.started_at:%Y-%m-%d %H:%M:%S} {what}: {run.status}{took}, "
        f"read {run.posts_read}, new {run.posts_new}{cost}{message}"
    )


# ---- collect ---------------------------------------------------------------------------------


@cli.command("collect")
@click.option("--event", "event_name", default=None, help="Only this event (default: every event).")
@click.option("--source", "source_name", default=None, help="Only this live source, e.g. x (default: each event's).")
@click.option("--counts", is_flag=True, help="Store hourly post counts (cheap) instead of reading posts.")
@pass_app
@handle_errors
def collect_command(app: AppContext, event_name: str | None, source_name: str | None, counts: bool) -> None:
    """Pull posts newer than the stored cursor from each event's live sources, one line per event and source.

    A source without credentials is skipped with the reason; one that fails leaves its cursor at
    the last stored page and makes the exit code 1, the others still run. `--counts` stores how
    many posts match each hour (the volume curve) without reading them.

    Example: backlash collect --event instagram-tos-2012 --source x
    """
    from monitor.pipeline import collect

    result = collect(app.workspace(), event_name, source_name, counts)
    for outcome in result.outcomes:
        echo(format_outcome(outcome))
    if not result.outcomes:
        echo("nothing to collect: no event lists a live source (events[].sources)")
    if result.failed:
        sys.exit(1)


def format_outcome(outcome: Any) -> str:
    """One collect outcome as a line of text."""
    head = f"{outcome.event} / {outcome.source}: {outcome.status}"
    if outcome.status == "skipped":
        return f"{head} — {outcome.message}"
    if outcome.kind == "counts":
        facts = f"{outcome.hours} hours, {outcome.counted} posts counted"
    else:
        facts = f"read {outcome.read}, new {outcome.new}"
    note = f" — {outcome.message}" if outcome.message else ""
    return f"{head}, {facts}, ${outcome.cost_usd:.2f}{note}"


# ---- digest -------------------------------------------------------------------------------------


@cli.command("digest")
@click.option("--event", "event_name", default=None, help="Only this event (default: every event).")
@click.option("--dry-run", is_flag=True, help="Write the email as a .eml file under the event's dashboard folder.")
@click.option("--force", is_flag=True, help="Send even if this period's digest was already sent.")
@pass_app
@handle_errors
def digest_command(app: AppContext, event_name: str | None, dry_run: bool, force: bool) -> None:
    """Email the digest of the latest whole period (day, or 7 days with email.period: week).

    Each period is sent once: a second run skips it (unless --force), and a period whose send
    failed is sent by the next run, before the latest (up to 7 missed periods, oldest first).
    Without email.recipients the digest is switched off.

    Example: backlash digest --event instagram-tos-2012 --dry-run
    """
    from monitor.pipeline import digest

    results = digest(app.workspace(), event_name, dry_run=dry_run, force=force)
    for result in results:
        line = f"{result.event}: {result.status} — {result.detail}"
        if result.status == "failed":
            echo_error(line)
        else:
            echo(line)
        for address in result.refused:
            echo(f"  refused by the server: {address}", err=True)
    if any(result.status == "failed" for result in results):
        sys.exit(1)


# ---- score ------------------------------------------------------------------------------------

# --engine/--scheduler/--dataset, shared by score and report
ENGINE_OPTION: tuple[tuple[str, ...], dict[str, Any]] = (
    ("--engine",),
    {"type": click.Choice(["local", "dask"]), "default": "local", "show_default": True,
     "help": "local: this machine; dask: a Dask cluster (needs the scale extra)."},
)  # fmt: skip
SCHEDULER_OPTION: tuple[tuple[str, ...], dict[str, Any]] = (
    ("--scheduler",),
    {"default": None, "metavar": "ADDRESS", "help": "Dask scheduler, e.g. tcp://10.0.0.5:8786 (default: a LocalCluster)."},
)  # fmt: skip
DATASET_OPTION: tuple[tuple[str, ...], dict[str, Any]] = (
    ("--dataset",),
    {"type": click.Path(file_okay=False, path_type=Path), "default": None,
     "help": "Folder for the Dask engine's Parquet data (default: parquet/ beside the database)."},
)  # fmt: skip


MAX_WORKERS = 256  # as config.MAX_WORKERS (scoring.workers); kept here so `--help` does not load the config stack


@cli.command("score")
@click.option(
    "--workers", type=click.IntRange(min=0, max=MAX_WORKERS), default=None, help="Worker processes (0 = all cores)."
)
@click.option(*ENGINE_OPTION[0], **ENGINE_OPTION[1])
@click.option(*SCHEDULER_OPTION[0], **SCHEDULER_OPTION[1])
@click.option(*DATASET_OPTION[0], **DATASET_OPTION[1])
@pass_app
@handle_errors
def score_command(
    app: AppContext, workers: int | None, engine: str, scheduler: str | None, dataset: Path | None
) -> None:
    """Score every post the current scorer has not scored yet (sentiment, churn intent, aspects).

    Changing the lexicon, churn patterns, aspects or languages in the config makes a new scorer
    version: the next `score` rescores everything once; otherwise nothing is scored twice.
    `--engine dask` scores on a Dask cluster (a local one with --workers processes, default 2,
    or the scheduler at --scheduler) and writes the scores into the store the same way.

    Example: backlash score --workers 2
    """
    from monitor.dask_engine import score_dask
    from monitor.pipeline import count_unscored, score

    workspace = app.workspace()
    with progress_bar("scoring", count_unscored(workspace)) as advance:
        if engine == "dask":
            result = score_dask(workspace, scheduler, dataset, workers, advance)
        else:
            result = score(workspace, workers, advance)
    skipped = ", ".join(f"{reason.removeprefix('skipped:')} {n}" for reason, n in sorted(result.skipped.items()))
    echo(
        f"scored {result.scored}, skipped {sum(result.skipped.values())}{f' ({skipped})' if skipped else ''}, "
        f"identical texts reused {result.reused} — scorer {result.scorer}"
    )


# ---- report and demo ----------------------------------------------------------------------------


@cli.command("report")
@click.option("--event", "event_name", default=None, help="Event to report (default: every event in the config).")
@click.option(*ENGINE_OPTION[0], **ENGINE_OPTION[1])
@click.option(*SCHEDULER_OPTION[0], **SCHEDULER_OPTION[1])
@click.option(*DATASET_OPTION[0], **DATASET_OPTION[1])
@click.option("--full", is_flag=True, help="Read every day's posts again instead of reusing the stored day sums.")
@pass_app
@handle_errors
def report_command(
    app: AppContext, event_name: str | None, engine: str, scheduler: str | None, dataset: Path | None, full: bool
) -> None:
    """Write dashboards/<event>/: timeline, compare, shift and drivers PNGs, index.html and summary.json.

    Run `score` first so the sentiment panels have numbers. The folder is replaced as a whole,
    so a browser or the digest never reads half of one run and half of another. `--engine dask`
    exports each event as Parquet and aggregates it on a Dask cluster: the same numbers.
    The sums of each day of posts are stored; a report reads again only the days whose posts or
    scores changed since, and `--full` reads every day (the same numbers).

    Example: backlash report --event instagram-tos-2012
    """
    from monitor.dask_engine import report_dask
    from monitor.pipeline import report

    workspace = app.workspace()
    results = (
        report_dask(workspace, event_name, scheduler, dataset)
        if engine == "dask"
        else report(workspace, event_name, full=full)
    )
    for result in results:
        echo(f"{result.event}: {result.index}")
        for path in result.files:
            if path != result.index:
                echo(f"  {path}")
        for note in result.notes:
            echo(f"{result.event}: {note}", err=True)


@cli.command("demo")
@click.option(
    "--dir", "base_dir", type=click.Path(file_okay=False, path_type=Path), default=Path("."), show_default=True,
    help="Folder that receives data/demo.db and dashboards/.",
)  # fmt: skip
@click.option("--seed", type=int, default=None, help="Seed of the simulation (default 2012).")
@click.option(
    "--posts", type=click.IntRange(min=100, max=1_000_000), default=None, help="Simulated posts (default 6000)."
)
@handle_errors
def demo_command(base_dir: Path, seed: int | None, posts: int | None) -> None:
    """Run the whole pipeline on a simulated backlash: no credentials, no config file needed.

    Simulates the Instagram 2012 terms-of-service storm into its own database (DIR/data/demo.db),
    scores it, writes the report under DIR/dashboards/ and prints the paths. Everything it shows
    is labelled as simulated.

    Example: backlash demo --dir /tmp/backlash-demo
    """
    from monitor.pipeline import demo

    result = demo(base_dir, seed, posts)
    echo(
        f"simulated {result.posts} posts, scored {result.scored.scored} "
        f"(skipped {sum(result.scored.skipped.values())}) in {result.seconds:.1f}s"
    )
    for path in result.files:
        echo(str(path))
    index = result.reports[0].index if result.reports else None
    echo(f"\nopen {index} in a browser; more commands: backlash --config {result.config_path} status")


# ---- the daemon --------------------------------------------------------------------------------


@cli.command("run")
@click.option(
    "--log-file",
    type=click.Path(dir_okay=False),
    default=None,
    help="Also log to this file (rotated at 10 MB, 5 kept).",
)
@click.option(
    "--log-level",
    type=LOG_LEVELS,
    default=None,
    help="How much to log (default: INFO, one line per job run; or the level given before `run`).",
)
@pass_app
@handle_errors
def run_command(app: AppContext, log_file: str | None, log_level: str | None) -> None:
    """Run collect (then score and alerts), report and digest on the config's schedule until SIGTERM or Ctrl-C.

    Jobs and their next run times are kept in the database, so a restart picks up the schedule.
    One line per job run (counts and duration) goes to stderr and, with --log-file, to a rotating
    file. A second `backlash run` on the same database refuses to start.

    Example: backlash --config /etc/backlash/config.yaml run --log-file /var/log/backlash/daemon.log
    """
    from monitor import daemon

    workspace = app.workspace()
    setup_logging(log_level or _daemon_log_level(), _log_file(log_file, workspace))
    daemon.run(workspace)


def _log_file(path: str | None, workspace: Any) -> str | None:
    """The --log-file path with its folder created; the database, the config or a file that cannot be opened
    is a usage error."""
    from monitor.pipeline import refuse_overwriting

    if path is None:
        return None
    refuse_overwriting(workspace, Path(path), "--log-file")
    try:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).open("a", encoding="utf-8").close()
    except OSError as error:
        raise UsageError(f"--log-file {path}: cannot write it ({error.strerror or error})") from None
    return path


def _daemon_log_level() -> str:
    """The group's --log-level when given, else INFO: a daemon that logs nothing about its jobs is no use."""
    root = click.get_current_context().find_root()
    given = root.get_parameter_source("log_level") is not click.core.ParameterSource.DEFAULT
    return str(root.params["log_level"]) if given else "INFO"


def format_jobs(jobs: list[Any]) -> list[str]:
    """The daemon's jobs as lines of text: schedule, next run, last run."""
    lines = ["", "daemon jobs:"]
    for job in jobs:
        when = f"next {job.next_run:%Y-%m-%d %H:%M:%S %Z}" if job.next_run else "not scheduled (start `backlash run`)"
        lines.append(f"  {job.id}: {job.schedule}, {when}")
        lines.append(f"    last run: {_job_run_text(job.last_run)}")
    return lines


def _job_run_text(run: Any) -> str:
    if run is None:
        return "none"
    took = f" in {(run.finished_at - run.started_at).total_seconds():.1f}s" if run.finished_at else " (still running)"
    message = f" — {run.message}" if run.message else ""
    return f"{run.status} at {run.started_at:%Y-%m-%d %H:%M:%S} UTC{took}{message}"


def main() -> None:
    """Console-script entry point."""
    skip_last_collection()
    cli(prog_name="backlash")
