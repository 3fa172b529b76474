"""Keeps secrets (tokens, passwords, sessions) out of every log record, CLI line and run-log message.

One registry: a secret registered here (a source's token or session, every `*_env` variable that is set)
is masked by the log-record factory and by `redact`, which the CLI's output and the run log go through.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Mapping
from typing import Any

MIN_SECRET_LENGTH = 4  # shorter values (a one-letter handle) would shred every message, and guard nothing


class SecretRedactor(logging.Filter):
    """Replaces registered secrets in a log record's message, whichever library logged it."""

    def __init__(self) -> None:
        super().__init__()
        self.secrets: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        if not self.secrets:
            return True
        try:
            message = record.getMessage()
        except (TypeError, ValueError):
            message = str(record.msg)
        redacted = self.redact(message)
        if redacted != message:
            record.msg, record.args = redacted, None
        return True

    def redact(self, text: str) -> str:
        # longest first, so a secret that contains another is masked whole
        for secret in sorted(self.secrets, key=len, reverse=True):
            text = text.replace(secret, "***")
        return text


_REDACTOR = SecretRedactor()
_redaction_lock = threading.Lock()
_redaction_installed = False


def redact_in_logs(secret: str) -> None:
    """Keep a secret out of every log record from now on (SDKs log request headers at DEBUG).

    A filter on one logger misses records of its children, so the redactor runs in the log-record
    factory, which every logger in the process goes through.
    """
    global _redaction_installed
    if not secret:
        return
    with _redaction_lock:
        _REDACTOR.secrets.add(secret)
        if _redaction_installed:
            return
        make_record = logging.getLogRecordFactory()

        def redacting_factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
            record = make_record(*args, **kwargs)
            _REDACTOR.filter(record)
            return record

        logging.setLogRecordFactory(redacting_factory)
        _redaction_installed = True


def redact(text: str) -> str:
    """text with every registered secret replaced by ***: for messages that leave other than by logging."""
    return _REDACTOR.redact(text) if _REDACTOR.secrets else text


def redact_environment(names: Iterable[str], environ: Mapping[str, str]) -> None:
    """Register the values of the environment variables the config names for secrets (those that are set)."""
    for name in names:
        value = environ.get(name, "")
        if len(value) >= MIN_SECRET_LENGTH:
            redact_in_logs(value)


class RedactingFormatter(logging.Formatter):
    """A log handler's formatter that masks secrets in the whole line, tracebacks (exc_info) included."""

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))
