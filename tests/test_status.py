"""`backlash status`: counts, the month's X spend against the budget, the last runs."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner

from monitor.cli import cli
from monitor.pipeline import open_workspace
from monitor.store import SCHEMA_VERSION

from .conftest import BASE_CONFIG


def test_status_shows_spend_against_budget_and_runs(write_config: Callable[..., Path]) -> None:
    event = {**BASE_CONFIG["events"][0], "sources": ["x"]}
    config = write_config(events=[event], sources={"x": {"monthly_post_budget": 1000}})
    ws = open_workspace(config)
    run = ws.store.start_run("collect", event["name"], "x")
    ws.store.finish_run(run, "ok", posts_read=250, posts_new=240, cost_usd=1.25)
    ws.close()
    result = CliRunner().invoke(cli, ["--config", str(config), "status"])
    assert result.exit_code == 0, result.output
    assert "X this month: 250 of 1000 posts read (25% of the budget), estimated $1.25" in result.output
    assert "collect instagram-tos-2012 x: ok" in result.output
    assert "read 250, new 240, $1.25" in result.output


def test_a_database_from_a_newer_version_is_refused_in_one_line(write_config: Callable[..., Path]) -> None:
    config = write_config()
    ws = open_workspace(config)
    with ws.store.engine.begin() as conn:
        conn.exec_driver_sql(f"UPDATE meta SET value = '{SCHEMA_VERSION + 1}' WHERE key = 'schema_version'")
    ws.close()
    result = CliRunner().invoke(cli, ["--config", str(config), "status"])
    assert result.exit_code == 1
    assert result.output == (
        f"error: database schema version {SCHEMA_VERSION + 1} is newer than this program's {SCHEMA_VERSION}; "
        "upgrade backlash\n"
    )


@pytest.mark.parametrize("command", [["status"], ["collect"], ["score", "--workers", "1"]])
def test_a_closed_pipe_ends_any_command_quietly(write_config: Callable[..., Path], command: list[str]) -> None:
    """`backlash status | head`: the reader is gone before the command writes; no error line, no traceback."""
    config = write_config()
    reader, writer = os.pipe()
    os.close(reader)
    try:
        done = subprocess.run(
            [sys.executable, "-m", "monitor", "--config", str(config), *command],
            stdout=writer, stderr=subprocess.PIPE, text=True, timeout=120,
        )  # fmt: skip
    finally:
        os.close(writer)
    assert done.stderr == ""
    assert done.returncode == 1
