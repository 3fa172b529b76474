"""Keeps secrets (tokens, passwords, sessions) out of every log record, whichever library logs them."""

from __future__ import annotations

import logging
import threading
from typing import Any


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
        if any(secret in message for secret in self.secrets):
            for secret in self.secrets:
                message = message.replace(secret, "***")
            record.msg, record.args = message, None
        return True


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
