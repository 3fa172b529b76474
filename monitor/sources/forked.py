"""Lists made by a generator in a forked process, pickled through a pipe and received up to a bound ahead.

For work that holds the GIL, such as the archive reader's parsing and checking: a thread could not run it
beside the caller's, a process can, on another core. The caller gets the same lists in the same order, then
the generator's error, if it raised one, as if it had iterated the generator itself.

The child ignores SIGINT (Ctrl-C reaches the whole process group; the caller stops it when it stops) and
ends when the caller has gone (its next send finds the pipe broken), so it never outlives an import.
"""

from __future__ import annotations

import multiprocessing
import pickle
import queue
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from multiprocessing.connection import Connection
from typing import Any

from monitor.errors import SourceError

ProgressBytes = Callable[[int], None]
Lists = Callable[[ProgressBytes | None], Iterator[list[Any]]]  # given a byte counter (or None), the lists to send


def fork_available() -> bool:
    """Whether a process can be forked here (Linux; not macOS, where fork is unsafe, nor Windows)."""
    return sys.platform.startswith("linux") and "fork" in multiprocessing.get_all_start_methods()


def lists_from_process(lists: Lists, on_bytes: ProgressBytes | None, ahead: int) -> Iterator[list[Any]]:
    """`lists(counter)` run in a forked process; at most `ahead` of its lists are held here, pickled.

    The child counts the bytes it reads and sends the count with each list; `on_bytes` gets it as the
    list is taken. Stopping early (an error in the caller, Ctrl-C) ends the child.
    """
    context = multiprocessing.get_context("fork")
    receiver, sender = context.Pipe(duplex=False)
    child = context.Process(
        target=_send_lists, args=(lists, receiver, sender, on_bytes is not None), name="archive-reader", daemon=True
    )
    child.start()
    sender.close()  # the child's copy is now the only one: its end is the pipe's end
    messages: queue.Queue[bytes | None] = queue.Queue(ahead)
    stop = threading.Event()
    thread = threading.Thread(target=_receive, args=(receiver, messages, stop), name="archive-receiver", daemon=True)
    thread.start()
    try:
        yield from _unpickled(messages, on_bytes, child)
    finally:
        stop.set()
        if child.is_alive():
            child.terminate()
        child.join()
        thread.join()
        receiver.close()


def _unpickled(
    messages: queue.Queue[bytes | None], on_bytes: ProgressBytes | None, child: Any
) -> Iterator[list[Any]]:
    while (message := messages.get()) is not None:
        kind, payload, read = pickle.loads(message)
        if on_bytes is not None and read:
            on_bytes(read)
        if kind == "error":
            raise payload
        if kind == "end":
            return
        yield payload
    child.join()
    raise SourceError(f"the archive's reader process stopped unexpectedly (exit code {child.exitcode})")


def _receive(receiver: Connection, messages: queue.Queue[bytes | None], stop: threading.Event) -> None:
    """The receiving thread: the child's messages as they come (None at the pipe's end), until told to stop."""
    while not stop.is_set():
        try:
            message: bytes | None = receiver.recv_bytes()
        except (EOFError, OSError):
            message = None
        if not hand_over(messages, message, stop) or message is None:
            return


def hand_over(items: queue.Queue[Any], item: Any, stop: threading.Event) -> bool:
    """Put an item for a reader that may stop reading (a bounded queue, waited on a tenth of a second at a
    time); whether it was put."""
    while not stop.is_set():
        try:
            items.put(item, timeout=0.1)
            return True
        except queue.Full:
            continue
    return False


def _send_lists(lists: Lists, receiver: Connection, sender: Connection, counting: bool) -> None:
    """The child: each list, then "end" (or the error that stopped the generator); nothing once the caller has gone."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    receiver.close()  # the caller's end, inherited: held here, a send into a full pipe would wait for ever once it goes
    read = [0]

    def count(size: int) -> None:
        read[0] += size

    try:
        for items in lists(count if counting else None):
            _send(sender, "list", items, read)
        _send(sender, "end", None, read)
    except (BrokenPipeError, ConnectionResetError):
        return
    except BaseException as error:  # noqa: BLE001 - raised again in the caller
        try:
            _send(sender, "error", _picklable(error), read)
        except OSError:
            return


def _send(sender: Connection, kind: str, payload: Any, read: list[int]) -> None:
    sender.send_bytes(pickle.dumps((kind, payload, read[0]), protocol=pickle.HIGHEST_PROTOCOL))
    read[0] = 0


def _picklable(error: BaseException) -> BaseException:
    """The error itself when it survives pickling, else one that says the same in one line."""
    try:
        pickle.loads(pickle.dumps(error))
    except Exception:  # noqa: BLE001 - any error type may refuse
        return RuntimeError(f"{error.__class__.__name__}: {error}")
    return error
