"""The one exception tree: everything the tool raises on purpose is a MonitorError.

The CLI turns these into one-line messages and exit codes; anything else is a bug.
"""


class MonitorError(Exception):
    """Root of every error the tool reports to the user in one line."""

    exit_code = 1


class ConfigError(MonitorError):
    """The config file is missing, unreadable or invalid; the message names the field."""

    exit_code = 2


class UsageError(MonitorError):
    """The command line asks for something that cannot be done (unknown event, bad --map)."""

    exit_code = 2


class NotConfiguredError(MonitorError):
    """A component is switched off because its settings or credentials are missing."""


class SourceError(MonitorError):
    """A source failed for this run (API refused, gave up after retries)."""


class MalformedError(MonitorError, ValueError):
    """A payload or record lacks what a Post needs, or holds the wrong types: that item is skipped with the reason."""


class NotAPageError(SourceError):
    """An API answered 2xx with a body that is not a JSON object (a proxy's page, a truncated reply): retried."""


class AnswerTooLargeError(SourceError):
    """A server's answer was larger than a source reads of one (sources/answer_limit.py): not retried."""


class UsageCapError(SourceError):
    """The platform's usage cap is reached: no request to it can succeed until the cap resets.

    The collect run stops using that source for its remaining events instead of failing each one again.
    """


class StoreError(MonitorError):
    """The database cannot be opened or written."""


class DeliveryError(MonitorError):
    """An email could not be handed to the SMTP server (refused, unreachable, timed out)."""


class LockedError(MonitorError):
    """Another process holds the lock this one needs (e.g. a second daemon on the same database)."""


class ClusterError(MonitorError):
    """The Dask scheduler cannot be reached, or the work on its cluster failed."""
