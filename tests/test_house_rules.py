"""The house plan's rules, checked on the code itself: who may import what, who may print."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "monitor"
MODULES = sorted(PACKAGE.rglob("*.py"))

# third-party package → the only module allowed to import it
SOLE_IMPORTERS = {
    "sqlalchemy": {"store.py"},
    "tweepy": {"sources/x.py"},
    "matplotlib": {"plots.py"},
    "smtplib": {"digest.py"},
    "apscheduler": {"daemon.py"},
    "atproto": {"sources/bluesky.py"},
    "atproto_client": {"sources/bluesky.py"},
    "websockets": {"sources/bluesky.py"},
    "mastodon": {"sources/mastodon.py"},
    "praw": {"sources/reddit.py"},
    "prawcore": {"sources/reddit.py"},
    "dask": {"dask_engine.py"},
    "distributed": {"dask_engine.py"},
    "pyarrow": {"parquet.py"},
    "pycld2": {"language.py"},
    "apprise": {"chat.py"},
}


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def relative(path: Path) -> str:
    return path.relative_to(PACKAGE).as_posix()


@pytest.mark.parametrize("package", sorted(SOLE_IMPORTERS))
def test_each_sdk_is_imported_in_one_module(package: str) -> None:
    importers = {relative(p) for p in MODULES if any(m.split(".")[0] == package for m in imported_modules(p))}
    assert importers <= SOLE_IMPORTERS[package], f"{package} imported by {sorted(importers)}"


def test_only_cli_prints() -> None:
    offenders = []
    for path in MODULES:
        if relative(path) == "cli.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "print":
                offenders.append(f"{relative(path)}:{node.lineno}")
    assert not offenders


def test_analysis_does_no_io() -> None:
    path = PACKAGE / "analysis.py"
    imports = {m.split(".")[0] for m in imported_modules(path)} | set(imported_modules(path))
    assert not imports & {"monitor.store", "monitor.plots", "sqlalchemy", "matplotlib", "requests", "smtplib"}


def test_project_does_not_depend_on_shared_folder() -> None:
    for path in [*MODULES, *ROOT.glob("tests/*.py"), ROOT / "Makefile", ROOT / ".ci" / "run"]:
        if path.exists() and path.name != "test_house_rules.py":
            assert "../shared" not in path.read_text(encoding="utf-8"), path


def test_help_is_instant_and_lists_every_command() -> None:
    """`backlash --help` must not import the heavy stack (pandas, matplotlib, tweepy)."""
    code = (
        "import sys; from click.testing import CliRunner; from monitor.cli import cli; "
        "r = CliRunner().invoke(cli, ['--help']); print(r.output); "
        "heavy = [m for m in ('pandas', 'matplotlib', 'tweepy', 'sqlalchemy', 'vaderSentiment') if m in sys.modules]; "
        "print('HEAVY', heavy)"
    )
    output = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "HEAVY []" in output
    for command in ("import", "export", "status"):
        assert f"  {command}" in output


def test_every_command_has_help_with_an_example() -> None:
    from click.testing import CliRunner

    from monitor.cli import cli

    for name, command in cli.commands.items():  # type: ignore[attr-defined]
        result = CliRunner().invoke(cli, [name, "--help"])
        assert result.exit_code == 0, name
        assert command.help and "Example" in command.help, f"`backlash {name} --help` needs an example"


def test_every_cli_line_goes_out_through_echo() -> None:
    """cli.echo / echo_error mask known secrets: a direct click.echo elsewhere would bypass them."""
    tree = ast.parse((PACKAGE / "cli.py").read_text(encoding="utf-8"))
    offenders = []
    for function in ast.walk(tree):
        if isinstance(function, ast.FunctionDef) and function.name not in ("echo", "echo_error"):
            for node in ast.walk(function):
                called = node.func if isinstance(node, ast.Call) else None
                if isinstance(called, ast.Attribute) and called.attr in ("echo", "secho"):
                    offenders.append(f"cli.py:{node.lineno} {function.name}")
    assert not offenders


def test_cli_and_daemon_call_the_verbs_through_the_pipeline_package() -> None:
    """The verbs' modules may move or split; cli.py and daemon.py only know `monitor.pipeline` itself."""
    for name in ("cli.py", "daemon.py"):
        inner = [m for m in imported_modules(PACKAGE / name) if m.startswith("monitor.pipeline.")]
        assert not inner, f"{name} imports {inner}"
