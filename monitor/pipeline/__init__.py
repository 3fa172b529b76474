"""The verbs (collect, import, export, score, report, digest, alerts, status, sample, validate, demo) that the CLI and the daemon call.

Each verb composes the modules below it and returns a result object; it never prints. Long work reports
progress through an optional callback so the CLI can draw a bar. cli.py and daemon.py import only from
here; each verb lives in its own module, and every run is recorded through runlog.recorded_run.
"""

from monitor.pipeline.archive import REJECTS_SHOWN, ImportResult, export_posts, export_series, import_archive
from monitor.pipeline.collect import CollectResult, SourceOutcome, collect, spend_this_month
from monitor.pipeline.demo import DemoResult, demo, demo_config
from monitor.pipeline.mail import (
    AlertResult,
    DigestResult,
    check_alerts,
    digest,
    send_alerts,
    send_digest,
    send_due_digests,
)
from monitor.pipeline.notify import send_chat_alerts
from monitor.pipeline.report import analyze_event, report
from monitor.pipeline.score import ScoreResult, count_unscored, score
from monitor.pipeline.status import StatusReport, status
from monitor.pipeline.validation import SampleResult, ValidationResult, sample_posts, validate_sample
from monitor.pipeline.workspace import ProgressCallback, Workspace, current_scorer, open_workspace, refuse_overwriting

__all__ = [
    "REJECTS_SHOWN", "AlertResult", "CollectResult", "DemoResult", "DigestResult", "ImportResult", "ProgressCallback",
    "SampleResult", "ScoreResult", "SourceOutcome", "ValidationResult", "StatusReport", "Workspace", "analyze_event", "check_alerts", "collect",
    "count_unscored", "current_scorer", "demo", "demo_config", "digest", "export_posts", "export_series", "import_archive",
    "open_workspace", "refuse_overwriting", "report", "sample_posts", "score", "send_alerts", "send_chat_alerts", "send_digest", "send_due_digests",
    "spend_this_month", "status", "validate_sample",
]  # fmt: skip
