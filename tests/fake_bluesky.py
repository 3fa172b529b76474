"""A fake Bluesky on 127.0.0.1: XRPC over HTTP (createSession, refreshSession, searchPosts) and a Jetstream WebSocket.

Sessions are real JWTs (unsigned) whose `exp` the SDK reads to decide when to refresh; every answer
carries RateLimit-* headers. searchPosts pages newest first by an offset cursor and stops giving a
cursor after `result_cap` results, like the AppView's ~10,000 limit.

    with FakeBluesky(handle="me.bsky.social", password="app-pass") as bsky:
        bsky.add_posts(make_post_views(250))
"""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.fake_http import Answer, FakeJsonApi

BASE_TIME = datetime(2012, 12, 17, 12, 0, tzinfo=UTC)
DID = "did:plc:fakeaccount0000000000000"


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def rkey(number: int) -> str:
    return f"3k{number:011d}"


def make_post_views(
    count: int, first: int = 0, start: datetime = BASE_TIME, every: timedelta = timedelta(minutes=1)
) -> list[dict[str, Any]]:
    """`count` app.bsky.feed.defs#postView objects, one a minute, by five authors."""
    views = []
    for number in range(first, first + count):
        author = f"did:plc:author{number % 5:020d}"
        created = iso(start + every * number)
        views.append(
            {
                "uri": f"at://{author}/app.bsky.feed.post/{rkey(number)}",
                "cid": f"bafyreig{number:020d}",
                "author": {
                    "did": author,
                    "handle": f"user{number % 5}.bsky.social",
                    "displayName": f"User {number % 5}",
                    "labels": [],
                    "createdAt": "2023-04-01T00:00:00.000Z",
                },
                "record": {
                    "$type": "app.bsky.feed.post",
                    "createdAt": created,
                    "langs": ["en"],
                    "text": f"post {number}: quitting instagram over the new terms",
                },
                "replyCount": 1,
                "repostCount": number % 3,
                "likeCount": number % 7,
                "quoteCount": 0,
                "indexedAt": created,
                "labels": [],
            }
        )
    return views


def jwt(payload: dict[str, Any]) -> str:
    def part(obj: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'ES256K', 'typ': 'at+jwt'})}.{part(payload)}.c2lnbmF0dXJl"


class FakeBluesky(FakeJsonApi):
    """The XRPC server; `jetstream` is started alongside it."""

    def __init__(self, handle: str = "monitor.bsky.social", password: str = "abcd-efgh-ijkl-mnop") -> None:
        super().__init__()
        self.handle, self.password = handle, password
        self.posts: list[dict[str, Any]] = []
        self.result_cap = 10_000
        self.access_ttl = timedelta(hours=2)  # the SDK refreshes 15 minutes before expiry
        self.valid_access: set[str] = set()
        self.valid_refresh: set[str] = set()
        self.rate_remaining = 3000
        self._issued = 0
        self.jetstream = FakeJetstream()

    def start(self) -> FakeBluesky:
        super().start()
        self.jetstream.start()
        return self

    def stop(self) -> None:
        self.jetstream.stop()
        super().stop()

    def add_posts(self, views: Iterable[dict[str, Any]]) -> None:
        with self.lock:
            self.posts.extend(views)

    def logins(self) -> int:
        return len(self.requests_to("createSession"))

    def searches(self) -> list[Any]:
        return self.requests_to("searchPosts")

    def expire_refresh_tokens(self) -> None:
        self.valid_refresh.clear()
        self.valid_access.clear()

    # ---- answering ---------------------------------------------------------------------------

    def answer(self, method: str, path: str, params: dict[str, str], headers: dict[str, str], body: Any) -> Answer:
        limits = self._rate_headers()
        if path == "/xrpc/com.atproto.server.createSession":
            return (*self._create_session(body), limits)
        if path == "/xrpc/com.atproto.server.refreshSession":
            return (*self._refresh_session(headers), limits)
        if path == "/xrpc/app.bsky.feed.searchPosts":
            token = headers.get("authorization", "").removeprefix("Bearer ")
            if token not in self.valid_access:
                return 401, {"error": "AuthMissing", "message": "Authentication Required"}, limits
            return 200, self._search(params), limits
        return 404, {"error": "MethodNotImplemented", "message": "Method Not Implemented"}, limits

    def _rate_headers(self) -> dict[str, str]:
        with self.lock:
            self.rate_remaining = max(0, self.rate_remaining - 1)
            remaining = self.rate_remaining
        return {
            "RateLimit-Limit": "3000",
            "RateLimit-Remaining": str(remaining),
            "RateLimit-Reset": str(int(time.time()) + 1),
            "RateLimit-Policy": "3000;w=300",
        }

    def _session(self) -> dict[str, Any]:
        with self.lock:
            self._issued += 1
            number = self._issued
        expires = int((datetime.now(UTC) + self.access_ttl).timestamp())
        access = jwt({"scope": "com.atproto.appPass", "sub": DID, "iat": number, "exp": expires})
        refresh = jwt({"scope": "com.atproto.refresh", "sub": DID, "jti": f"r{number}", "exp": expires + 86400 * 60})
        self.valid_access.add(access)
        self.valid_refresh.add(refresh)
        return {"accessJwt": access, "refreshJwt": refresh, "handle": self.handle, "did": DID, "active": True}

    def _create_session(self, body: Any) -> tuple[int, Any]:
        if not isinstance(body, dict) or (body.get("identifier"), body.get("password")) != (self.handle, self.password):
            return 401, {"error": "AuthenticationRequired", "message": "Invalid identifier or password"}
        return 200, self._session()

    def _refresh_session(self, headers: dict[str, str]) -> tuple[int, Any]:
        token = headers.get("authorization", "").removeprefix("Bearer ")
        if token not in self.valid_refresh:
            return 400, {"error": "ExpiredToken", "message": "Token has been revoked"}
        self.valid_refresh.discard(token)
        return 200, self._session()

    def _search(self, params: dict[str, str]) -> dict[str, Any]:
        since, until = params.get("since"), params.get("until")
        with self.lock:
            posts = list(self.posts)
        selected = [
            p for p in posts if (not since or _when(p) >= _parse(since)) and (not until or _when(p) < _parse(until))
        ]
        selected.sort(key=_when, reverse=True)
        selected = selected[: self.result_cap]
        offset = int(params.get("cursor", 0))
        size = int(params.get("limit", 25))
        page = selected[offset : offset + size]
        body: dict[str, Any] = {"posts": page, "hitsTotal": len(selected)}
        if offset + size < len(selected):
            body["cursor"] = str(offset + size)
        return body


def _when(view: Any) -> datetime:
    try:
        return _parse(view["record"]["createdAt"])
    except (TypeError, KeyError, ValueError):
        return BASE_TIME


def _parse(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


# ---- Jetstream -----------------------------------------------------------------------------------


def make_jetstream_events(count: int, first: int = 0, start_us: int = 1_734_436_800_000_000) -> list[dict[str, Any]]:
    """Commit events creating posts, one every 10 ms of time_us; every third is about instagram."""
    events = []
    for number in range(first, first + count):
        text = f"event {number}: " + ("deleting my instagram account" if number % 3 == 0 else "lunch was nice")
        events.append(
            {
                "did": f"did:plc:author{number % 5:020d}",
                "time_us": start_us + number * 10_000,
                "kind": "commit",
                "commit": {
                    "rev": f"3l{number:011d}",
                    "operation": "create",
                    "collection": "app.bsky.feed.post",
                    "rkey": rkey(number),
                    "record": {
                        "$type": "app.bsky.feed.post",
                        "createdAt": iso(BASE_TIME + timedelta(seconds=number)),
                        "langs": ["en"],
                        "text": text,
                    },
                    "cid": f"bafyreij{number:020d}",
                },
            }
        )
    return events


class FakeJetstream:
    """Jetstream's /subscribe: replays events with time_us >= cursor, then idles (or drops after `drop_after`)."""

    def __init__(self) -> None:
        from websockets.sync.server import serve

        self.events: list[dict[str, Any] | str] = []
        self.connections: list[dict[str, str]] = []  # query parameters of each connection
        self.drop_after: int | None = None  # close the connection after sending this many events (once)
        self._server = serve(self._handle, "127.0.0.1", 0)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.socket.getsockname()[:2]
        return f"ws://{host}:{port}/subscribe"

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()

    def _handle(self, connection: Any) -> None:
        request = connection.request
        params = {key: values[-1] for key, values in parse_qs(urlsplit(request.path).query).items()}
        self.connections.append(params)
        cursor = int(params.get("cursor", 0))
        sent = 0
        for event in list(self.events):
            if isinstance(event, dict) and event["time_us"] < cursor:
                continue
            if self.drop_after is not None and sent >= self.drop_after:
                self.drop_after = None
                connection.close(code=1011)
                return
            connection.send(event if isinstance(event, str) else json.dumps(event))
            sent += 1
        try:
            connection.recv()  # idle until the client closes
        except Exception:  # noqa: BLE001 - the client went away: the connection is over
            return
