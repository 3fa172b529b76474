"""The X API v2 collector: recent or full-archive search through tweepy, with resumable cursors and counts.

Cursor kinds stored per event: `since_id` (newest post of the last finished run), and while a run of
pages is in progress `next_token` plus `pending_since_id` (the first page's newest id), so a run that
is killed resumes with the same since_id and token, and only a finished run moves since_id forward.
Counts on the full archive keep `counts_next_token` plus `counts_filled_from` (the oldest hour stored
so far) while their pages are in progress.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import requests
import tweepy
from requests.adapters import HTTPAdapter

from monitor.config import Config, EventConfig, XSourceConfig, to_aware, window_of
from monitor.errors import NotAPageError, NotConfiguredError, SourceError, UsageCapError
from monitor.posts import parse_timestamp
from monitor.sources.answer_limit import limit_answers
from monitor.sources.base import CountsPage, Page, Source, environment
from monitor.sources.redaction import redact_in_logs
from monitor.sources.retry import (
    Pacer,
    RateLimited,
    RetryPolicy,
    Transient,
    Verdict,
    call_with_retries,
    cannot_connect,
)
from monitor.sources.x_payloads import hour_ceiling, hour_start, listed_hours, normalize_counts, normalize_page

log = logging.getLogger(__name__)

OFFICIAL_BASES = ("https://api.twitter.com", "https://api.x.com")
PAGE_SIZE = 100  # the most a search page may hold
MIN_PAGE_SIZE = 10  # the least max_results X accepts
TWEET_FIELDS = ["created_at", "lang", "public_metrics", "author_id", "referenced_tweets", "conversation_id"]
EXPANSIONS = ["author_id", "referenced_tweets.id"]  # the retweeted original carries the full text
USER_FIELDS = ["username", "public_metrics"]
USAGE_CAP_MARKERS = ("UsageCapExceeded", "usage-capped")
END_TIME_MARGIN = timedelta(seconds=30)  # X refuses an end_time less than 10 seconds ago
RECENT_SPAN = timedelta(days=7)  # what recent search and recent counts cover
RECENT_START_MARGIN = timedelta(minutes=1)  # X refuses a start_time older than 7 days; its clock may run ahead
UTC_ZONE = ZoneInfo("UTC")
SNOWFLAKE_EPOCH_MS = 1288834974657  # X ids: milliseconds since this moment, shifted left by 22 bits
SNOWFLAKE_TIME_SHIFT = 22


class ApiBaseAdapter(HTTPAdapter):
    """Sends tweepy's requests to the configured api_base instead of api.twitter.com, with a timeout.

    tweepy builds every URL from a fixed host; mounting this on its session redirects them without
    touching tweepy, so gateways, proxies and test servers work with the library doing the rest.
    """

    def __init__(self, api_base: str, timeout: float) -> None:
        super().__init__()
        self.api_base = api_base.rstrip("/")
        self.timeout = timeout

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        url = request.url or ""
        for official in OFFICIAL_BASES:
            if url.startswith(official + "/"):
                request.url = self.api_base + url[len(official) :]
        if kwargs.get("timeout") is None:
            kwargs["timeout"] = self.timeout
        return super().send(request, **kwargs)


class XSource(Source):
    """Recent (7 days) or full-archive search on the X API v2, newest first, 100 posts a page."""

    name = "x"

    def __init__(self, settings: XSourceConfig, bearer_token: str, tz: ZoneInfo = UTC_ZONE) -> None:
        redact_in_logs(bearer_token)
        self.settings = settings
        self.tz = tz
        self.read_limit = settings.max_posts_per_run
        self.policy = RetryPolicy.from_settings(settings)
        self.pacer = Pacer(settings.full_archive_interval.total_seconds())
        self.client = tweepy.Client(bearer_token=bearer_token, return_type=dict, wait_on_rate_limit=False)
        limit_answers(self.client.session)
        adapter = ApiBaseAdapter(settings.api_base, settings.timeout.total_seconds())
        for official in OFFICIAL_BASES:
            self.client.session.mount(official + "/", adapter)

    @classmethod
    def from_config(cls, config: Config) -> XSource:
        settings = config.sources.x
        token = environment(settings.bearer_token_env)
        if not token:
            raise NotConfiguredError(
                f"X source skipped: ${settings.bearer_token_env} is not set (export the API bearer token there)"
            )
        return cls(settings, token, config.tz)

    def close(self) -> None:
        self.client.session.close()

    # ---- search ------------------------------------------------------------------------------

    def search(self, event: EventConfig, cursor: Mapping[str, str]) -> Iterator[Page]:
        """Pages newest first; since_id stays fixed while following next_token and moves only when done.

        A cursor X no longer accepts (a next_token that expired, a since_id older than recent search's
        7 days) restarts the run once without it; posts already stored are not stored twice.
        """
        since_id = cursor.get("since_id")
        next_token = cursor.get("next_token")
        pending = cursor.get("pending_since_id") if next_token else None
        read, restarted = 0, False
        while not self.stopping():
            size = self._page_size(read)
            if size is None:
                log.info("x %s: read limit of %s posts reached; the next run resumes", event.name, self.read_limit)
                return
            try:
                body = self._fetch(self._search_call(event, since_id, next_token, size))
            except StaleCursorError as stale:
                if restarted:
                    raise SourceError(f"X refused the {stale.parameter} again after a restart without it") from None
                since_id = self._drop_stale_cursor(event, stale.parameter, since_id)
                next_token, pending, restarted = None, None, True
                continue
            meta = _meta(body)
            if next_token is None:
                pending = _text_or_none(meta.get("newest_id"))
            next_token = _text_or_none(meta.get("next_token"))
            page = self._page(body, _search_cursor(since_id, next_token, pending))
            read += page.read
            yield page
            if next_token is None:
                return

    def _drop_stale_cursor(self, event: EventConfig, parameter: str, since_id: str | None) -> str | None:
        """Log what restarting without the refused cursor means; return the since_id to restart with."""
        if parameter == "next_token":
            log.warning(
                "x %s: X no longer accepts the stored next_token; restarting the run from its since_id", event.name
            )
            return since_id
        since = snowflake_time(since_id) if since_id else None
        log.warning(
            "x %s: the stored since_id (a post of %s) is older than the 7 days recent search covers; posts between "
            "then and 7 days ago cannot be read from it (endpoint: all can backfill them); reading the last 7 days",
            event.name,
            since.strftime("%Y-%m-%d %H:%M UTC") if since else "an unknown time",
        )
        return None

    def _page_size(self, read: int) -> int | None:
        """max_results for the next page: 100, or fewer near the read limit; None once it is reached."""
        if self.read_limit is None:
            return PAGE_SIZE
        remaining = self.read_limit - read
        return None if remaining <= 0 else max(MIN_PAGE_SIZE, min(PAGE_SIZE, remaining))

    def _search_call(
        self, event: EventConfig, since_id: str | None, next_token: str | None, size: int
    ) -> Callable[[], Any]:
        params: dict[str, Any] = {
            "max_results": size,
            "tweet_fields": TWEET_FIELDS,
            "expansions": EXPANSIONS,
            "user_fields": USER_FIELDS,
        }
        params |= _present(next_token=next_token)
        if self.settings.endpoint == "all":
            # X refuses since_id together with start_time/end_time: the full archive moves its start instead.
            params |= self._window(event, after_id=since_id)
            return lambda: self.client.search_all_tweets(event.query, **params)
        params |= _present(since_id=since_id)
        return lambda: self.client.search_recent_tweets(event.query, **params)

    def _page(self, body: Mapping[str, Any], cursor: dict[str, str | None]) -> Page:
        data = body.get("data")
        read = len(data) if isinstance(data, list) else 0
        posts, skipped = normalize_page(body, datetime.now(UTC), self.name)
        return Page(posts, cursor, read=read, cost_usd=read * self.settings.cost_per_post_usd, skipped=skipped)

    # ---- counts ------------------------------------------------------------------------------

    def counts(self, event: EventConfig, cursor: Mapping[str, str]) -> Iterator[CountsPage]:
        """Every hour of the requested span, zeros included: the last 7 days (recent), or the event's window (all).

        X lists only the hours with posts. The full archive pages newest first, so each page accounts
        for every hour from its oldest listed one up to where the pages before it began (kept in the
        cursor as counts_filled_from, so a resumed run goes on from there), and the last page down to
        the span's start; an hour is stored as zero only once a page has covered it.
        """
        window = self._counts_window(event)
        span_start, span_end = hour_start(window["start_time"]), hour_ceiling(window.get("end_time", _now()))
        next_token, filled_from = self._counts_resume_point(event, cursor, span_end)
        while not self.stopping():
            body = self._fetch(self._counts_call(event, window, next_token))
            next_token = _text_or_none(_meta(body).get("next_token")) if self.settings.endpoint == "all" else None
            listed = listed_hours(body)
            lower = span_start if next_token is None else min(listed, default=filled_from)
            buckets = normalize_counts(body, lower, filled_from) if lower < filled_from else []
            filled_from = min(lower, filled_from)
            updates = {"counts_next_token": next_token, "counts_filled_from": _iso(filled_from) if next_token else None}
            yield CountsPage(buckets, updates, requests=1, cost_usd=self.settings.cost_per_counts_request_usd)
            if next_token is None:
                return

    def _counts_resume_point(
        self, event: EventConfig, cursor: Mapping[str, str], span_end: datetime
    ) -> tuple[str | None, datetime]:
        """The stored next_token and the hour down to which its run has stored counts, or a fresh start.

        A token stored without counts_filled_from (by an older version) starts the window again:
        resuming it could not tell which hours its pages had already covered.
        """
        next_token = cursor.get("counts_next_token") if self.settings.endpoint == "all" else None
        filled_from = cursor.get("counts_filled_from")
        if next_token is None or filled_from is None:
            if next_token is not None:
                log.info("x %s: counting the event's window again from its end (no counts_filled_from)", event.name)
            return None, span_end
        return next_token, parse_timestamp(filled_from)

    def _counts_window(self, event: EventConfig) -> dict[str, datetime]:
        """start_time/end_time of a counts request: the event's window (all) or the hours of the last 7 days."""
        if self.settings.endpoint == "all":
            return self._window(event)
        return {"start_time": hour_ceiling(_now() - RECENT_SPAN + RECENT_START_MARGIN)}

    def _counts_call(
        self, event: EventConfig, window: Mapping[str, datetime], next_token: str | None
    ) -> Callable[[], Any]:
        params = {**window, **_present(next_token=next_token)}
        if self.settings.endpoint == "all":
            return lambda: self.client.get_all_tweets_count(event.query, granularity="hour", **params)
        return lambda: self.client.get_recent_tweets_count(event.query, granularity="hour", **params)

    # ---- requests ----------------------------------------------------------------------------

    def _window(self, event: EventConfig, after_id: str | None = None) -> dict[str, datetime]:
        """start_time/end_time of a full-archive query: the event's start (or its baseline) onwards, to its end.

        With `after_id` (the newest post of the last finished run) the start moves up to that post's
        second, read from its id; the few posts of that same second are read again and stored once.
        """
        start = window_of(event, self.tz)[0]
        after = snowflake_time(after_id) if after_id else None
        if after is not None and after > start:
            start = after
        window = {"start_time": start}
        if event.end is not None and to_aware(event.end, self.tz) < datetime.now(UTC) - END_TIME_MARGIN:
            window["end_time"] = to_aware(event.end, self.tz)
        return window

    def _fetch(self, call: Callable[[], Any]) -> Mapping[str, Any]:
        """One API call, paced on the full archive, retried on transient errors, failures in one clear line."""
        if self.settings.endpoint == "all":
            self.pacer.wait_turn(self.stop)
        with self._clear_errors():
            body: Mapping[str, Any] = call_with_retries(lambda: _page_body(call()), _classify, self.policy, self.stop)
        return body

    @contextmanager
    def _clear_errors(self) -> Iterator[None]:
        """tweepy's exceptions → SourceError with one line that names the variable, never the token."""
        try:
            yield
        except tweepy.errors.TooManyRequests:  # a rate limit is waited out by then: only the usage cap is left
            raise UsageCapError(
                "X usage cap reached (UsageCapExceeded): no more posts can be read until the cap resets; stopping"
            ) from None
        except (tweepy.errors.Unauthorized, tweepy.errors.Forbidden) as error:
            status = error.response.status_code
            raise SourceError(
                f"X rejected the bearer token in ${self.settings.bearer_token_env} (HTTP {status})"
            ) from None
        except tweepy.errors.BadRequest as error:
            stale = _stale_cursor(error)
            if stale is not None:
                raise StaleCursorError(stale) from None
            raise SourceError(_refusal(error)) from None
        except tweepy.errors.HTTPException as error:
            raise SourceError(_refusal(error)) from None


class StaleCursorError(SourceError):
    """X answered 400 to a cursor it no longer accepts (`parameter` is "next_token" or "since_id")."""

    def __init__(self, parameter: str) -> None:
        super().__init__(parameter)
        self.parameter = parameter


def _stale_cursor(error: tweepy.errors.BadRequest) -> str | None:
    """The cursor parameter a 400 refuses on its own, if that is all it refuses.

    X names the refused parameters in each error; a since_id older than recent search's 7 days is
    refused with "'since_id' must be a tweet id created after <time>".
    """
    for item in error.api_errors:
        parameters = item.get("parameters") if isinstance(item, dict) else None
        if not isinstance(parameters, dict):
            continue
        message = str(item.get("message", ""))
        if set(parameters) == {"next_token"}:
            return "next_token"
        if set(parameters) == {"since_id"} and "must be a tweet id created after" in message:
            return "since_id"
    return None


def snowflake_time(post_id: str) -> datetime | None:
    """When X made a post, read from its id (ids since November 2010 carry their creation time), or None."""
    if not post_id.isdigit() or int(post_id) >> SNOWFLAKE_TIME_SHIFT == 0:
        return None
    milliseconds = (int(post_id) >> SNOWFLAKE_TIME_SHIFT) + SNOWFLAKE_EPOCH_MS
    return datetime.fromtimestamp(milliseconds / 1000, UTC)


def _page_body(body: Any) -> Mapping[str, Any]:
    if not isinstance(body, Mapping):
        raise NotAPageError(f"X answered with a {type(body).__name__} instead of a JSON object")
    return body


def _classify(error: Exception) -> Verdict:
    """Which errors pass if we wait: rate limits (not the usage cap), 5xx, dropped connections, garbage."""
    if isinstance(error, tweepy.errors.TooManyRequests):
        return None if _is_usage_cap(error) else RateLimited(error.reset_time)
    if isinstance(error, tweepy.errors.TwitterServerError):
        return Transient(f"X answered HTTP {error.response.status_code}")
    if isinstance(error, requests.exceptions.JSONDecodeError | NotAPageError):
        return Transient("X answered with a body that is not a JSON object")
    if isinstance(error, requests.exceptions.ConnectionError | requests.exceptions.Timeout):
        return cannot_connect(error, "api.twitter.com")  # the failed request names the configured api_base
    if isinstance(error, requests.exceptions.ChunkedEncodingError):
        return Transient("connection to X dropped mid-answer")
    return None


def _refusal(error: tweepy.errors.HTTPException) -> str:
    detail = "; ".join(str(message) for message in error.api_messages)[:300]
    return f"X refused the request (HTTP {error.response.status_code}): {detail}"


def _is_usage_cap(error: tweepy.errors.TooManyRequests) -> bool:
    body = error.response.text if error.response is not None else ""
    return any(marker in body for marker in USAGE_CAP_MARKERS)


def _search_cursor(since_id: str | None, next_token: str | None, pending: str | None) -> dict[str, str | None]:
    """The cursor to store with a page: in progress (token + pending since_id), or finished (since_id moves).

    In progress, since_id is written too: a restart that dropped a stale one must not resume with it.
    """
    if next_token is not None:
        return {"next_token": next_token, "pending_since_id": pending, "since_id": since_id}
    finished: dict[str, str | None] = {"next_token": None, "pending_since_id": None}
    if pending is not None:
        finished["since_id"] = pending
    return finished


def _meta(body: Mapping[str, Any]) -> Mapping[str, Any]:
    meta = body.get("meta")
    return meta if isinstance(meta, Mapping) else {}


def _text_or_none(value: Any) -> str | None:
    return str(value) if value not in (None, "") else None


def _present(**params: str | None) -> dict[str, str]:
    return {name: value for name, value in params.items() if value is not None}


def _now() -> datetime:
    return datetime.now(UTC)


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat()
