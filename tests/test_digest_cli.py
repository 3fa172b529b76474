"""`backlash digest` end to end: import an archive, score, mail the digest to a real SMTP server on 127.0.0.1."""

from __future__ import annotations

import csv
import re
import struct
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from monitor.cli import cli

pytestmark = pytest.mark.skipif(
    "score" not in cli.commands,  # type: ignore[attr-defined]
    reason="needs `backlash score` and pipeline.analyze_event (scoring branch)",
)
EVENT = "instagram-tos-2012"
PASSWORD = "s3cret-Pa55"
CALM = ["Posted a new photo on Instagram today", "Love the filters on Instagram", "Instagram sunset pics, lovely"]
ANGRY = [
    "Instagram wants to sell my photos? Disgusting. I hate this #boycottinstagram",
    "Deleting my Instagram account today, terrible new terms",
    "<script>alert(1)</script> <img src=x onerror=alert(1)> Instagram terms are awful 😡",
]


def write_archive(path: Path) -> Path:
    """Six calm posts a day in the baseline week, then up to forty angry posts an hour on 17 December."""
    rows = []
    start = datetime(2012, 12, 10, tzinfo=UTC)
    for day in range(7):
        for n in range(6):
            rows.append((start + timedelta(days=day, hours=3 * n), CALM[n % 3], f"calm{n}"))
    storm = datetime(2012, 12, 17, 10, tzinfo=UTC)
    for hour in range(13):
        for n in range(40 if hour < 8 else 10):
            rows.append((storm + timedelta(hours=hour, minutes=n), ANGRY[n % 3], f"angry{n}"))
    rows.append((datetime(2012, 12, 18, 0, 30, tzinfo=UTC), CALM[0], "late"))  # so the 17th is a whole day
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["created_at", "text", "author"])
        writer.writerows((moment.isoformat(), text, author) for moment, text, author in rows)
    return path


@pytest.fixture
def scored_config(tmp_path: Path, write_config: Callable[..., Path], smtp_server: Any) -> Path:
    config = write_config(email=smtp_server.email_settings())
    runner = CliRunner()
    archive = write_archive(tmp_path / "posts.csv")
    assert runner.invoke(cli, ["--config", str(config), "import", str(archive), "--event", EVENT]).exit_code == 0
    assert runner.invoke(cli, ["--config", str(config), "score"]).exit_code == 0
    return config


def digest_command(config: Path, *options: str) -> Any:
    return CliRunner().invoke(cli, ["--config", str(config), "digest", *options])


def test_digest_is_sent_once_per_period_and_force_sends_again(scored_config: Path, smtp_server: Any) -> None:
    first = digest_command(scored_config)
    assert first.exit_code == 0, first.output
    assert f"{EVENT}: sent — Instagram terms of service change — " in first.output
    [message] = smtp_server.messages
    html = message.get_body(("html",)).get_content()  # type: ignore[union-attr]
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html and "<script" not in html
    second = digest_command(scored_config)
    assert second.exit_code == 0 and f"{EVENT}: skipped — 2012-12-17 already sent" in second.output
    assert len(smtp_server.envelopes) == 1
    assert digest_command(scored_config, "--force").exit_code == 0
    assert len(smtp_server.envelopes) == 2


def test_server_down_exits_1_without_the_password_and_the_next_run_sends(
    scored_config: Path, smtp_server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SMTP_USER", "alice")
    monkeypatch.setenv("SMTP_PASSWORD", PASSWORD)
    smtp_server.stop()
    down = digest_command(scored_config)
    assert down.exit_code == 1
    assert "error: instagram-tos-2012: failed — cannot send email through 127.0.0.1:" in down.output
    assert "connection refused" in down.output and PASSWORD not in down.output and "Traceback" not in down.output
    back = type(smtp_server)(port=smtp_server.port, credentials=("alice", PASSWORD)).start()
    try:
        assert digest_command(scored_config).exit_code == 0
        assert len(back.envelopes) == 1
    finally:
        back.stop()


def test_dry_run_prints_the_eml_path(scored_config: Path, smtp_server: Any, tmp_path: Path) -> None:
    result = digest_command(scored_config, "--dry-run")
    assert result.exit_code == 0
    path = tmp_path / "dashboards" / EVENT / "digest-2012-12-17.eml"
    assert f"→ {path}" in result.output and path.is_file()
    assert smtp_server.envelopes == []


def png_size(data: bytes) -> tuple[int, int]:
    """Width and height from a PNG's signature and IHDR chunk."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def test_a_digest_before_any_report_carries_a_mail_sized_chart_drawn_from_its_analysis(
    scored_config: Path, smtp_server: Any, tmp_path: Path
) -> None:
    chart = tmp_path / "dashboards" / EVENT / "timeline.png"
    assert not chart.exists()  # imported and scored, never reported
    assert digest_command(scored_config).exit_code == 0
    [message] = smtp_server.messages
    html_part = message.get_body(("html",))
    assert html_part is not None
    [image] = [part for part in message.walk() if part.get_content_type() == "image/png"]
    assert png_size(image.get_content()) == (640, 420)  # made for ~600 px, not the report's 1600 x 900 scaled down
    assert f'src="cid:{image["Content-ID"].strip("<>")}"' in html_part.get_content()


def test_the_text_part_shows_the_timeline_day_by_day(scored_config: Path, smtp_server: Any) -> None:
    assert digest_command(scored_config).exit_code == 0
    received = smtp_server.messages[0].get_body(("plain",)).get_content()  # type: ignore[union-attr]
    text = received.replace("\r\n", "\n")
    assert "Day by day (the timeline chart is in the HTML version):" in text
    days = re.findall(r"^[ *] \w{3} \d+ Dec .*$", text, re.MULTILINE)
    assert len(days) == 7  # the digest's day and the six before it
    # six calm posts a day, none negative, the tone positive; one mark for a quiet day (6 / 370 of the bar)
    for day in ("Tue 11", "Wed 12", "Thu 13", "Fri 14", "Sat 15", "Sun 16"):
        assert re.search(rf"^  {day} Dec +6 +\+0\.\d\d +0\u00a0% +#$", text, re.MULTILINE), day
    # the storm day: 8 hours of 40 angry posts and 5 of 10, all negative, the full bar, the milestone named
    assert re.search(r"^\* Mon 17 Dec +370 +−0\.\d\d +100\u00a0% +#{24}  announced$", text, re.MULTILINE)


def test_a_folded_yaml_title_is_one_line_in_the_subject(
    tmp_path: Path, write_config: Callable[..., Path], smtp_server: Any
) -> None:
    """`title: >` ends in a newline (and may fold lines): the digest still goes out, the subject on one line."""
    from .conftest import BASE_CONFIG

    event = {
        **BASE_CONFIG["events"][0],
        "title": "Instagram terms\n  of\tservice change\n",
        "platform": "Insta\ngram\n",
    }
    email = smtp_server.email_settings(sender=" monitor@example.org\n", recipients=["team@example.org\n"])
    config = write_config(events=[event], email=email)
    archive = write_archive(tmp_path / "posts.csv")
    assert CliRunner().invoke(cli, ["--config", str(config), "import", str(archive), "--event", EVENT]).exit_code == 0
    result = digest_command(config)
    assert result.exit_code == 0, result.output
    [message] = smtp_server.messages
    assert message["Subject"].startswith("Instagram terms of service change — ")
    assert message["From"] == "monitor@example.org" and message["To"] == "team@example.org"


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_two_digest_runs_started_together_send_one_email(
    tmp_path: Path, write_config: Callable[..., Path], make_smtp_server: Callable[..., Any], backend: str
) -> None:
    """Real `backlash digest` processes, started at once against a relay that takes a second to accept: one email."""
    import subprocess
    import sys

    from .conftest import POSTGRES_URL, _reset_postgres

    if backend == "postgresql" and not POSTGRES_URL:
        pytest.skip("PostgreSQL: set BACKLASH_TEST_DATABASE_URL")
    archive = write_archive(tmp_path / "posts.csv")
    for trial in range(3):
        server = make_smtp_server(data_delay=1.0)
        if backend == "postgresql":
            assert POSTGRES_URL is not None
            _reset_postgres(POSTGRES_URL)
        database = POSTGRES_URL if backend == "postgresql" else f"sqlite:///{tmp_path / f'trial{trial}.db'}"
        config = write_config(database=database, email=server.email_settings())
        for args in (["import", str(archive), "--event", EVENT], ["score", "--workers", "1"]):
            assert CliRunner().invoke(cli, ["--config", str(config), *args]).exit_code == 0
        command = [sys.executable, "-m", "monitor", "--config", str(config), "digest"]
        runs = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for _ in "ab"]
        outputs = [run.communicate(timeout=120)[0] for run in runs]
        assert [run.returncode for run in runs] == [0, 0], outputs
        assert len(server.envelopes) == 1, (trial, outputs)
        assert sorted(output.split(":")[1].split("—")[0].strip() for output in outputs) == ["sent", "skipped"]
        server.stop()


class HostileSmtp:
    """A 'mail server' on 127.0.0.1 that never ends its greeting: `220-` lines, as fast as it can or slowly."""

    def __init__(self, pause: float) -> None:
        import socketserver
        import threading
        import time

        class Flood(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                chunk = b"220-welcome to the mail server that never stops greeting you\r\n" * (1 if pause else 1000)
                try:
                    while True:
                        self.request.sendall(chunk)
                        if pause:
                            time.sleep(pause)
                except OSError:
                    return  # the client hung up

        self.server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Flood)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def peak_rss_mb(pid: int) -> float:
    """The process's peak resident memory so far (VmHWM), 0 once it has gone."""
    try:
        status = Path(f"/proc/{pid}/status").read_text(encoding="utf-8")
    except OSError:
        return 0.0
    match = re.search(r"^VmHWM:\s+(\d+) kB", status, re.MULTILINE)
    return int(match.group(1)) / 1024 if match else 0.0


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads memory from /proc")
@pytest.mark.parametrize(("pause", "expected"), [(0.0, "reply went past 64 KB"), (0.05, "did not finish within 4s")])
def test_a_server_that_never_ends_its_greeting_fails_the_digest_in_bounded_time_and_memory(
    tmp_path: Path, write_config: Callable[..., Path], pause: float, expected: str
) -> None:
    import subprocess
    import sys
    import time

    hostile = HostileSmtp(pause)
    try:
        email = {"smtp_host": "127.0.0.1", "smtp_port": hostile.port, "security": "none", "timeout": "1s"}
        config = write_config(email={**email, "recipients": ["team@example.org"]})
        archive = write_archive(tmp_path / "posts.csv")
        for args in (["import", str(archive), "--event", EVENT], ["score", "--workers", "1"]):
            assert CliRunner().invoke(cli, ["--config", str(config), *args]).exit_code == 0
        command = [sys.executable, "-m", "monitor", "--config", str(config), "digest"]
        started = time.monotonic()
        digest = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        peak = 0.0
        while digest.poll() is None and time.monotonic() - started < 60 and peak < 500:
            peak = max(peak, peak_rss_mb(digest.pid))
            time.sleep(0.05)
        if digest.poll() is None:
            digest.kill()
        out, err = digest.communicate()
        took = time.monotonic() - started
    finally:
        hostile.stop()
    assert peak < 500, f"{peak:.0f} MB"
    assert took < 45, f"{took:.0f}s"
    assert digest.returncode == 1, err
    line = err.splitlines()[-1]
    assert line.startswith(f"error: {EVENT}: failed — cannot send email through 127.0.0.1:{hostile.port} (none): ")
    assert expected in line


def test_a_report_keeps_the_eml_files_that_a_dry_run_wrote(scored_config: Path, tmp_path: Path) -> None:
    assert digest_command(scored_config, "--dry-run", "--force").exit_code == 0
    path = tmp_path / "dashboards" / EVENT / "digest-2012-12-17.eml"
    written = path.read_bytes()
    report = CliRunner().invoke(cli, ["--config", str(scored_config), "report"])
    assert report.exit_code == 0, report.output
    assert path.read_bytes() == written
    assert (tmp_path / "dashboards" / EVENT / "index.html").is_file()
