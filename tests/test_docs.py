"""The README stays honest: every setting and every command is documented."""

from __future__ import annotations

from pathlib import Path

from monitor.cli import cli
from monitor.config import settings_reference

README = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")


def test_every_setting_is_in_the_readme() -> None:
    missing = [path for path, _, _ in settings_reference() if f"`{path}`" not in README]
    assert not missing, f"settings missing from README: {missing}"


def test_every_command_is_in_the_readme() -> None:
    missing = [name for name in cli.commands if f"### `{name}" not in README]  # type: ignore[attr-defined]
    assert not missing, f"commands missing from README: {missing}"
