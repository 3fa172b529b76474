"""Chat alerts through Apprise (Slack, Teams, Discord, Telegram, Mattermost, any JSON webhook): the only apprise importer.

A target's URL holds its tokens, so it comes only from the environment and is registered for redaction
before Apprise sees it: no line we print or log — Apprise's own log lines included — shows it.
"""

from __future__ import annotations

from urllib.parse import parse_qsl, urlsplit

from monitor.errors import DeliveryError
from monitor.sources.redaction import MIN_SECRET_LENGTH, redact_in_logs

TOKEN_MIN_LENGTH = 8  # path segments and query values this long may be tokens (Slack's T…/B…/X…); shorter are words


def push(url: str, title: str, body: str) -> None:
    """Post one message to one Apprise URL; DeliveryError (naming no secret) when it was not delivered.

    Apprise bounds each request with its own connect and read timeouts (the URL's `cto` and `rto`, 4 s by default).
    """
    import apprise

    register_url(url)
    notifier = apprise.Apprise()
    if not notifier.add(url):
        raise DeliveryError("Apprise does not understand the URL in that variable (see its list of services)")
    if not notifier.notify(body=body, title=title):
        raise DeliveryError("the service did not accept the message (Apprise's log line says why)")


def register_url(url: str) -> None:
    """Mask the URL, and each part of it that may be a token, in every line we print or log."""
    redact_in_logs(url)
    parts = urlsplit(url)
    pieces = [parts.password or "", parts.username or "", *parts.path.split("/")]
    pieces += [value for _key, value in parse_qsl(parts.query)]
    for piece in pieces:
        if len(piece) >= max(TOKEN_MIN_LENGTH, MIN_SECRET_LENGTH):
            redact_in_logs(piece)
