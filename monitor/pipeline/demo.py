"""`demo`: the whole pipeline on a simulated backlash in its own database, no credentials needed."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from monitor.config import Config
from monitor.pipeline.collect import SourceOutcome, _store_pages
from monitor.pipeline.mail import DigestResult, digest
from monitor.pipeline.report import report
from monitor.pipeline.score import ScoreResult, score
from monitor.pipeline.workspace import open_workspace

if TYPE_CHECKING:
    from monitor.report import ReportResult


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
