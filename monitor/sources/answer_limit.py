"""A ceiling on how much of one HTTP answer a source reads, so a broken or hostile server cannot fill memory.

The SDKs (tweepy, Mastodon.py, PRAW over requests; atproto over httpx) read whole bodies into memory.
A response hook on their session reads the body itself, decoded (a small gzip that inflates to gigabytes
is stopped too), and gives up past MAX_ANSWER_BYTES. The biggest answers we ask for are a search page of
100 posts with their expansions (a few hundred KB) and a Reddit comment tree (a few MB).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

import requests

from monitor.errors import AnswerTooLargeError
from monitor.sources.retry import host_of

if TYPE_CHECKING:
    import httpx

MAX_ANSWER_BYTES = 32 * 2**20
READ_CHUNK = 64 * 1024


def too_large(url: str, limit: int) -> AnswerTooLargeError:
    """'127.0.0.1:8080: answer larger than 32 MB, not read further': the host only, never a path or a query."""
    return AnswerTooLargeError(f"{host_of(url)}: answer larger than {limit // 2**20} MB, not read further")


def limit_answers(session: requests.Session, limit: int = MAX_ANSWER_BYTES) -> requests.Session:
    """The session, reading at most `limit` decoded bytes of each answer (streamed requests are left alone)."""
    session.hooks["response"].append(_requests_reader(limit))
    return session


def limited_session(limit: int = MAX_ANSWER_BYTES) -> requests.Session:
    """A new requests session with the ceiling (for SDKs that take one: Mastodon.py, prawcore)."""
    return limit_answers(requests.Session(), limit)


def httpx_answer_hooks(limit: int = MAX_ANSWER_BYTES) -> dict[str, list[Callable[[httpx.Response], None]]]:
    """`event_hooks` for an httpx.Client (atproto) reading at most `limit` decoded bytes of each answer."""

    def read_within_limit(response: httpx.Response) -> None:
        # httpx keeps a read body here; read() returns it instead of reading the (consumed) stream again
        response._content = _capped(response.iter_bytes(READ_CHUNK), limit, response.close, str(response.request.url))

    return {"response": [read_within_limit]}


def _requests_reader(limit: int) -> Callable[..., requests.Response]:
    def read_within_limit(response: requests.Response, *args: Any, **kwargs: Any) -> requests.Response:
        if kwargs.get("stream"):
            return response
        # requests keeps a read body here; Session.send then finds the answer read and does not read it again
        response._content = _capped(response.iter_content(READ_CHUNK), limit, response.close, response.url or "")
        return response

    return read_within_limit


def _capped(chunks: Iterable[bytes], limit: int, close: Callable[[], None], url: str) -> bytes:
    """The answer's decoded body, read chunk by chunk; past `limit` bytes the answer is closed and refused."""
    body = bytearray()
    for chunk in chunks:
        body += chunk
        if len(body) > limit:
            close()
            raise too_large(url, limit)
    return bytes(body)
