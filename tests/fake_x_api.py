"""A fake X API v2 on 127.0.0.1: a real HTTP server speaking the v2 search and counts JSON, for tests and benchmarks.

It checks the bearer token, pages newest first with next_token, honours since_id/start_time/end_time
(refusing since_id together with a time, as X does), can expire the next_tokens it handed out and hold
recent search to its last N days (refusing an older since_id with X's 400), and can be scripted to answer 429 (with x-rate-limit-reset), 5xx, 401, the usage cap, garbage, or to
drop the connection, on chosen requests. Every request it served is recorded for assertions.

    with FakeXApi(token="t0k") as api:
        api.add_tweets(make_tweets(250))
        api.fail(Fault(status=503), times=2)    # the next two requests get 503
        ... config sources.x.api_base = api.url ...
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

BASE_ID = 1_600_000_000_000_000_000  # snowflake-sized ids, compared as numbers like X does
BASE_TIME = datetime(2012, 12, 17, 12, 0, tzinfo=UTC)
SNOWFLAKE_EPOCH_MS = 1288834974657
INVALID_REQUEST = {
    "title": "Invalid Request",
    "detail": "One or more parameters to your request was invalid.",
    "type": "https://api.twitter.com/2/problems/invalid-request",
}
USAGE_CAP_BODY = {
    "title": "UsageCapExceeded",
    "detail": "Usage cap exceeded: Monthly product cap",
    "type": "https://api.twitter.com/2/problems/usage-capped",
}


@dataclass
class Fault:
    """How to answer one request instead of serving it."""

    status: int = 503  # HTTP status to answer with
    body: Any = None  # JSON body; None = a v2-style error for the status
    headers: dict[str, str] = field(default_factory=dict)
    drop: bool = False  # close the connection without answering
    garbage: bool = False  # answer 200 with a body that is not JSON
    echo_authorization: bool = False  # a careless gateway: the error body quotes the request's Authorization header

    @staticmethod
    def rate_limited(reset_in: float = 0.0) -> Fault:
        reset = str(int(time.time() + reset_in))
        return Fault(429, {"title": "Too Many Requests", "status": 429}, {"x-rate-limit-reset": reset})

    @staticmethod
    def usage_cap() -> Fault:
        return Fault(429, USAGE_CAP_BODY)


@dataclass
class Served:
    """One request the fake received."""

    path: str
    params: dict[str, str]
    authorized: bool


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def snowflake(moment: datetime, sequence: int = 0) -> str:
    """An X id made at `moment`, as X makes them: milliseconds since X's epoch in the top bits."""
    milliseconds = round(moment.timestamp() * 1000) - SNOWFLAKE_EPOCH_MS
    return str((milliseconds << 22) + sequence % (1 << 22))


def make_tweets(
    count: int,
    first: int = 0,
    start: datetime = BASE_TIME,
    every: timedelta = timedelta(minutes=1),
    snowflakes: bool = False,
) -> list[dict[str, Any]]:
    """`count` v2 tweet objects with increasing ids and times, authored by five users (ids "u0".."u4").

    Ids are BASE_ID + number, or with `snowflakes` real-shaped ids that encode each post's time.
    """
    return [
        {
            "id": snowflake(start + every * number, number) if snowflakes else str(BASE_ID + number),
            "text": f"post {number}: quitting instagram over the new terms #boycottinstagram",
            "created_at": iso(start + every * number),
            "author_id": f"u{number % 5}",
            "lang": "en",
            "conversation_id": str(BASE_ID + number),
            "public_metrics": {
                "retweet_count": number % 3,
                "reply_count": 1,
                "like_count": number % 7,
                "quote_count": 0,
            },
        }
        for number in range(first, first + count)
    ]


def make_users(count: int = 5) -> list[dict[str, Any]]:
    return [
        {"id": f"u{n}", "username": f"user{n}", "name": f"User {n}", "public_metrics": {"followers_count": 100 * n}}
        for n in range(count)
    ]


class FakeXApi:
    """The server; use as a context manager or call start()/stop()."""

    def __init__(self, token: str = "fake-bearer-token", counts_page_days: int = 31, latency: float = 0.0) -> None:
        self.token = token
        self.latency = latency  # seconds added to every answer, to play a distant server
        self.counts_page_days = counts_page_days
        self.tweets: list[dict[str, Any]] = []
        self.users: dict[str, dict[str, Any]] = {user["id"]: user for user in make_users()}
        self.extra_tweets: dict[str, dict[str, Any]] = {}  # originals of retweets, served in includes.tweets
        self.served: list[Served] = []
        self.recent_days: int | None = None  # recent search serves only this many days and refuses older since_ids
        self._handed_out_tokens: set[str] = set()
        self._expired_tokens: set[str] = set()
        self._faults: list[Fault | None] = []  # one per coming request; None serves it normally
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> FakeXApi:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> FakeXApi:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    # ---- scripting ---------------------------------------------------------------------------

    def add_tweets(self, tweets: Iterable[dict[str, Any]]) -> None:
        with self._lock:
            self.tweets.extend(tweets)

    def fail(self, fault: Fault, times: int = 1, after: int = 0) -> None:
        """Answer `times` requests with the fault, after `after` more requests were served normally."""
        with self._lock:
            while len(self._faults) < after:
                self._faults.append(None)
            self._faults[after:after] = [fault] * times

    def expire_next_tokens(self) -> None:
        """Every next_token handed out so far is refused from now on, as X does with old recent-search tokens."""
        with self._lock:
            self._expired_tokens |= self._handed_out_tokens

    def clear_faults(self) -> None:
        with self._lock:
            self._faults = []

    def search_requests(self) -> list[Served]:
        return [request for request in self.served if "/search/" in request.path]

    # ---- answering ---------------------------------------------------------------------------

    def _next_fault(self) -> Fault | None:
        with self._lock:
            return self._faults.pop(0) if self._faults else None

    def answer(self, path: str, params: dict[str, str]) -> tuple[int, Any]:
        if path in ("/2/tweets/search/recent", "/2/tweets/search/all"):
            refusal = self._refusal(params, recent=path.endswith("/recent"))
            return (400, refusal) if refusal else (200, self._search(params, recent=path.endswith("/recent")))
        if path in ("/2/tweets/counts/recent", "/2/tweets/counts/all"):
            return 200, self._counts(params, paged=path.endswith("/all"))
        return 404, {"title": "Not Found Error", "status": 404}

    def _refusal(self, params: dict[str, str], recent: bool) -> dict[str, Any] | None:
        """X's 400 body for a search it refuses, or None."""
        ids, times = {"since_id", "until_id"} & set(params), {"start_time", "end_time"} & set(params)
        if ids and times:
            message = "Invalid use of 'since_id' or 'until_id' in conjunction with 'start_time' or 'end_time'."
            return _invalid({name: [params[name]] for name in sorted(ids | times)}, message)
        token = params.get("next_token")
        with self._lock:
            expired = token in self._expired_tokens
        if token is not None and expired:
            return _invalid({"next_token": [token]}, f"Invalid 'next_token':'{token}'. The token has expired.")
        oldest = self._recent_start() if recent else None
        since = params.get("since_id")
        if since is not None and oldest is not None and _snowflake_time(since) < oldest:
            message = (
                f"Invalid 'since_id':'{since}'. 'since_id' must be a tweet id created after {iso(oldest)}. "
                f"Please use a 'since_id' that is newer or a 'start_time' with a time of {iso(oldest)} or later."
            )
            return _invalid({"since_id": [since]}, message)
        return None

    def _recent_start(self) -> datetime | None:
        return None if self.recent_days is None else datetime.now(UTC) - timedelta(days=self.recent_days)

    def _matching(self, params: dict[str, str]) -> list[dict[str, Any]]:
        """Tweets newer than since_id, older than the token's position, within start/end, newest first."""
        since = int(params.get("since_id", 0))
        until = int(params["next_token"].removeprefix("next-")) if "next_token" in params else None
        start, end = params.get("start_time"), params.get("end_time")
        with self._lock:
            tweets = list(self.tweets)
        selected = [t for t in tweets if _tweet_id(t) > since and (until is None or _tweet_id(t) < until)]
        if start:
            selected = [t for t in selected if _created(t) >= _parse(start)]
        if end:
            selected = [t for t in selected if _created(t) < _parse(end)]
        return sorted(selected, key=_tweet_id, reverse=True)

    def _search(self, params: dict[str, str], recent: bool) -> dict[str, Any]:
        size = int(params.get("max_results", 10))
        matching = self._matching(params)
        oldest = self._recent_start() if recent else None
        if oldest is not None:
            matching = [t for t in matching if _created(t) >= oldest]
        page = matching[:size]
        body: dict[str, Any] = {"meta": {"result_count": len(page)}}
        if not page:
            return body
        body["data"] = page
        body["includes"] = self._includes(page)
        body["meta"] |= {"newest_id": page[0]["id"], "oldest_id": page[-1]["id"]}
        if len(matching) > size:
            body["meta"]["next_token"] = f"next-{page[-1]['id']}"
            with self._lock:
                self._handed_out_tokens.add(body["meta"]["next_token"])
                self._expired_tokens.discard(body["meta"]["next_token"])  # handed out anew: valid again
        return body

    def _includes(self, page: list[dict[str, Any]]) -> dict[str, Any]:
        authors = {t.get("author_id") for t in page if isinstance(t, dict)}
        referenced = {ref.get("id") for t in page if isinstance(t, dict) for ref in t.get("referenced_tweets") or []}
        includes: dict[str, Any] = {"users": [self.users[a] for a in sorted(authors, key=str) if a in self.users]}
        originals = [self.extra_tweets[r] for r in sorted(referenced, key=str) if r in self.extra_tweets]
        if originals:
            includes["tweets"] = originals
        return includes

    def _counts(self, params: dict[str, str], paged: bool) -> dict[str, Any]:
        """Hourly counts; /all covers counts_page_days per page, newest first, following next_token."""
        tweets = self._matching({k: v for k, v in params.items() if k in ("since_id", "start_time", "end_time")})
        end = (
            _parse(params["end_time"])
            if "end_time" in params
            else _hour(max(map(_created, tweets), default=BASE_TIME)) + timedelta(hours=1)
        )
        start = _parse(params["start_time"]) if "start_time" in params else end - timedelta(days=7)
        page_end = _parse(params["next_token"].removeprefix("counts-")) if "next_token" in params else end
        page_start = max(start, page_end - timedelta(days=self.counts_page_days)) if paged else start
        hours: dict[datetime, int] = {}
        for tweet in tweets:
            if page_start <= _created(tweet) < page_end:
                hours[_hour(_created(tweet))] = hours.get(_hour(_created(tweet)), 0) + 1
        # Like X, only hours with posts are listed here; the collector must treat a missing hour as zero.
        data = [
            {"start": iso(h), "end": iso(h + timedelta(hours=1)), "tweet_count": n} for h, n in sorted(hours.items())
        ]
        meta: dict[str, Any] = {"total_tweet_count": sum(hours.values())}
        if paged and page_start > start:
            meta["next_token"] = f"counts-{iso(page_start)}"
        return {"data": data, "meta": meta}

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        api = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # headers and body go in two writes: no 40 ms delayed-ACK stall

            def do_GET(self) -> None:  # noqa: N802 - the name http.server calls
                parts = urlsplit(self.path)
                params = {key: values[-1] for key, values in parse_qs(parts.query).items()}
                authorized = self.headers.get("Authorization") == f"Bearer {api.token}"
                with api._lock:
                    api.served.append(Served(parts.path, params, authorized))
                fault = api._next_fault()
                if api.latency:
                    time.sleep(api.latency)
                if fault is not None and fault.drop:
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                if fault is not None and fault.echo_authorization:
                    header = self.headers.get("Authorization", "")
                    detail = f"gateway refused the request (headers: Authorization: {header})"
                    self._send(fault.status, {"title": "Bad Request", "detail": detail, "status": fault.status})
                elif fault is not None:
                    self._send_fault(fault)
                elif not authorized:
                    self._send(
                        401, {"title": "Unauthorized", "type": "about:blank", "status": 401, "detail": "Unauthorized"}
                    )
                else:
                    self._send(*api.answer(parts.path, params))

            def _send_fault(self, fault: Fault) -> None:
                if fault.garbage:
                    self._send_bytes(200, b"<html>upstream hiccup</html>", "text/html")
                else:
                    body = (
                        fault.body
                        if fault.body is not None
                        else {"title": "Service Unavailable", "status": fault.status}
                    )
                    self._send(fault.status, body, fault.headers)

            def _send(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
                self._send_bytes(status, json.dumps(body).encode("utf-8"), "application/json", headers)

            def _send_bytes(
                self, status: int, payload: bytes, kind: str, headers: dict[str, str] | None = None
            ) -> None:
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(payload)))
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - http.server's signature
                """Silent: tests read `served` instead."""

        return Handler


def _invalid(parameters: dict[str, list[str]], message: str) -> dict[str, Any]:
    return {"errors": [{"parameters": parameters, "message": message}], **INVALID_REQUEST}


def _snowflake_time(post_id: str) -> datetime:
    return datetime.fromtimestamp(((int(post_id) >> 22) + SNOWFLAKE_EPOCH_MS) / 1000, UTC)


def _tweet_id(tweet: Any) -> int:
    try:
        return int(tweet["id"])
    except (TypeError, KeyError, ValueError):
        return BASE_ID  # malformed tweets still take part in paging


def _created(tweet: Any) -> datetime:
    try:
        return _parse(tweet["created_at"])
    except (TypeError, KeyError, ValueError):
        return BASE_TIME


def _parse(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _hour(moment: datetime) -> datetime:
    return moment.replace(minute=0, second=0, microsecond=0)
