"""The docs stay honest: every setting, command and option is documented, every page is reachable from the
README, every relative link resolves, every YAML example is a valid config, and the `console` examples in
the README walkthrough and in docs/commands.md run through the real `backlash` and print what they show."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from monitor.cli import cli
from monitor.config import load_config, settings_reference

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
DOCS = ROOT / "docs"
PAGES = sorted(DOCS.glob("*.md"))
EXPECTED_PAGES = {
    "architecture", "benchmarks", "commands", "configuration", "numbers", "operations", "scale", "sources",
}  # fmt: skip
FENCE = re.compile(r"^```([^\n]*)\n(.*?)^```", re.MULTILINE | re.DOTALL)
LINK = re.compile(r"\]\(([^)\s]+)\)")
ELLIPSIS = "…"  # in example output: whatever differs between runs (folders, times, keys)


def text(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def blocks(path: Path) -> list[tuple[list[str], str]]:
    """The fenced code blocks of a Markdown file: (info words, body), in order."""
    return [(info.split(), body) for info, body in FENCE.findall(text(path))]


def test_docs_pages_are_the_expected_set() -> None:
    assert {page.stem for page in PAGES} == EXPECTED_PAGES


def test_every_setting_is_in_the_configuration_table_with_its_real_default() -> None:
    table = dict(re.findall(r"(?m)^\| `([^`]+)` \| ([^|]*) \|", text(DOCS / "configuration.md")))
    missing = [path for path, _, _ in settings_reference() if path not in table]
    assert not missing, f"settings missing from docs/configuration.md: {missing}"
    wrong = [
        (path, table[path].strip(), default)
        for path, default, _ in settings_reference()
        if table[path].strip() != (f"`{default}`" if default else "")
    ]
    assert not wrong, f"documented default differs from the real one: {wrong}"


def test_every_command_and_option_is_in_the_commands_page() -> None:
    headings = re.findall(r"(?m)^### `(\w+)(.*)$", text(DOCS / "commands.md"))
    documented = {name: rest for name, rest in headings}
    for name, command in cli.commands.items():  # type: ignore[attr-defined]
        assert name in documented, f"docs/commands.md has no heading for `{name}`"
        options = [opt for param in command.params for opt in param.opts if opt.startswith("--")]
        shown = set(re.findall(r"--[\w-]+", documented[name]))  # whole names: --format is not in --date-format
        missing = [opt for opt in options if opt not in shown]
        assert not missing, f"the `{name}` heading lacks {missing}"


def test_every_docs_page_is_linked_from_the_readme() -> None:
    links = set(LINK.findall(text(README)))
    missing = [page.name for page in PAGES if f"docs/{page.name}" not in links]
    assert not missing, f"README does not link {missing}"


@pytest.mark.parametrize("page", [README, *PAGES], ids=lambda page: page.name)
def test_every_relative_link_resolves_to_a_file(page: Path) -> None:
    relative = [link for link in LINK.findall(text(page)) if not re.match(r"[a-z]+:", link)]
    with_anchor = [link for link in relative if "#" in link]
    assert not with_anchor, f"{page.name}: anchors break when headings change: {with_anchor}"
    broken = [link for link in relative if not (page.parent / link).exists()]
    assert not broken, f"{page.name}: links to missing files: {broken}"


def test_every_yaml_example_is_a_valid_config(tmp_path: Path) -> None:
    """Whole configs are loaded as they are; a fragment (one section) is laid over the documented shape."""
    shape = next(yaml.safe_load(body) for info, body in blocks(DOCS / "configuration.md") if info == ["yaml"])
    examples = [(page, body) for page in [README, *PAGES] for info, body in blocks(page) if info[:1] == ["yaml"]]
    assert len(examples) >= 4
    for number, (page, body) in enumerate(examples):
        document = yaml.safe_load(body)
        whole = document if "events" in document else merged(shape, document)
        path = tmp_path / f"{page.stem}-example-{number}.yaml"  # the error names the page
        path.write_text(yaml.safe_dump(whole), encoding="utf-8")
        load_config(path)  # a ConfigError names the field


def merged(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    result = dict(base)
    for key, value in over.items():
        both_dicts = isinstance(value, dict) and isinstance(base.get(key), dict)
        result[key] = merged(base[key], value) if both_dicts else value
    return result


@pytest.mark.slow
def test_the_readme_walkthrough_runs_and_writes_what_it_promises(tmp_path: Path) -> None:
    workspace = prepared_workspace(tmp_path)
    promised = run_console_blocks(README, workspace)
    event = workspace / "dashboards" / "lumigram-terms"
    for name in ("index.html", "timeline.png", "timeline-small.png", "summary.json", "digest-2025-03-16.eml"):
        assert (event / name).is_file(), name
    assert len(promised) >= 8
    for path in promised:
        assert (workspace / path).is_file(), path


@pytest.mark.slow
def test_the_examples_in_the_commands_page_run_and_print_what_they_show(tmp_path: Path) -> None:
    workspace = prepared_workspace(tmp_path)
    promised = run_console_blocks(DOCS / "commands.md", workspace)
    assert (workspace / "demo" / "data" / "demo-config.yaml").is_file()
    assert (workspace / "lumigram-scored.csv").read_text(encoding="utf-8").count("\n") == 201  # header + 200
    assert (workspace / "lumigram-days.csv").read_text(encoding="utf-8").count("\n") == 22  # header + 21 days
    for path in promised:
        assert (workspace / path).is_file(), path


def prepared_workspace(tmp_path: Path) -> Path:
    """A fresh folder as a newcomer's repository: examples/ and the files the README tells them to write."""
    shutil.copytree(ROOT / "examples", tmp_path / "examples")
    for info, body in blocks(README):
        if len(info) == 2 and info[0] == "yaml":
            (tmp_path / info[1]).write_text(body, encoding="utf-8")
    return tmp_path


def run_console_blocks(page: Path, workspace: Path) -> list[str]:
    """Run every `$ ` line of the page's console blocks in order; check exit 0 and the output shown.

    Returns the workspace paths the shown output names (`…/dashboards/x/index.html` → dashboards/x/index.html).
    """
    environment = {k: v for k, v in os.environ.items() if k not in ("BACKLASH_CONFIG", "BACKLASH_DEBUG")}
    steps = [step for info, body in blocks(page) if info == ["console"] for step in console_steps(body)]
    assert steps, f"{page.name} has no console example"
    promised: list[str] = []
    for command, shown in steps:
        words = shlex.split(command)
        if words[0] == "export":
            name, _, value = words[1].partition("=")
            environment[name] = value
            continue
        assert words[0] == "backlash", f"{page.name}: examples run `backlash` only: {command}"
        result = subprocess.run(
            [*backlash_command(), *words[1:]],
            cwd=workspace,
            env=environment,
            capture_output=True,
            text=True,
            timeout=600,
        )
        output = (result.stdout + result.stderr).splitlines()
        assert result.returncode == 0, f"{page.name}: `{command}` exited {result.returncode}:\n" + "\n".join(output)
        assert_shows(output, shown, f"{page.name}: `{command}`")
        promised += [path for line in shown for path in re.findall(ELLIPSIS + r"/(\S+\.\w+)$", line)]
    return promised


def console_steps(body: str) -> list[tuple[str, list[str]]]:
    """A console block → (command, the output lines shown under it)."""
    steps: list[tuple[str, list[str]]] = []
    for line in body.splitlines():
        if line.startswith("$ "):
            steps.append((line[2:], []))
        elif line.strip():
            steps[-1][1].append(line)
    return steps


def assert_shows(output: list[str], shown: list[str], where: str) -> None:
    """Each shown line matches an output line, in order; `…` matches anything, a no-break space is a space."""
    remaining = (plain(actual) for actual in output)
    for line in shown:
        pattern = re.compile(".*".join(re.escape(part) for part in plain(line).split(ELLIPSIS)))
        if not any(pattern.fullmatch(actual) for actual in remaining):
            pytest.fail(f"{where}: no output line like {line!r} (in order) in:\n" + "\n".join(output))


def plain(line: str) -> str:
    return line.replace("\u00a0", " ").replace("\u202f", " ").rstrip()


def backlash_command() -> list[str]:
    """The installed `backlash` beside this Python (the venv's), else the same CLI as a module."""
    script = Path(sys.executable).with_name("backlash")
    return [str(script)] if script.exists() else [sys.executable, "-m", "monitor"]
