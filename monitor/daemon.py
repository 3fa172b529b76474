"""The daemon: APScheduler runs the pipeline verbs on the config's schedule until SIGTERM or SIGINT.

The only module that imports apscheduler. Jobs are kept in the project's database (a restart keeps
the schedule), run one at a time, and a job that fails is logged, recorded in the run log and simply
tried again at its next run.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from monitor.config import Config, check_crontab
from monitor.errors import ConfigError, LockedError
from monitor.pipeline import CollectResult, Workspace, check_alerts, collect, digest, report, score
from monitor.store import RunRecord

log = logging.getLogger(__name__)

JOB_FUNCTION = "monitor.daemon:run_job"  # what the job store records: a reference, never our objects
RUN_VERB_PREFIX = "job:"  # run-log verb of a daemon job, e.g. "job:collect"
SHUTDOWN_GRACE = 8.0  # seconds a running job may take to finish after SIGTERM; systemd waits longer
LOCK_NAME = "daemon"
WEEKDAY_NAMES = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")


@dataclass
class JobOutcome:
    """What one run of a job did: its run-log status, counts and a one-line summary."""

    status: str  # "ok", "partial" or "failed"
    summary: str  # what happened, with counts: the log line and the run log's message


@dataclass
class JobStatus:
    """A configured job as `status` shows it: its schedule, next run and the outcome of its last run."""

    id: str
    schedule: str
    next_run: datetime | None
    last_run: RunRecord | None = None


@dataclass
class JobSpec:
    """One job to schedule: a stable id, its trigger, and the schedule as the config wrote it."""

    id: str
    trigger: Any
    schedule: str  # "every 15m" or "cron 0 8 * * *": what logs and status show
    run_at_start: bool = False  # run once at start when the job is new or its schedule changed


# ---- the jobs -------------------------------------------------------------------------------
# Thin functions over the same pipeline verbs the CLI calls; they return what to log and record.


def collect_job(ws: Workspace, stop: threading.Event) -> JobOutcome:
    """Collect new posts from every event's live sources, then score what is not scored yet."""
    outcome = collect_outcome(collect(ws, stop=stop))
    if not stop.is_set():
        scored = score(ws)
        outcome.summary += f"; scored {scored.scored} of {scored.total}"
    if not stop.is_set():
        outcome.summary += "; alerts: " + _mail_summary(check_alerts(ws))
    return outcome


def digest_job(ws: Workspace, stop: threading.Event) -> JobOutcome:
    """Email each event's digest of the latest whole period (once per period; the verb skips one already sent)."""
    results = digest(ws)
    failed = [result for result in results if result.status == "failed"]
    status = "ok" if not failed else ("failed" if len(failed) == len(results) else "partial")
    return JobOutcome(status, _mail_summary(results))


def _mail_summary(results: list[Any]) -> str:
    """'event sent (detail); other off (detail)' for digest and alert results."""
    return "; ".join(f"{result.event} {result.status} ({result.detail})" for result in results) or "no events"


def report_job(ws: Workspace, stop: threading.Event) -> JobOutcome:
    """Write every event's dashboard folder; the summary says how many posts each report covers."""
    written = report(ws)
    parts = [f"{result.event} {result.posts} posts, {result.scored} scored → {result.folder}" for result in written]
    return JobOutcome("ok", "; ".join(parts) or "no events")


def collect_outcome(result: CollectResult) -> JobOutcome:
    """Sum a collect result into a job outcome: failed if every source failed, partial if some did."""
    failed = [o for o in result.outcomes if o.status == "failed"]
    status = "ok" if not failed else ("failed" if len(failed) == len(result.outcomes) else "partial")
    parts = [f"{o.event}/{o.source} {o.status}" + (f" ({o.message})" if o.message else "") for o in result.outcomes]
    read, new = sum(o.read for o in result.outcomes), sum(o.new for o in result.outcomes)
    cost = sum(o.cost_usd for o in result.outcomes)
    details = "; ".join(parts) or "no event lists a live source"
    return JobOutcome(status, f"read {read}, new {new}, ${cost:.2f}; {details}")


JOB_FUNCTIONS: dict[str, Callable[[Workspace, threading.Event], JobOutcome]] = {
    "collect": collect_job,
    "report": report_job,
    "digest": digest_job,
}


# ---- the schedule ---------------------------------------------------------------------------


def job_specs(config: Config) -> list[JobSpec]:
    """The jobs the config asks for; a bad cron expression is a ConfigError naming the setting."""
    from apscheduler.triggers.interval import IntervalTrigger

    schedule = config.schedule
    collect_every = IntervalTrigger(seconds=int(schedule.collect_every.total_seconds()), timezone=config.tz)
    return [
        JobSpec("collect", collect_every, f"every {_duration_text(schedule.collect_every)}", run_at_start=True),
        JobSpec(
            "report",
            cron_trigger(schedule.report_cron, "schedule.report_cron", config),
            _cron_text(schedule.report_cron),
        ),
        JobSpec(
            "digest",
            cron_trigger(schedule.digest_cron, "schedule.digest_cron", config),
            _cron_text(schedule.digest_cron),
        ),
    ]


def _cron_text(expression: str) -> str:
    return "cron " + " ".join(expression.split())


def cron_trigger(expression: str, setting: str, config: Config) -> Any:
    """A CronTrigger from a crontab line: 5 fields, or 6 with seconds first; weekdays 0 and 7 are Sunday."""
    from apscheduler.triggers.cron import CronTrigger

    try:
        fields = check_crontab(expression).split()
    except ValueError as error:
        raise ConfigError(f"{setting}: {error}") from None
    second = fields.pop(0) if len(fields) == 6 else "0"
    minute, hour, day, month, weekday = fields
    try:
        return CronTrigger(
            second=second,
            minute=minute,
            hour=hour,
            day=day,
            month=month,
            day_of_week=crontab_weekdays(weekday),
            timezone=config.tz,
        )
    except ValueError as error:
        raise ConfigError(f"{setting}: {expression!r} is not a crontab expression ({error})") from None


def crontab_weekdays(text: str) -> str:
    """Crontab weekdays (0 or 7 = Sunday) as names, since APScheduler 3 numbers them from Monday."""
    if not any(character.isdigit() for character in text):
        return text
    days: list[int] = []
    for part in text.split(","):
        days.extend(day for day in _weekday_part(part) if day not in days)
    return ",".join(WEEKDAY_NAMES[day] for day in sorted(days))


def _weekday_part(part: str) -> list[int]:
    """'1-5' → [1..5], '*/2' → [0, 2, 4, 6], 'mon' → [1]; ValueError for anything else."""
    span, _, step = part.partition("/")
    if span == "*":
        first, last = 0, 6
    else:
        start, _, end = span.partition("-")
        first, last = _weekday_number(start), _weekday_number(end or start)
        last = 7 if last == 0 and end else last
    if not step and first == last:
        return [first % 7]
    return sorted({day % 7 for day in range(first, last + 1, int(step or 1))})


def _weekday_number(text: str) -> int:
    if text.isdigit() and int(text) <= 7:
        return int(text)
    if text.lower()[:3] in WEEKDAY_NAMES:
        return WEEKDAY_NAMES.index(text.lower()[:3])
    raise ConfigError(f"{text!r} is not a weekday (0-7 or sun-sat)")


def _duration_text(interval: timedelta) -> str:
    seconds = int(interval.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def _trigger_key(trigger: Any) -> tuple[str, str]:
    """What makes two triggers the same schedule (their str() omits the zone, repr() adds a start date)."""
    return str(trigger), str(getattr(trigger, "timezone", ""))


# ---- the job store --------------------------------------------------------------------------


def _open_job_store(ws: Workspace) -> Any:
    """APScheduler's job table in the project's database, on the store's engine (same pool, WAL, busy timeout)."""
    from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore

    return SQLAlchemyJobStore(engine=ws.store.engine)


def stored_jobs(ws: Workspace) -> dict[str, Any]:
    """The jobs the daemon stored, by id, read without starting a scheduler."""
    job_store = _open_job_store(ws)
    job_store.start(None, "default")  # creates the (empty) table on a database that never ran the daemon
    return {job.id: job for job in job_store.get_all_jobs()}


def scheduled_jobs(ws: Workspace) -> list[JobStatus]:
    """Each configured job with its next run (from the job store) and the last run recorded in the run log."""
    stored = stored_jobs(ws)
    statuses = []
    for spec in job_specs(ws.config):
        job = stored.get(spec.id)
        next_run = job.next_run_time if job is not None else None
        last = ws.store.last_run(RUN_VERB_PREFIX + spec.id)
        statuses.append(JobStatus(spec.id, spec.schedule, next_run, last))
    return statuses


# ---- running a job --------------------------------------------------------------------------


class JobRunner:
    """Runs a job by id for the scheduler: one clear log line and one run-log row per run, never an exception."""

    def __init__(self, ws: Workspace, stop: threading.Event) -> None:
        self.ws = ws
        self.stop = stop
        self.idle = threading.Event()
        self.idle.set()
        self.running_run_id: int | None = None

    def run(self, job_id: str) -> None:
        if self.stop.is_set():
            log.info("job %s not started: the daemon is stopping", job_id)
            return
        self.idle.clear()
        try:
            self._run(job_id)
        finally:
            self.running_run_id = None
            self.idle.set()

    def _run(self, job_id: str) -> None:
        started = time.monotonic()
        self.running_run_id = self._start_run(job_id)
        try:
            outcome = JOB_FUNCTIONS[job_id](self.ws, self.stop)
        except Exception as error:  # noqa: BLE001 - a failed job must never stop the daemon
            log.debug("job %s failed", job_id, exc_info=True)
            outcome = JobOutcome("failed", _error_line(error))
        took = time.monotonic() - started
        level = logging.INFO if outcome.status == "ok" else logging.ERROR
        log.log(level, "job %s %s in %.1fs: %s", job_id, outcome.status, took, outcome.summary)
        self._finish_run(self.running_run_id, outcome)

    def _start_run(self, job_id: str) -> int | None:
        try:
            return self.ws.store.start_run(RUN_VERB_PREFIX + job_id)
        except Exception as error:  # noqa: BLE001 - a database that refuses the run log must not stop the job
            log.error("job %s: cannot record the run in the run log: %s", job_id, _error_line(error))
            return None

    def _finish_run(self, run_id: int | None, outcome: JobOutcome) -> None:
        if run_id is None:
            return
        try:
            # Counts stay in the message: the verbs' own rows carry them, and sums over the run log must not double.
            self.ws.store.finish_run(run_id, outcome.status, message=outcome.summary[:500])
        except Exception as error:  # noqa: BLE001 - see _start_run
            log.error("cannot record the end of run %s in the run log: %s", run_id, _error_line(error))

    def abandon(self) -> None:
        """Record the running job as failed because shutdown could not wait for it."""
        self._finish_run(self.running_run_id, JobOutcome("failed", "abandoned: the daemon stopped while it ran"))


def _error_line(error: BaseException) -> str:
    """A MonitorError's own message, or the class and message of anything unexpected."""
    from monitor.errors import MonitorError

    text = str(error).splitlines()[0] if str(error) else ""
    return text if isinstance(error, MonitorError) else f"unexpected {error.__class__.__name__}: {text}"


_runner: JobRunner | None = None  # the running daemon's runner, found by run_job (the job store holds only a name)


def run_job(job_id: str) -> None:
    """What every stored job calls: hand the job to this process's runner."""
    if _runner is None:
        log.error("job %s fired outside a running daemon; ignored", job_id)
        return
    _runner.run(job_id)


# ---- the daemon -----------------------------------------------------------------------------


def run(ws: Workspace) -> None:
    """Run the schedule until SIGTERM or SIGINT; refuse to start when another daemon holds this database."""
    global _runner
    stopper = _Stopper()
    with _SignalWatcher(stopper.request):  # first of all, so a signal at any later moment is honoured
        release = ws.store.hold_lock(LOCK_NAME)
        if release is None:
            raise LockedError(
                "another `backlash run` is already running on this database; only one daemon may collect into it"
            )
        # Left in place after the stop: a job the executor had queued then finds it stopping and says so.
        _runner = JobRunner(ws, stopper.stop)
        try:
            _run_scheduler(ws, stopper)
            _wait_for_running_job(_runner)
        finally:
            release()
    log.info("daemon stopped")


def _run_scheduler(ws: Workspace, stopper: _Stopper) -> None:
    """Build the scheduler and block in it until a stop signal (at once when one came while starting up)."""
    specs = job_specs(ws.config)
    stored = stored_jobs(ws)
    log.info("%s", start_line(ws, specs, stored))
    abandoned = ws.store.abandon_unfinished_runs()
    if abandoned:
        log.info("marked %d run(s) left 'running' by a process that died as abandoned", abandoned)
    _quiet_scheduler_logs()
    scheduler = _build_scheduler(ws, specs, stored)
    stopper.watch(scheduler)
    if not stopper.stop.is_set():
        scheduler.start()


def start_line(ws: Workspace, specs: list[JobSpec], stored: dict[str, Any]) -> str:
    """The daemon's first log line: which version runs which config on which database, on what schedule."""
    from importlib.metadata import version

    jobs = "; ".join(f"{spec.id} {spec.schedule} ({_schedule_note(spec, stored.get(spec.id))})" for spec in specs)
    config = ws.config_file or "none (built in code)"
    return (
        f"backlash-monitor {version('backlash-monitor')} starting: config {config}; "
        f"database {ws.store.location()}; jobs: {jobs}"
    )


def _schedule_note(spec: JobSpec, stored: Any) -> str:
    return "next run kept from the job store" if _same_schedule(spec, stored) else "schedule set"


def _same_schedule(spec: JobSpec, stored: Any) -> bool:
    """Whether the job store holds this job with the same trigger (then its next run is kept)."""
    return stored is not None and _trigger_key(stored.trigger) == _trigger_key(spec.trigger)


class _Stopper:
    """Stops the daemon on a signal, whenever it comes: before, while or after the scheduler starts.

    APScheduler refuses shutdown() until start() has set it running (and start() first opens the job
    store, which takes a moment), so a signal in that gap waits for the scheduler's started event.
    """

    def __init__(self) -> None:
        self.stop = threading.Event()
        self.started = threading.Event()
        self.scheduler: Any = None

    def watch(self, scheduler: Any) -> None:
        from apscheduler.events import EVENT_SCHEDULER_STARTED

        self.scheduler = scheduler
        scheduler.add_listener(lambda _event: self.started.set(), EVENT_SCHEDULER_STARTED)

    def request(self, signal_name: str) -> None:
        """Called on the signal-watcher thread: stop starting jobs, then shut the scheduler down once it runs."""
        if self.stop.is_set():
            log.info("%s received again: already stopping", signal_name)
            return
        log.info(
            "%s received: stopping (the current page is finished or abandoned, the cursor stays consistent)",
            signal_name,
        )
        self.stop.set()
        self.started.wait()  # never set when the daemon stops before starting the scheduler: nothing to shut down
        self.scheduler.shutdown(wait=False)


def _quiet_scheduler_logs() -> None:
    """APScheduler's own two lines per run only below our one line, at DEBUG; its warnings (missed runs) stay."""
    if not log.isEnabledFor(logging.DEBUG):
        for name in ("apscheduler", "apscheduler.executors", "apscheduler.scheduler"):
            logging.getLogger(name).setLevel(logging.WARNING)


def _stoppable_scheduler_class() -> type:
    """BlockingScheduler whose main loop submits nothing once stopped.

    APScheduler 3's loop runs one more pass after shutdown() wakes it; with a job due at that moment it
    submits to the executor just shut down and logs a traceback. The job would not have run anyway.
    """
    from apscheduler.schedulers.base import STATE_STOPPED
    from apscheduler.schedulers.blocking import BlockingScheduler

    class StoppableScheduler(BlockingScheduler):
        def _process_jobs(self) -> float | None:
            if self.state == STATE_STOPPED:
                return None
            result: float | None = super()._process_jobs()
            return result

    return StoppableScheduler


def _build_scheduler(ws: Workspace, specs: list[JobSpec], stored: dict[str, Any]) -> Any:
    """A BlockingScheduler on the database job store with one worker, the config's jobs added or updated."""
    from apscheduler.executors.pool import ThreadPoolExecutor

    grace = int(ws.config.schedule.misfire_grace.total_seconds())
    scheduler = _stoppable_scheduler_class()(
        jobstores={"default": _open_job_store(ws)},
        # One job at a time: SQLite has one writer, and a report should see what the collect before it stored.
        executors={"default": ThreadPoolExecutor(max_workers=1)},
        job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": grace},
        timezone=ws.config.tz,
    )
    for spec in specs:
        _add_job(scheduler, spec, stored.get(spec.id))
    _remove_stale_jobs(ws, set(stored) - {spec.id for spec in specs})
    return scheduler


def _add_job(scheduler: Any, spec: JobSpec, stored: Any) -> None:
    """Add or replace the job; keep the stored next run when the schedule did not change, so a restart misses nothing."""
    options: dict[str, Any] = {}
    if _same_schedule(spec, stored) and stored.next_run_time is not None:
        options["next_run_time"] = stored.next_run_time
    elif spec.run_at_start:
        options["next_run_time"] = datetime.now(scheduler.timezone)
    scheduler.add_job(
        JOB_FUNCTION, spec.trigger, args=[spec.id], id=spec.id, name=spec.id, replace_existing=True, **options
    )


def _remove_stale_jobs(ws: Workspace, job_ids: set[str]) -> None:
    """Drop stored jobs this version or config no longer has (a renamed job would otherwise run forever)."""
    if not job_ids:
        return
    job_store = _open_job_store(ws)
    job_store.start(None, "default")
    for job_id in sorted(job_ids):
        job_store.remove_job(job_id)
        log.info("job %s: no longer configured, removed from the job store", job_id)


def _wait_for_running_job(runner: JobRunner) -> None:
    """Give the running job SHUTDOWN_GRACE seconds; past that, record it as abandoned and exit at once."""
    if runner.idle.wait(SHUTDOWN_GRACE):
        return
    log.warning(
        "a job was still running %.0fs after the stop signal; abandoning it (stored pages are kept)", SHUTDOWN_GRACE
    )
    runner.abandon()
    runner.ws.close()
    logging.shutdown()
    os._exit(0)  # the worker thread cannot be interrupted; every stored page is committed, so exiting is safe


class _SignalWatcher:
    """Turns SIGTERM and SIGINT into a call on a helper thread, so the handler itself takes no lock.

    The signal only writes its number to a pipe (signal.set_wakeup_fd); a thread reads it and runs
    `on_signal`, where taking the scheduler's locks is safe.
    """

    def __init__(self, on_signal: Callable[[str], None]) -> None:
        self.on_signal = on_signal
        self.read_fd, self.write_fd = os.pipe()
        os.set_blocking(self.write_fd, False)
        self.thread = threading.Thread(target=self._watch, name="signal-watcher", daemon=True)
        self.previous: dict[int, Any] = {}

    def __enter__(self) -> _SignalWatcher:
        # The wakeup fd before the handlers: a signal between the two would otherwise reach a handler that
        # does nothing and never reach the pipe.
        self.previous_fd = signal.set_wakeup_fd(self.write_fd, warn_on_full_buffer=False)
        for number in (signal.SIGTERM, signal.SIGINT):
            self.previous[number] = signal.signal(number, _ignore_signal)
        self.thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        for number, handler in self.previous.items():
            signal.signal(number, handler)
        signal.set_wakeup_fd(self.previous_fd)
        os.close(self.write_fd)

    def _watch(self) -> None:
        while True:
            data = os.read(self.read_fd, 1)
            if not data:
                os.close(self.read_fd)
                return
            if data[0] in (signal.SIGTERM, signal.SIGINT):
                self.on_signal(signal.Signals(data[0]).name)


def _ignore_signal(_number: int, _frame: Any) -> None:
    """The Python-level handler does nothing: the wakeup fd already told the watcher thread."""
