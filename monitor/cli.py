"""The `backlash` command: arguments in, one pipeline call, output and exit codes out.

The only module that prints. Errors the tool expects (MonitorError) become one line on stderr
and exit code 2 (bad usage or config), 3 (partial success) or 1; never a traceback unless
BACKLASH_DEBUG=1.
"""

from __future__ import annotations

import functools
import logging
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import click

from monitor.errors import MonitorError

F = TypeVar("F", bound=Callable[..., Any])
EXIT_PARTIAL = 3


def echo_error(message: str) -> None:
    click.secho(f"error: {message}", fg="red", err=True)


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
        except Exception as error:  # noqa: BLE001 - the last line of defence; BACKLASH_DEBUG shows the trace
            if os.environ.get("BACKLASH_DEBUG"):
                raise
            echo_error(f"unexpected {error.__class__.__name__}: {error} (set BACKLASH_DEBUG=1 for details)")
            sys.exit(1)

    return wrapper  # type: ignore[return-value]


def setup_logging(level: str, log_file: str | None = None) -> None:
    """Timestamped lines on stderr (and optionally a rotating file); never the third-party debug noise."""
    from logging.handlers import RotatingFileHandler

    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if log_file:
        handlers.append(RotatingFileHandler(log_file, maxBytes=10_000_000, backupCount=5, encoding="utf-8"))
    formatter = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
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
    type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False),
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


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="backlash")
