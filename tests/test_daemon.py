"""`backlash run` as a real process against the fake X API: schedule, signals, crashes, outages, the lock.

Every outcome is polled for with a deadline; nothing sleeps a fixed time or asserts a duration
except the exit deadline after SIGTERM, which is the contract (exit 0 within 10 seconds).
"""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner
from sqlalchemy.engine import make_url

from monitor.cli import cli
from monitor.config import parse_config
from monitor.daemon import cron_trigger, crontab_weekdays
from monitor.errors import ConfigError
from monitor.store import Store, open_store
from tests.conftest import POSTGRES_URL, _reset_postgres
from tests.fake_x_api import FakeXApi, Fault, make_tweets

TOKEN = "AAAAAAAAAAAAAAAAAAAAADaemonBearer%2Fsecret%3D42"
EVENT = "instagram-tos-2012"
HOURLY_FROM = datetime(2012, 12, 11, tzinfo=UTC)  # an hourly post from inside the 7-day baseline on
DEADLINE = 20.0


@pytest.fixture
def api(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeXApi]:
    monkeypatch.setenv("X_BEARER_TOKEN", TOKEN)  # inherited by the daemon process
    with FakeXApi(token=TOKEN) as server:
        yield server


def write_daemon_config(folder: Path, api: FakeXApi, schedule: dict[str, Any] | None = None, **x: Any) -> Path:
    """One event collected from the fake X API every second; short retry waits."""
    document = {
        "database": f"sqlite:///{folder / 'data' / 'daemon.db'}",
        "events": [
            {
                "name": EVENT,
                "platform": "Instagram",
                "milestones": {"announced": "2012-12-17", "effective": "2013-01-16"},
                "query": "instagram terms",
                "sources": ["x"],
            }
        ],
        "sources": {"x": {"api_base": api.url, "backoff_base": 0.01, "retries": 1, **x}},
        "schedule": {"collect_every": "1s", "misfire_grace": "1m", **(schedule or {})},
    }
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    return path


class DaemonProcess:
    """`python -m monitor --config C run` with stderr in a file the test can read."""

    def __init__(self, config: Path, name: str = "daemon", options: tuple[str, ...] = ()) -> None:
        self.log = config.parent / f"{name}.log"
        self.handle = self.log.open("wb")
        command = [sys.executable, "-m", "monitor", "--config", str(config), "run", *options]
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=self.handle)

    def text(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")

    def stop(self, number: int = signal.SIGTERM) -> int:
        """Send the signal; return the exit code, which must come within 10 seconds."""
        self.process.send_signal(number)
        return self.process.wait(timeout=10)

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self.handle.close()


@pytest.fixture
def start_daemon() -> Iterator[Callable[..., DaemonProcess]]:
    started: list[DaemonProcess] = []

    def start(config: Path, name: str = "daemon", options: tuple[str, ...] = ()) -> DaemonProcess:
        started.append(DaemonProcess(config, name, options))
        return started[-1]

    yield start
    for daemon in started:
        daemon.kill()


def wait_for(condition: Callable[[], Any], what: str, daemon: DaemonProcess | None = None) -> Any:
    """Poll until condition() is truthy; fail with `what` (and the daemon's log) at the deadline."""
    deadline = time.monotonic() + DEADLINE
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        if daemon is not None and daemon.process.poll() is not None:
            pytest.fail(f"the daemon exited ({daemon.process.returncode}) while waiting for {what}:\n{daemon.text()}")
        time.sleep(0.05)
    pytest.fail(f"timed out waiting for {what}" + (f":\n{daemon.text()}" if daemon else ""))


def open_db(config: Path) -> Store:
    return open_store(parse_config(yaml.safe_load(config.read_text()), config.parent).database_url())


def stored_ids(store: Store) -> list[str]:
    return [row["post_id"] for chunk in store.iter_event_posts(EVENT) for row in chunk]


def tweet_ids(api: FakeXApi) -> list[str]:
    return sorted(tweet["id"] for tweet in api.tweets)


def report_coverage(summary: Path) -> dict[str, Any]:
    """The coverage section of a report's summary.json, empty until one is written."""
    if not summary.is_file():
        return {}
    return dict(json.loads(summary.read_text(encoding="utf-8"))["coverage"])


def job_runs(store: Store, status: str | None = None) -> list[Any]:
    runs = [run for run in store.recent_runs(1000) if run.verb == "job:collect"]
    return [run for run in runs if status in (None, run.status)]


# ---- the daemon as a process ---------------------------------------------------------------------


def test_collects_on_schedule_then_stops_cleanly_on_sigterm(
    tmp_path: Path, api: FakeXApi, start_daemon: Callable[..., DaemonProcess]
) -> None:
    api.add_tweets(make_tweets(250, start=HOURLY_FROM, every=timedelta(hours=1)))  # baseline days and the storm
    config = write_daemon_config(tmp_path, api, schedule={"report_cron": "*/2 * * * * *"})
    store = open_db(config)  # schema first: two processes creating it at once race
    daemon = start_daemon(config)
    wait_for(lambda: len(stored_ids(store)) == 250, "the first 250 posts", daemon)
    api.add_tweets(make_tweets(30, first=250, start=HOURLY_FROM, every=timedelta(hours=1)))  # while it runs
    wait_for(lambda: len(stored_ids(store)) == 280, "the 30 later posts", daemon)
    summary = tmp_path / "dashboards" / EVENT / "summary.json"
    wait_for(
        lambda: report_coverage(summary).items() >= {("posts", 280), ("scored", 280)},
        "a report of 280 scored posts",
        daemon,
    )

    assert daemon.stop(signal.SIGTERM) == 0
    assert sorted(stored_ids(store)) == tweet_ids(api)
    log = daemon.text()
    assert "job collect ok in" in log and "read 250, new 250" in log and "read 30, new 30" in log
    assert "job report ok in" in log and f"{EVENT} 280 posts, 280 scored → {summary.parent}" in log
    assert "SIGTERM received" in log and "daemon stopped" in log
    assert "Running job" not in log  # at INFO, our one line per job run, not the scheduler's two
    assert TOKEN not in log and "Traceback" not in log
    assert all(run.status == "ok" for run in job_runs(store)) and len(job_runs(store)) >= 2

    status = CliRunner().invoke(cli, ["--config", str(config), "status"])
    assert status.exit_code == 0, status.output
    assert "collect: every 1s, next 20" in status.output
    assert "last run: ok at" in status.output and "read 0, new 0" in status.output
    store.close()


def test_a_second_daemon_on_the_same_database_refuses_to_start(
    tmp_path: Path, api: FakeXApi, start_daemon: Callable[..., DaemonProcess]
) -> None:
    config = write_daemon_config(tmp_path, api)
    first = start_daemon(config)
    wait_for(lambda: "job collect ok" in first.text(), "the first daemon's first collect", first)

    second = start_daemon(config, name="second")
    assert second.process.wait(timeout=DEADLINE) == 1
    assert "another `backlash run` is already running on this database" in second.text()
    assert "Traceback" not in second.text()
    assert first.process.poll() is None  # the first one is untouched
    assert first.stop(signal.SIGINT) == 0


def test_sigkill_in_the_middle_of_a_collect_then_restart_loses_and_duplicates_nothing(
    tmp_path: Path, api: FakeXApi, start_daemon: Callable[..., DaemonProcess]
) -> None:
    api.latency = 0.03  # 30 pages of 100: the first collect takes about a second
    api.add_tweets(make_tweets(3000))
    config = write_daemon_config(tmp_path, api)
    store = open_db(config)
    daemon = start_daemon(config)
    wait_for(lambda: 0 < len(stored_ids(store)) < 3000, "a collect half done", daemon)
    daemon.process.kill()  # SIGKILL: no handler runs, no lock is released by us
    daemon.process.wait()
    stored_at_kill = len(stored_ids(store))
    assert 0 < stored_at_kill < 3000

    api.add_tweets(make_tweets(100, first=3000))  # and new posts while it was down
    restarted = start_daemon(config, name="restarted")
    wait_for(lambda: len(stored_ids(store)) == 3100, "every post after the restart", restarted)
    assert restarted.stop() == 0
    ids = stored_ids(store)
    assert len(ids) == len(set(ids)) == 3100
    assert sorted(ids) == tweet_ids(api)
    store.close()


def test_api_down_for_a_while_daemon_survives_and_catches_up(
    tmp_path: Path, api: FakeXApi, start_daemon: Callable[..., DaemonProcess]
) -> None:
    api.add_tweets(make_tweets(120))
    api.fail(Fault(status=503), times=6)  # retries=1: the first three collects each give up after two 503s
    config = write_daemon_config(tmp_path, api)
    store = open_db(config)
    daemon = start_daemon(config, options=("--log-level", "DEBUG", "--log-file", str(tmp_path / "logs" / "d.log")))
    wait_for(lambda: len(job_runs(store, "failed")) >= 3, "three failed collects", daemon)
    assert stored_ids(store) == []
    wait_for(lambda: len(stored_ids(store)) == 120, "the posts once the API is back", daemon)

    assert daemon.stop() == 0
    failed = job_runs(store, "failed")
    assert len(failed) == 3
    assert all("503" in (run.message or "") for run in failed)
    failure_lines = [line for line in daemon.text().splitlines() if "job collect failed" in line]
    assert len(failure_lines) == 3 and all("503" in line for line in failure_lines)
    rotating_file = (tmp_path / "logs" / "d.log").read_text(encoding="utf-8")
    assert rotating_file.count("job collect failed") == 3
    assert TOKEN not in daemon.text() and TOKEN not in rotating_file  # not even at DEBUG
    store.close()


def test_restart_keeps_the_stored_schedule_and_a_changed_schedule_replaces_it(
    tmp_path: Path, api: FakeXApi, start_daemon: Callable[..., DaemonProcess]
) -> None:
    config = write_daemon_config(tmp_path, api, schedule={"collect_every": "1h"})
    store = open_db(config)
    first = start_daemon(config)
    wait_for(lambda: len(job_runs(store, "ok")) == 1, "the collect at start", first)
    assert first.stop() == 0

    second = start_daemon(config, name="same-schedule")
    wait_for(lambda: "next run kept from the job store" in second.text(), "the kept schedule", second)
    assert second.stop() == 0
    assert len(job_runs(store)) == 1  # next run still an hour away: nothing ran again

    write_daemon_config(tmp_path, api, schedule={"collect_every": "2h"})
    third = start_daemon(config, name="new-schedule")
    wait_for(lambda: len(job_runs(store, "ok")) == 2, "a collect under the new schedule", third)
    assert third.stop() == 0
    assert "collect every 2h (schedule set)" in third.text()
    store.close()


@pytest.mark.parametrize(("moment", "number"), [("starting:", signal.SIGTERM), ("starting:", signal.SIGINT)])
def test_a_stop_signal_while_the_daemon_starts_up_is_honoured(
    tmp_path: Path,
    api: FakeXApi,
    start_daemon: Callable[..., DaemonProcess],
    moment: str,
    number: signal.Signals,
) -> None:
    """A signal sent as soon as the start line is logged (the scheduler not running yet) still stops it."""
    config = write_daemon_config(tmp_path, api, schedule={"collect_every": "1h"})
    open_db(config).close()
    daemon = start_daemon(config)
    deadline = time.monotonic() + DEADLINE
    while moment not in daemon.text() and time.monotonic() < deadline and daemon.process.poll() is None:
        time.sleep(0.001)
    assert moment in daemon.text(), daemon.text()
    assert daemon.stop(number) == 0, daemon.text()
    assert f"{number.name} received" in daemon.text() and "daemon stopped" in daemon.text()
    assert "Traceback" not in daemon.text()


# ---- the schedule from the config ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("crontab", "names"),
    [
        ("1-5", "mon,tue,wed,thu,fri"),
        ("0", "sun"),
        ("7", "sun"),
        ("0,6", "sun,sat"),
        ("5-7", "sun,fri,sat"),
        ("*/2", "sun,tue,thu,sat"),
        ("1-5/2", "mon,wed,fri"),
        ("mon-fri", "mon-fri"),
        ("*", "*"),
    ],
)
def test_crontab_weekdays_count_from_sunday(crontab: str, names: str) -> None:
    assert crontab_weekdays(crontab) == names


def test_cron_expressions_fire_when_crontab_says(tmp_path: Path) -> None:
    config = parse_config({"events": [{"name": "e", "platform": "P", "milestones": {"announced": "2020-01-01"}}]})
    saturday = datetime(2024, 6, 1, 12, 0, tzinfo=config.tz)  # 2024-06-01 was a Saturday
    weekdays = cron_trigger("0 8 * * 1-5", "schedule.digest_cron", config)
    assert weekdays.get_next_fire_time(None, saturday) == datetime(2024, 6, 3, 8, 0, tzinfo=config.tz)  # Monday
    every_two_seconds = cron_trigger("*/2 * * * * *", "schedule.report_cron", config)
    assert every_two_seconds.get_next_fire_time(None, saturday.replace(second=1)) == saturday.replace(second=2)
    with pytest.raises(ConfigError, match=r"schedule.report_cron: '0 \* \*' needs 5 fields"):
        cron_trigger("0 * *", "schedule.report_cron", config)
    with pytest.raises(ConfigError, match=r"schedule.digest_cron: hour '25' is outside 0-23"):
        cron_trigger("0 25 * * *", "schedule.digest_cron", config)


# ---- one daemon per database ---------------------------------------------------------------------


def test_the_daemon_lock_is_exclusive_until_released(store: Store) -> None:
    other = Store(open_store(str(store.engine.url.render_as_string(hide_password=False))).engine)
    release = store.hold_lock("daemon")
    assert release is not None
    assert other.hold_lock("daemon") is None  # another connection (another process) is refused
    release()
    release_other = other.hold_lock("daemon")
    assert release_other is not None
    release_other()
    other.close()


@pytest.mark.skipif(not POSTGRES_URL, reason="set BACKLASH_TEST_DATABASE_URL to run the daemon on PostgreSQL")
def test_daemon_on_postgresql_collects_and_excludes_a_second_one(
    tmp_path: Path, api: FakeXApi, start_daemon: Callable[..., DaemonProcess]
) -> None:
    assert POSTGRES_URL is not None
    _reset_postgres(POSTGRES_URL)
    api.add_tweets(make_tweets(150))
    config = write_daemon_config(tmp_path, api)
    document = yaml.safe_load(config.read_text())
    url = make_url(POSTGRES_URL)  # with a password (a trusting server ignores it) that the log must not show
    password = url.password or "daemon-database-secret"
    config.write_text(yaml.safe_dump({**document, "database": url.set(password=password).render_as_string(False)}))
    store = open_store(POSTGRES_URL)
    first = start_daemon(config)
    wait_for(lambda: len(stored_ids(store)) == 150, "the posts in PostgreSQL", first)
    assert f"database postgresql+psycopg://{url.username}:***@{url.host}:{url.port}/{url.database};" in first.text()
    assert str(password) not in first.text()
    second = start_daemon(config, name="second")
    assert second.process.wait(timeout=DEADLINE) == 1
    assert "another `backlash run` is already running on this database" in second.text()
    assert first.stop() == 0
    status = CliRunner().invoke(cli, ["--config", str(config), "status"])
    assert "collect: every 1s, next 20" in status.output, status.output
    store.close()


def test_status_before_the_daemon_ever_ran(tmp_path: Path, api: FakeXApi) -> None:
    config = write_daemon_config(tmp_path, api)
    result = CliRunner().invoke(cli, ["--config", str(config), "status"])
    assert result.exit_code == 0, result.output
    assert "collect: every 1s, not scheduled (start `backlash run`)" in result.output
    assert "last run: none" in result.output


def test_sigterm_during_a_slow_collect_stops_after_the_page_and_the_restart_resumes(
    tmp_path: Path, api: FakeXApi, start_daemon: Callable[..., DaemonProcess]
) -> None:
    api.latency = 0.2  # 20 pages: a collect of four seconds
    api.add_tweets(make_tweets(2000))
    config = write_daemon_config(tmp_path, api)
    store = open_db(config)
    daemon = start_daemon(config)
    wait_for(lambda: 0 < len(stored_ids(store)) < 1000, "a collect under way", daemon)
    assert daemon.stop(signal.SIGTERM) == 0
    assert 0 < len(stored_ids(store)) < 2000
    assert "stopped on request; the next run resumes" in (job_runs(store)[0].message or "")

    restarted = start_daemon(config, name="restarted")
    wait_for(lambda: len(stored_ids(store)) == 2000, "the rest of the posts", restarted)
    assert restarted.stop() == 0
    assert sorted(stored_ids(store)) == tweet_ids(api)
    store.close()


def test_the_first_line_names_version_config_database_and_schedule_and_a_failed_digest_is_logged_once(
    tmp_path: Path, api: FakeXApi, start_daemon: Callable[..., DaemonProcess]
) -> None:
    api.add_tweets(make_tweets(50, start=HOURLY_FROM, every=timedelta(hours=1)))
    config = write_daemon_config(tmp_path, api, schedule={"collect_every": "1h", "digest_cron": "*/2 * * * * *"})
    with socket.socket() as probe:  # a port nothing listens on: the SMTP server is down
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    email = {"smtp_host": "127.0.0.1", "smtp_port": port, "security": "none", "sender": "m@example.org"}
    config.write_text(
        yaml.safe_dump({**yaml.safe_load(config.read_text()), "email": {**email, "recipients": ["t@example.org"]}})
    )
    daemon = start_daemon(config)
    wait_for(lambda: daemon.text().count("job digest failed") >= 2, "two failed digests", daemon)
    assert daemon.stop() == 0
    lines = [line for line in daemon.text().splitlines() if " monitor" in line or " apscheduler" in line]
    assert lines[0].endswith(
        f"INFO monitor.daemon: backlash-monitor {version('backlash-monitor')} starting: config {config}; "
        f"database sqlite:///{tmp_path / 'data' / 'daemon.db'}; jobs: collect every 1h (schedule set); "
        "report cron 0 * * * * (schedule set); digest cron */2 * * * * * (schedule set)"
    )
    refused = [line for line in lines if f"127.0.0.1:{port}" in line]
    assert len(refused) >= 2 and all("ERROR monitor.daemon: job digest failed in " in line for line in refused)
    errors = [line for line in lines if " ERROR " in line]
    assert errors == refused  # nothing else is an error: no second line per failure, none after the stop


def test_a_digest_arrives_by_smtp(
    tmp_path: Path, api: FakeXApi, smtp_server: Any, start_daemon: Callable[..., DaemonProcess]
) -> None:
    api.add_tweets(make_tweets(250, start=HOURLY_FROM, every=timedelta(hours=1)))
    schedule = {"report_cron": "*/2 * * * * *", "digest_cron": "*/2 * * * * *"}
    config = write_daemon_config(tmp_path, api, schedule=schedule)
    document = yaml.safe_load(config.read_text())
    email = smtp_server.email_settings(recipients=["team@example.org"])
    config.write_text(yaml.safe_dump({**document, "email": email}))
    store = open_db(config)
    daemon = start_daemon(config)
    wait_for(lambda: smtp_server.messages, "a digest email", daemon)
    assert daemon.stop() == 0
    message = smtp_server.messages[0]
    assert message["To"] == "team@example.org"
    assert "job digest ok" in daemon.text() and "instagram-tos-2012 sent" in daemon.text()
    store.close()
