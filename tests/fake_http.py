"""A small base for fake JSON APIs on 127.0.0.1: a real threaded HTTP server, scripted faults, a request log."""

from __future__ import annotations

import json
import socket
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit


@dataclass
class Fault:
    """How to answer one request instead of serving it."""

    status: int = 503
    body: Any = None  # JSON body; None = {"error": ..., "message": ...} for the status
    headers: dict[str, str] = field(default_factory=dict)
    drop: bool = False  # close the connection without answering
    garbage: bool = False  # answer 200 with a body that is not JSON


@dataclass
class Served:
    """One request a fake received."""

    method: str
    path: str
    params: dict[str, str]
    headers: dict[str, str]
    body: Any = None


Answer = tuple[int, Any, dict[str, str]]


class FakeJsonApi:
    """Subclasses implement answer(method, path, params, headers, body) → (status, JSON body, headers)."""

    def __init__(self) -> None:
        self.served: list[Served] = []
        self._faults: list[Fault | None] = []
        self._fault_paths: str | None = None
        self.lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)

    @property
    def host(self) -> str:
        host, port = self._server.server_address[:2]
        return f"{host}:{port}"

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    def start(self) -> Any:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> Any:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    def fail(self, fault: Fault, times: int = 1, after: int = 0, path: str | None = None) -> None:
        """Answer `times` requests (to paths containing `path`) with the fault, after `after` served normally."""
        with self.lock:
            self._fault_paths = path
            while len(self._faults) < after:
                self._faults.append(None)
            self._faults[after:after] = [fault] * times

    def clear_faults(self) -> None:
        with self.lock:
            self._faults = []

    def requests_to(self, fragment: str) -> list[Served]:
        return [request for request in self.served if fragment in request.path]

    def answer(self, method: str, path: str, params: dict[str, str], headers: dict[str, str], body: Any) -> Answer:
        raise NotImplementedError

    def _next_fault(self, path: str) -> Fault | None:
        with self.lock:
            if not self._faults or (self._fault_paths and self._fault_paths not in path):
                return None
            return self._faults.pop(0)

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        api = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True

            def do_GET(self) -> None:  # noqa: N802 - the name http.server calls
                self._serve("GET")

            def do_POST(self) -> None:  # noqa: N802
                self._serve("POST")

            def _serve(self, method: str) -> None:
                parts = urlsplit(self.path)
                params = {key: values[-1] for key, values in parse_qs(parts.query).items()}
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                try:
                    body = json.loads(raw) if raw else None
                except ValueError:
                    body = None
                if "x-www-form-urlencoded" in (self.headers.get("Content-Type") or ""):
                    body = {key: values[-1] for key, values in parse_qs(raw.decode("utf-8")).items()}
                headers = {key.lower(): value for key, value in self.headers.items()}
                with api.lock:
                    api.served.append(Served(method, parts.path, params, headers, body))
                fault = api._next_fault(parts.path)
                if fault is not None and fault.drop:
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                if fault is not None and fault.garbage:
                    self._send_bytes(200, b"<html>upstream hiccup</html>", "text/html", {})
                elif fault is not None:
                    error = (
                        fault.body if fault.body is not None else {"error": "InternalServerError", "message": "boom"}
                    )
                    self._send(fault.status, error, fault.headers)
                else:
                    self._send(*api.answer(method, parts.path, params, headers, body))

            def _send(self, status: int, body: Any, headers: dict[str, str]) -> None:
                self._send_bytes(status, json.dumps(body).encode("utf-8"), "application/json; charset=utf-8", headers)

            def _send_bytes(self, status: int, payload: bytes, kind: str, headers: dict[str, str]) -> None:
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(payload)))
                for name, value in headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - http.server's signature
                """Silent: tests read `served` instead."""

        return Handler


def epoch_in(seconds: float) -> str:
    return str(int(time.time() + seconds))
