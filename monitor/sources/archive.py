"""Archive files (CSV, JSON Lines or a JSON array, twarc2 output, Parquet) → Post records, streamed, with rejected lines explained.

Readers never hold the whole file: they yield one Post or one Reject per record, each with the line
the record starts on and the record as the file has it, so a 2 GB archive is imported in bounded memory
and every bad row is named.
"""

from __future__ import annotations

import csv
import html
import json
import logging
import queue
import re
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta, tzinfo
from functools import partial
from itertools import compress, repeat
from operator import attrgetter, methodcaller
from pathlib import Path
from typing import IO, Any

from monitor import cores
from monitor.errors import UsageError
from monitor.posts import (
    EARLIEST_POST,
    FUTURE_SLACK,
    MAX_FIELD_CHARS,
    MAX_TEXT_CHARS,
    Post,
    PostRows,
    as_utc,
    hashed_ids,
    parse_timestamp,
    post_row,
    stable_post_id,
    utc_text,
)
from monitor.sources.forked import ProgressBytes, fork_available, hand_over, lists_from_process

log = logging.getLogger(__name__)

FORMATS = ("csv", "jsonl", "json", "twarc", "parquet")  # json: one JSON array
REQUIRED_FIELDS = ("created_at", "text")
OPTIONAL_FIELDS = ("id", "author", "lang", "likes", "reposts", "replies", "followers", "url", "is_repost", "is_quote")
ALL_FIELDS = REQUIRED_FIELDS + OPTIONAL_FIELDS
_TRUE = {"1", "true", "yes", "y", "t"}
MAX_LINE_CHARS = 64 * 1024 * 1024  # one line (a JSON object, a twarc page) at most: bounded memory for any file
# a lone surrogate: bytes that were not UTF-8 (read with surrogateescape), or a lone \ud83d escape in JSON
_SURROGATE = re.compile("[\ud800-\udfff]")
# The header of `backlash export --format csv`: a file that starts with it is read back as our own export.
EXPORT_COLUMNS = [
    "source", "id", "created_at", "author", "text", "lang", "likes", "reposts", "replies", "followers",
    "url", "is_repost", "is_quote", "neg", "neu", "pos", "compound", "churn",
]  # fmt: skip
# A cell a spreadsheet may run as a formula (OWASP: = + - @ tab CR first), possibly behind quotes we added.
_FORMULA_START = re.compile(r"'*[=+\-@\t\r]")


RAW_CHARS = 32_000  # of a rejected record kept beside its reason: a spreadsheet cell holds 32,767


@dataclass(frozen=True)
class Reject:
    """A record that could not be read, why, and the record as the file has it (cut at RAW_CHARS)."""

    line: int  # 1-based line of the file where the record starts
    reason: str
    raw: str = ""


def _raw(text: str) -> str:
    text = text.rstrip("\r\n")
    return text if len(text) <= RAW_CHARS else text[:RAW_CHARS] + "…"


@dataclass(frozen=True)
class Dates:
    """How created_at is read: ISO 8601 and the other unambiguous forms, or one strptime format (--date-format).

    Times without an offset are in `tz`, the config's zone. `column` is the file's name for created_at (after
    --map), so a rejected date names the column the user sees.
    """

    tz: tzinfo = UTC
    date_format: str | None = None
    column: str = "created_at"

    def parse(self, stamp: str) -> datetime:
        try:
            return self._parse(stamp)
        except ValueError as error:
            where = "created_at" if self.column == "created_at" else f"created_at (column {self.column!r})"
            raise ValueError(f"{where}: {error}") from None

    def _parse(self, stamp: str) -> datetime:
        stamp = stamp.strip()
        if self.date_format is None:
            if match := _NUMERIC_DATE.match(stamp):
                _refuse_numeric_date(stamp, match)
            return parse_timestamp(stamp, self.tz)
        try:
            moment = datetime.strptime(stamp, self.date_format)
        except ValueError:
            raise ValueError(f"{stamp[:40]!r} does not match --date-format {self.date_format!r}") from None
        return as_utc(moment, self.tz, stamp)


# 11/09/2022, 13.11.22, 9-11-2022 10:00: day and month in an order only the file's author knows
_NUMERIC_DATE = re.compile(r"([0-9]{1,2})([/.\-])([0-9]{1,2})[/.\-]([0-9]{2,4})\b")


def _refuse_numeric_date(stamp: str, match: re.Match[str]) -> None:
    """A numeric date is never guessed: the error names the --date-format it needs (a day over 12 tells the
    order: '13/11/2022' is day/month, '11/13/2022' month/day; '11/05/2022' could be either)."""
    first, second = int(match.group(1)), int(match.group(3))
    day_first, month_first = _numeric_format(match, stamp, "%d", "%m"), _numeric_format(match, stamp, "%m", "%d")
    if first > 12 >= second:
        raise ValueError(f"{stamp[:40]!r} is day/month: read it with --date-format '{day_first}'")
    if second > 12 >= first:
        raise ValueError(f"{stamp[:40]!r} is month/day: read it with --date-format '{month_first}'")
    if first <= 12 and second <= 12:
        raise ValueError(
            f"{stamp[:40]!r} could be day/month or month/day; say which with --date-format, "
            f"e.g. --date-format '{day_first}' (day first) or '{month_first}' (month first)"
        )
    raise ValueError(f"{stamp[:40]!r} is not a date (neither {first} nor {second} is a month)")


def _numeric_format(match: re.Match[str], stamp: str, first: str, second: str) -> str:
    """The --date-format a stamp of this shape needs with this order: '27/11/2022 12:19:53' → '%d/%m/%Y %H:%M:%S'."""
    separator, year = match.group(2), "%Y" if len(match.group(4)) == 4 else "%y"
    clock = {0: "", 1: " %H:%M", 2: " %H:%M:%S"}.get(stamp[match.end() :].count(":"), " %H:%M")
    return f"{first}{separator}{second}{separator}{year}{clock}"


def check_date_format(date_format: str) -> str:
    """A --date-format that strptime can read back what strftime wrote with it; else a usage error."""
    sample = datetime(2022, 11, 13, 21, 5, 7, tzinfo=UTC)  # aware: a format with %z or %Z writes an offset
    try:
        datetime.strptime(sample.strftime(date_format), date_format)
    except ValueError as error:
        raise UsageError(f"--date-format {date_format!r}: {error}") from None
    if "%" not in date_format:
        raise UsageError(f"--date-format {date_format!r}: no % directive, e.g. '%d/%m/%Y %H:%M'")
    return date_format


Record = Post | PostRows | Reject


def guess_format(path: Path) -> str:
    """The format a file name suggests: .csv, .jsonl/.json/.ndjson, .parquet."""
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".json", ".ndjson"):
        return "jsonl"
    if suffix == ".parquet" or path.is_dir():
        return "parquet"
    return "csv"


DELIMITERS = ",;\t|"  # what a header line is sniffed for, comma first: it wins a tie
DELIMITER_NAMES = {",": "comma", ";": "semicolon", "\t": "tab", "|": "pipe"}
_QUOTED = re.compile(r'"[^"]*"')


def sniff_delimiter(path: Path) -> str:
    """The delimiter of a CSV file's header line: whichever of , ; tab | it holds most often (outside quotes)."""
    header = _QUOTED.sub("", _first_line(path))
    counts = [(header.count(candidate), -order, candidate) for order, candidate in enumerate(DELIMITERS)]
    found, _, delimiter = max(counts)
    return delimiter if found else ","


def parse_delimiter(text: str) -> str:
    """--delimiter: one character, or its name (tab, comma, semicolon, pipe) or \\t."""
    names = {name: character for character, name in DELIMITER_NAMES.items()} | {"\\t": "\t"}
    delimiter = names.get(text.lower(), text)
    if len(delimiter) != 1 or delimiter in '"\r\n':
        raise UsageError(f"--delimiter {text!r}: expected one character (other than a quote), or tab")
    return delimiter


def is_json_array(path: Path) -> bool:
    """Whether the file is one JSON array of objects ('[' then '{', ']' or the line's end), not JSON Lines."""
    return _ARRAY_START.match(_first_line(path)) is not None


_ARRAY_START = re.compile(r"\s*\[\s*(?:\{|\]|$)")  # a JSON Lines line that is an array ([[…) stays a bad line


def _first_line(path: Path, limit: int = 64 * 1024) -> str:
    """The file's first non-blank line (at most `limit` characters); empty for an unreadable file."""
    try:
        with path.open("r", encoding="utf-8-sig", errors="replace", newline="") as handle:
            while line := handle.readline(limit):
                if line.strip():
                    return line
    except OSError:  # the reader says why, in its own words
        pass
    return ""


def parse_mapping(pairs: tuple[str, ...] | list[str]) -> dict[str, str]:
    """['text=Tweet', 'created_at=Date Created'] → {'text': 'Tweet', 'created_at': 'Date Created'}."""
    mapping: dict[str, str] = {}
    for pair in pairs:
        field_name, sep, column = pair.partition("=")
        field_name, column = field_name.strip(), column.strip()
        if not sep or not field_name or not column:
            raise UsageError(f"--map {pair!r}: expected FIELD=COLUMN, e.g. --map text=Tweet")
        if field_name not in ALL_FIELDS:
            raise UsageError(f"--map {pair!r}: unknown field {field_name!r}; fields: {', '.join(ALL_FIELDS)}")
        mapping[field_name] = column
    return mapping


def read_archive(
    path: Path,
    fmt: str,
    source: str,
    mapping: Mapping[str, str],
    default_tz: tzinfo = UTC,
    on_bytes: ProgressBytes | None = None,
    delimiter: str = ",",
    date_format: str | None = None,
) -> Iterator[Record]:
    """Yield a Post or a Reject for every record of an archive file.

    The file is read in a thread, a few thousand records ahead of the caller: while the caller's database
    writes (which release the GIL), the next records are being parsed. A big file (READ_IN_PROCESS_BYTES) is
    read in a second process instead when a core is idle, up to a batch ahead: parsing and checking hold the
    GIL, so only a process has them run beside the writes. Either way the records, their order and the errors
    are the same. `fmt` "json" is one JSON array.
    """
    dates = Dates(default_tz, date_format, mapping.get("created_at", "created_at"))
    if fmt != "parquet" and _read_in_process_worth_it(path):
        records = partial(_read_records, path, fmt, source, mapping, dates, delimiter=delimiter)
        yield from _read_in_process(records, on_bytes)
        return
    yield from _read_ahead(_read_records(path, fmt, source, mapping, dates, on_bytes, delimiter))


def _read_records(
    path: Path,
    fmt: str,
    source: str,
    mapping: Mapping[str, str],
    dates: Dates,
    on_bytes: ProgressBytes | None,
    delimiter: str,
) -> Iterator[Record]:
    if fmt == "parquet":
        yield from _read_parquet(path, source, mapping, dates, on_bytes)
        return
    readers: dict[str, Reader] = {
        "csv": partial(_read_csv, delimiter=delimiter),
        "jsonl": _read_jsonl,
        "json": _read_json_array,
        "twarc": _read_twarc,
    }
    if fmt not in readers:
        raise UsageError(f"--format {fmt!r}: expected one of {', '.join(FORMATS)}")
    if fmt == "twarc" and mapping:
        raise UsageError("--map does not apply to --format twarc: its fields are X's own")
    try:
        # utf-8-sig: a spreadsheet's byte-order mark is not part of the first column's name
        handle = path.open("r", encoding="utf-8-sig", errors="surrogateescape", newline="")
    except OSError as error:
        raise UsageError(f"{path}: cannot read the archive ({error.strerror or error})") from None
    with handle:
        yield from readers[fmt](_CountingLines(handle, on_bytes), path, source, mapping, dates)


Reader = Callable[["_CountingLines", Path, str, Mapping[str, str], Dates], Iterator[Record]]


_AHEAD_CHUNK = 1_000  # posts (or rejects) handed over at once (a queue operation per record would cost more than a row)
_AHEAD_CHUNKS = 8  # chunks read ahead at most, so memory stays bounded whatever the file


def _read_ahead(records: Iterator[Record]) -> Iterator[Record]:
    """The records, produced by a reader thread; its errors are raised here, and stopping early stops it."""
    chunks: queue.Queue[list[Record] | BaseException | None] = queue.Queue(_AHEAD_CHUNKS)
    stop = threading.Event()
    reader = threading.Thread(target=_fill, args=(records, chunks, stop), name="archive-reader", daemon=True)
    reader.start()
    try:
        while (chunk := chunks.get()) is not None:
            if isinstance(chunk, BaseException):
                raise chunk
            yield from chunk
    finally:
        stop.set()
        reader.join()


def _fill(records: Iterator[Record], chunks: queue.Queue[Any], stop: threading.Event) -> None:
    try:
        for chunk in _chunks(records):
            if not hand_over(chunks, chunk, stop):
                return
        hand_over(chunks, None, stop)
    except BaseException as error:  # noqa: BLE001 - raised again in the caller's thread
        hand_over(chunks, error, stop)
    finally:
        close = getattr(records, "close", None)
        if close is not None:
            close()  # the file is closed by the thread that read it


# An archive file of this size or more is read in a second process when a core is idle: a process's start (a
# fork, ≈ 10 ms) is worth it only where the parse and the checks take seconds
READ_IN_PROCESS_BYTES = 4 * 1024 * 1024
# lists of _AHEAD_CHUNK posts held ahead, pickled (≈ 0.2 KB a post): the reader runs on while a whole import
# batch (IMPORT_BATCH, 200,000 posts) is written, for ≈ 50 MB
_PROCESS_AHEAD = 250


def _read_in_process_worth_it(path: Path) -> bool:
    try:
        big = path.is_file() and path.stat().st_size >= READ_IN_PROCESS_BYTES
    except OSError:  # the reader says why, in its own words
        return False
    return big and fork_available() and cores.core_idle()


def _read_in_process(
    records: Callable[[ProgressBytes | None], Iterator[Record]], on_bytes: ProgressBytes | None
) -> Iterator[Record]:
    """`records(counter)`, read in a forked process: the same records in the same lists as _read_ahead's thread."""
    for chunk in lists_from_process(lambda counter: _chunks(records(counter)), on_bytes, _PROCESS_AHEAD):
        yield from chunk


def _chunks(records: Iterable[Record]) -> Iterator[list[Record]]:
    """The records in lists of _AHEAD_CHUNK posts or more (a PostRows counts its rows), the last one possibly empty.

    An error while reading drops the list being filled: what the caller gets before the error is the same
    whether a thread or a process reads.
    """
    chunk: list[Record] = []
    posts = 0
    for record in records:
        chunk.append(record)
        posts += len(record.rows) if isinstance(record, PostRows) else 1
        if posts >= _AHEAD_CHUNK:
            yield chunk
            chunk, posts = [], 0
    yield chunk


class _CountingLines:
    """Iterates a text file's lines, reporting bytes read to a progress callback.

    A line longer than MAX_LINE_CHARS is cut there (the rest is read and dropped), so one endless line
    cannot take all memory; `take_cut()` tells the reader to reject the record it was part of.
    """

    def __init__(self, handle: IO[str], on_bytes: ProgressBytes | None) -> None:
        self.handle = handle
        self.on_bytes = on_bytes
        self.cut = False
        self.recording = False  # keep the lines read in `recent` (CSV: the raw text of a rejected row)
        self.recent: list[str] = []
        self.cut_at: list[int] = []  # while recording: the places in `recent` of lines that were cut

    def __iter__(self) -> Iterator[str]:
        readline, counting = self.handle.readline, self.on_bytes is not None  # a line costs little: no lookups
        while line := readline(MAX_LINE_CHARS + 1):
            if counting:
                self._count(line)
            if len(line) > MAX_LINE_CHARS and not line.endswith("\n"):
                self._drop_rest_of_line()
                self.cut, line = True, line + "\n"
                if self.recording:
                    self.cut_at.append(len(self.recent))
            if self.recording:
                self.recent.append(line)
            yield line

    def take_cut(self) -> bool:
        """Whether a line was cut since the last call."""
        cut, self.cut = self.cut, False
        return cut

    def _drop_rest_of_line(self) -> None:
        while (rest := self.handle.readline(MAX_LINE_CHARS)) and not rest.endswith("\n"):
            self._count(rest)
        self._count(rest)

    def _count(self, text: str) -> None:
        if self.on_bytes is not None:
            self.on_bytes(len(text.encode("utf-8", "surrogateescape")))


def _read_csv(
    lines: _CountingLines, path: Path, source: str, mapping: Mapping[str, str], dates: Dates, delimiter: str = ","
) -> Iterator[Record]:
    csv.field_size_limit(MAX_TEXT_CHARS)  # Python's default, made explicit: it is the text limit of every format
    reader = csv.reader(iter(lines), strict=True, delimiter=delimiter)
    try:
        header = next(reader)
    except (StopIteration, csv.Error):
        raise UsageError(f"{path}: empty file or unreadable CSV header") from None
    columns = _column_positions(header, mapping, path)
    ours = header == EXPORT_COLUMNS  # our own export: its quotes are ours and its text is already decoded
    cell = restore_cell if ours else _as_read
    # the fast path reads ISO dates only: with --date-format every date is the format's to judge
    fast = _FastRows(columns, source, dates.tz) if not ours and dates.date_format is None else None
    lines.recording = True
    while chunk := _CsvChunk.read(reader, lines, len(header)):
        checked = fast.rows(chunk.rows) if fast is not None else [None] * len(chunk.rows)
        rows: list[tuple[Any, ...]] = []
        for index, row in enumerate(checked):
            if row is None:  # the row path: every repair and every reject as a Post makes them
                fields = {name: cell(chunk.rows[index][position]) for name, position in columns.items()}
                record = _record(fields, chunk.starts[index], source, dates, decode=not ours)
                if isinstance(record, Reject):
                    chunk.rejects.append(replace(record, raw=chunk.raw(index)))
                    continue
                row = post_row(record)
            rows.append(row)
        yield from sorted(chunk.rejects, key=attrgetter("line"))
        if rows:
            yield PostRows(rows)


_CSV_CHUNK = 2_000  # rows read, then checked column by column, at once


@dataclass
class _CsvChunk:
    """Up to _CSV_CHUNK records of a CSV file: the rows of the header's width, and those that cannot be rows.

    `starts` and `ends` hold each row's first and last line (numbered from the file's start), for its Reject
    and its text as read (`raw`, from the chunk's lines in `recent`); records that broke the quoting, held a
    cut line or had another width are Rejects already.
    """

    rows: list[list[str]]
    starts: list[int]
    ends: list[int]
    rejects: list[Reject]
    first: int  # the line number of lines.recent[0]
    recent: list[str]

    @classmethod
    def read(cls, reader: Any, lines: _CountingLines, width: int) -> _CsvChunk | None:
        first = reader.line_num + 1
        lines.recent, lines.cut_at = [], []
        records: list[list[str] | csv.Error] = []
        ends: list[int] = []
        while len(records) < _CSV_CHUNK:
            try:
                for row in reader:  # a for loop: most of the cost of a row is its parse, done in C
                    records.append(row)
                    ends.append(reader.line_num)
                    if len(records) >= _CSV_CHUNK:
                        break
                else:
                    break
            except csv.Error as error:  # the reader goes on from the next line
                records.append(error)
                ends.append(reader.line_num)
        if not records:
            return None
        chunk = cls([], [], [], [], first, lines.recent)
        plain = not lines.cut_at and all(type(record) is list and len(record) == width for record in records)
        if plain:  # nearly every chunk: every record is a row
            chunk.rows, chunk.ends = records, ends  # type: ignore[assignment]
            chunk.starts = [first, *(end + 1 for end in ends[:-1])]
        else:
            chunk._split(records, ends, width, {first + at for at in lines.cut_at})
        return chunk

    def _split(self, records: list[list[str] | csv.Error], ends: list[int], width: int, cut: set[int]) -> None:
        start = self.first
        for record, end in zip(records, ends, strict=True):
            if cut and any(line in cut for line in range(start, end + 1)):
                self.rejects.append(Reject(start, _line_too_long(), self._raw(start, end)))
            elif isinstance(record, csv.Error):
                self.rejects.append(Reject(start, _csv_problem(record), self._raw(start, end)))
            elif len(record) == width:
                self.rows.append(record)
                self.starts.append(start)
                self.ends.append(end)
            elif record:  # an empty list is a blank line
                self.rejects.append(
                    Reject(start, f"expected {width} columns, found {len(record)}", self._raw(start, end))
                )
            start = end + 1

    def raw(self, index: int) -> str:
        """The text of row `index` as the file has it, cut at RAW_CHARS."""
        return self._raw(self.starts[index], self.ends[index])

    def _raw(self, start: int, end: int) -> str:
        return _raw("".join(self.recent[start - self.first : end - self.first + 1]))


def neutralise_cell(text: str) -> str:
    """A text a spreadsheet would take for a formula, prefixed with ' (OWASP's advice for CSV exports).

    A text that already starts with quotes before such a character gets one more, so restore_cell is exact.
    """
    return "'" + text if _FORMULA_START.match(text) else text


def restore_cell(text: str) -> str:
    """The text neutralise_cell was given: one added quote removed, only where neutralise_cell adds one."""
    return text[1:] if text.startswith("'") and _FORMULA_START.match(text) else text


def _as_read(text: str) -> str:
    return text


def _line_too_long() -> str:
    return f"a line of more than {MAX_LINE_CHARS:,} characters (cut there, the rest not read)"


def _csv_problem(error: csv.Error) -> str:
    if "field larger than field limit" in str(error):
        return f"a field of more than {MAX_TEXT_CHARS} characters, the limit of a text"
    return f"broken CSV quoting: {error}"


def _column_positions(header: list[str], mapping: Mapping[str, str], path: Path) -> dict[str, int]:
    """Field name → column index, honouring --map; a missing required column is a usage error."""
    positions = {name.strip(): index for index, name in enumerate(header)}
    columns: dict[str, int] = {}
    for field_name in ALL_FIELDS:
        column = mapping.get(field_name, field_name)
        if column in positions:
            columns[field_name] = positions[column]
        elif field_name in mapping:
            raise UsageError(f"{path}: --map {field_name}={column}: no column {column!r}; {_found(positions)}")
        elif field_name in REQUIRED_FIELDS:
            raise UsageError(
                f"{path}: no column {column!r} for required field {field_name!r} (use --map {field_name}=COLUMN); "
                f"{_found(positions)}"
            )
    return columns


def _found(positions: Mapping[str, int], shown: int = 20) -> str:
    """'columns found: 'when', 'text'' — the header as read, so a misspelt --map is easy to see."""
    names = [repr(name[:40]) for name in list(positions)[:shown]]
    more = f" and {len(positions) - shown} more" if len(positions) > shown else ""
    return f"columns found: {', '.join(names) or 'none'}{more}"


def _read_jsonl(
    lines: _CountingLines, path: Path, source: str, mapping: Mapping[str, str], dates: Dates
) -> Iterator[Record]:
    yield from _posts_from_objects(_json_objects(lines), path, source, mapping, dates, "line")


def _posts_from_objects(
    objects: JsonObjects,
    path: Path,
    source: str,
    mapping: Mapping[str, str],
    dates: Dates,
    unit: str,
) -> Iterator[Record]:
    """Posts from (line, JSON object, raw text) triples; a key --map names but no object has is warned about."""
    unseen = set(mapping.values())
    for number, item, raw in objects:
        if isinstance(item, Reject):
            yield item
            continue
        unseen.difference_update([key for key in unseen if key in item])
        fields = {name: item.get(mapping.get(name, name)) for name in ALL_FIELDS}
        record = _record(fields, number, source, dates)
        yield replace(record, raw=_raw(raw)) if isinstance(record, Reject) else record
    for field_name, key in mapping.items():
        if key in unseen:  # JSON has no header to check first: say so once the file is read
            log.warning("%s: --map %s=%s: no %s has the key %r", path, field_name, key, unit, key)


JsonObjects = Iterator[tuple[int, dict[str, Any] | Reject, str]]  # (line, the object or why not, its text as read)


def _json_objects(lines: _CountingLines) -> JsonObjects:
    """(line number, the line's JSON object or why it is rejected, the line), blank lines skipped."""
    for number, line in enumerate(lines, start=1):
        item = Reject(number, _line_too_long(), _raw(line)) if lines.take_cut() else _json_line(line, number)
        if item is not None:
            yield number, item, line  # cut for the rejects file only when a reject needs it


def _as_object(item: Any, number: int, raw: str) -> dict[str, Any] | Reject:
    return item if isinstance(item, dict) else Reject(number, "not a JSON object", _raw(raw))


def _json_line(line: str, number: int) -> dict[str, Any] | Reject | None:
    """One JSON object from a line; None for a blank line."""
    if not line.strip():
        return None
    if _has_bad_bytes(line):
        return Reject(number, "invalid UTF-8", _raw(line))  # the line's bytes; a \ud83d escape is caught per field
    try:
        return _as_object(json.loads(line), number, line)
    except json.JSONDecodeError as error:
        return Reject(number, f"not valid JSON: {error.msg} at column {error.colno}", _raw(line))
    except ValueError as error:  # a number of more than 4,300 digits
        return Reject(number, f"not valid JSON: {str(error).split(';')[0]}", _raw(line))
    except RecursionError:  # [[[[… thousands deep: no post looks like that
        return Reject(number, "not valid JSON: nested too deeply", _raw(line))


def _read_json_array(
    lines: _CountingLines, path: Path, source: str, mapping: Mapping[str, str], dates: Dates
) -> Iterator[Record]:
    yield from _posts_from_objects(_JsonArray(lines).objects(), path, source, mapping, dates, "object")


class _JsonArray:
    """The objects of one JSON array ([{...}, {...}]), decoded one at a time from a window of the file.

    The window holds the text not yet decoded (from `pos`), topped up WINDOW characters at a time, so
    memory stays bounded by the largest object (at most MAX_LINE_CHARS, as a line of any other format).
    A Reject's line is the line the object starts on.
    """

    WINDOW = 1 << 20  # characters read ahead at once: one decode attempt per object, one copy per window

    def __init__(self, lines: _CountingLines) -> None:
        self.lines = iter(lines)
        self.counting = lines
        self.text, self.pos, self.line, self.ended = "", 0, 1, False

    def objects(self) -> JsonObjects:
        """Each object in turn; where the array's text breaks, one Reject for the rest of the file."""
        try:
            yield from self._objects()
        except _BrokenArrayError as error:
            rest = _raw(self.text[self.pos : self.pos + RAW_CHARS + 1])
            yield self.line, Reject(self.line, f"{error}; the rest of the file is not read", rest), rest

    def _objects(self) -> JsonObjects:
        if self._next_char() != "[":
            raise _BrokenArrayError("not a JSON array: it does not start with '['")
        if self._peek() == "]":
            return
        decoder = json.JSONDecoder()
        while True:
            self._peek()
            number = self.line
            item, raw = self._decode(decoder)
            yield number, _as_object(item, number, raw), raw
            separator = self._next_char()
            if separator == "]":
                return
            if separator != ",":
                raise _BrokenArrayError("not a valid JSON array: expected ',' or ']' after an object")

    def _decode(self, decoder: json.JSONDecoder) -> tuple[Any, str]:
        if len(self.text) - self.pos < self.WINDOW // 2:  # topped up once half a window is used: each copy amortised
            self._fill(self.WINDOW)
        while True:
            try:
                item, end = decoder.raw_decode(self.text, self.pos)
            except json.JSONDecodeError as error:
                held = len(self.text) - self.pos
                if held > MAX_LINE_CHARS or not self._fill(held + self.WINDOW):  # broken, not just cut by the window
                    raise _BrokenArrayError(f"not valid JSON: {error.msg}") from None
                continue
            except ValueError as error:  # a number of more than 4,300 digits
                raise _BrokenArrayError(f"not valid JSON: {str(error).split(';')[0]}") from None
            except RecursionError:
                raise _BrokenArrayError("not valid JSON: nested too deeply") from None
            raw = _raw(self.text[self.pos : min(end, self.pos + RAW_CHARS + 1)])
            self._consume(end - self.pos)
            return item, raw

    def _fill(self, size: int) -> bool:
        """Read lines until the window holds `size` characters or the file ends; whether anything was added."""
        held = len(self.text) - self.pos
        if held >= size or self.ended:
            return False
        parts, added = [self.text[self.pos :]], 0
        while held + added < size:
            line = next(self.lines, None)
            if line is None:
                self.ended = True
                break
            if self.counting.take_cut():
                raise _BrokenArrayError(_line_too_long())
            parts.append(line)
            added += len(line)
        self.text, self.pos = "".join(parts), 0
        return added > 0

    def _peek(self) -> str:
        """The next character that is not white space (left in the window); '' at the end."""
        while True:
            self._consume(_JSON_SPACE.match(self.text, self.pos).end() - self.pos)  # type: ignore[union-attr]
            if self.pos < len(self.text) or not self._fill(self.WINDOW):
                return self.text[self.pos : self.pos + 1]

    def _next_char(self) -> str:
        character = self._peek()
        self._consume(len(character))
        return character

    def _consume(self, count: int) -> None:
        self.line += self.text.count("\n", self.pos, self.pos + count)
        self.pos += count


_JSON_SPACE = re.compile(r"[ \t\n\r]*")


class _BrokenArrayError(ValueError):
    """Where a JSON array's text breaks, the objects after it cannot be found."""


def _read_twarc(
    lines: _CountingLines, path: Path, source: str, mapping: Mapping[str, str], dates: Dates
) -> Iterator[Record]:
    from monitor.sources.x_payloads import normalize_page_items

    collected_at = datetime.now(UTC)
    for number, item, _page in _json_objects(lines):
        if isinstance(item, Reject):
            yield item
            continue
        for result in normalize_page_items(item, collected_at, source):
            yield result if isinstance(result, Post) else Reject(number, result)


def _record(fields: Mapping[str, Any], line: int, source: str, dates: Dates, decode: bool = True) -> Post | Reject:
    """A Post from raw field values, or a Reject naming the first problem (decode: HTML entities in the text)."""
    try:
        return _post_from_fields(fields, source, dates, decode)
    except ValueError as error:
        return Reject(line, str(error))


def _post_from_fields(fields: Mapping[str, Any], source: str, dates: Dates, decode: bool = True) -> Post:
    text = _text_field(fields, "text")
    if not text or not text.strip():
        raise ValueError("text: missing or empty")
    created_at = dates.parse(_text_field(fields, "created_at") or "")
    author = _text_field(fields, "author") or None
    # the id hashes the text as the file has it, so archives imported before entities were decoded keep their ids
    post_id = _text_field(fields, "id") or stable_post_id(author, created_at, text)
    return Post(
        source=source,
        id=post_id,
        created_at=created_at,
        text=html.unescape(text) if decode else text,  # scrapers keep X's "&amp;": decoded once, escaped on output
        author=author.lstrip("@") if author else None,
        lang=_text_field(fields, "lang") or None,
        url=_text_field(fields, "url") or None,
        is_repost=_flag_field(fields, "is_repost"),
        is_quote=_flag_field(fields, "is_quote"),
        likes=_count_field(fields, "likes"),
        reposts=_count_field(fields, "reposts"),
        replies=_count_field(fields, "replies"),
        followers=_count_field(fields, "followers"),
    )


def _text_field(fields: Mapping[str, Any], name: str) -> str | None:
    value = fields.get(name)
    if value is None:
        return None
    text = value if isinstance(value, str) else str(value)
    if _has_bad_bytes(text):
        raise ValueError(f"{name}: invalid UTF-8 or a lone surrogate")
    return text


def _flag_field(fields: Mapping[str, Any], name: str) -> bool:
    return (_text_field(fields, name) or "").strip().lower() in _TRUE


def _count_field(fields: Mapping[str, Any], name: str) -> int | None:
    value = fields.get(name)
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    try:
        return _whole_number(value)
    except (TypeError, ValueError, OverflowError):  # 'many', nan, inf, 1e400
        raise ValueError(f"{name}: {str(value)[:20]!r} is not a number") from None


def _whole_number(value: Any) -> int:
    """12, '12', '12.0', 1.2e3 → an int (Post then checks that the store can hold it)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    text = str(value).strip()
    try:
        return int(text)
    except ValueError:
        return int(float(text))


def _has_bad_bytes(text: str) -> bool:
    """Bytes that were not UTF-8 survive decoding as lone surrogates (surrogateescape)."""
    return _SURROGATE.search(text) is not None


# ---- the fast path: rows that need none of the row path's repairs ------------------------------------

# Plain ISO 8601 in UTC (or no offset, read in a UTC zone): the form of nearly every archive's dates.
# [0-9], not \d: \d matches other scripts' digits, which the row path reads differently
_STAMP = r"[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]{1,6})?"
_UTC_SUFFIX = r"(?:Z|\+00:00)"
_COUNT = "[0-9]{0,9}"  # at most 999,999,999: within MAX_COUNT, int() exact; empty is no count
# what makes a row need the row path: characters Post removes or refuses, and "&" (html.unescape may make them)
_NEEDS_ROW_PATH = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff&]")
_UTC_ZONES = ("UTC", "Etc/UTC")
_NOT_PLAIN = "2000-01-01 00:00:00"  # stands in for a row's time the fast path has already left to the row path


def _lines_of(cell: str) -> re.Pattern[str]:
    """A pattern that matches a column's cells joined by newlines, when each cell matches `cell`."""
    return re.compile(f"(?:{cell}\n)*{cell}")


class _FastRows:
    """The store's rows straight from CSV rows whose cells are plainly good, checked column by column.

    The row path (_record → Post) stays the authority: a row the checks here are unsure of (an unusual date,
    a number with a sign or a decimal point, an entity to decode, a control character, anything near a
    limit) comes back as None and goes through it, so every reject and every repair is exactly the row path's.
    Each check runs once over a whole column (a regex over its cells joined, a min or max); only a column
    that fails it is checked again cell by cell, to find the rows it must leave to the row path.
    """

    def __init__(self, columns: Mapping[str, int], source: str, tz: tzinfo) -> None:
        self.columns = columns
        self.source = source
        naive_is_utc = tz is UTC or getattr(tz, "key", None) in _UTC_ZONES
        stamp = f"{_STAMP}{_UTC_SUFFIX}?" if naive_is_utc else f"{_STAMP}{_UTC_SUFFIX}"
        self.stamp, self.stamps = re.compile(stamp), _lines_of(stamp)
        collected_at = datetime.now(UTC)
        self.collected_at = utc_text(collected_at)
        # an hour inside the row path's limit: a post near "now + 2 days" is judged by the row path's clock
        self.latest = (collected_at + FUTURE_SLACK - timedelta(hours=1)).replace(tzinfo=None)
        self.earliest = EARLIEST_POST.replace(tzinfo=None)
        self.enabled = len(source) <= MAX_FIELD_CHARS["source"]

    def rows(self, rows: list[list[str]]) -> list[tuple[Any, ...] | None]:
        """For each row (all of the header's width): the store's row, or None to send it the long way."""
        if not self.enabled or not rows:
            return [None] * len(rows)
        table = list(zip(*rows, strict=True))
        cells = {name: table[index] for name, index in self.columns.items()}
        good = [True] * len(rows)
        for column in cells.values():
            if _NEEDS_ROW_PATH.search("\n".join(column)):
                _leave(good, (_NEEDS_ROW_PATH.search(cell) is not None for cell in column))
        texts = cells["text"]
        if not all(map(str.strip, texts)) or max(map(len, texts)) > MAX_TEXT_CHARS:
            _leave(good, (not text.strip() or len(text) > MAX_TEXT_CHARS for text in texts))
        created_at = self._times(cells["created_at"], good)
        counts = [self._counts(cells.get(name), good) for name in ("likes", "reposts", "replies", "followers")]
        ids, authors, langs = (cells.get(name) for name in ("id", "author", "lang"))
        _within_limit(ids, MAX_FIELD_CHARS["id"], good)
        _within_limit(langs, MAX_FIELD_CHARS["lang"], good)
        stripped = [author.lstrip("@") if author else None for author in authors] if authors else None
        if authors and max(map(len, authors)) > MAX_FIELD_CHARS["author"]:  # checked as stored, without "@"
            _within_limit([author or "" for author in stripped or ()], MAX_FIELD_CHARS["author"], good)
        values = zip(
            repeat(self.source), self._ids(ids, authors, created_at, texts, good), map(_TIME_TEXT, created_at),
            texts, stripped or repeat(None), _or_none(langs), *counts, _or_none(cells.get("url")),
            _flags(cells.get("is_repost")), repeat(None), repeat(False), _flags(cells.get("is_quote")), repeat(None),
            repeat(self.collected_at),
        )  # fmt: skip
        if all(good):
            return list(values)
        return [row if ok else None for row, ok in zip(values, good, strict=False)]

    def _times(self, stamps: tuple[str, ...], good: list[bool]) -> list[datetime]:
        """Each row's time as naive UTC; a row whose time is not plain, or out of range, is left to the row path."""
        if not _all_match(self.stamps, stamps):
            _leave(good, (self.stamp.fullmatch(stamp) is None for stamp in stamps))
            stamps = tuple(stamp if ok else _NOT_PLAIN for stamp, ok in zip(stamps, good, strict=True))
        naive = re.sub(f"{_UTC_SUFFIX}(?=\n|$)", "", "\n".join(stamps)).split("\n")
        try:
            moments = list(map(datetime.fromisoformat, naive))
        except ValueError:  # 2012-02-30: the row path says why
            moments = [_naive_time(stamp, good, index) for index, stamp in enumerate(naive)]
        if min(moments) < self.earliest or max(moments) > self.latest:
            _leave(good, (not self.earliest <= moment <= self.latest for moment in moments))
        return moments

    @staticmethod
    def _counts(column: tuple[str, ...] | None, good: list[bool]) -> Iterable[int | None]:
        """A count column's values (None when empty); a row with anything but a plain whole number is left."""
        if column is None:
            return repeat(None)
        if not _all_match(_PLAIN_COUNTS, column):
            _leave(good, (cell.strip() != "" and _PLAIN_COUNT.fullmatch(cell) is None for cell in column))
            return [int(cell) if ok and cell.strip() else None for cell, ok in zip(column, good, strict=True)]
        return [int(cell) if cell else None for cell in column]

    @staticmethod
    def _ids(
        ids: tuple[str, ...] | None, authors: tuple[str, ...] | None, moments: list[datetime], texts: tuple[str, ...],
        good: list[bool],
    ) -> list[str]:  # fmt: skip
        """The file's ids, and stable_post_id for rows without one (and only for rows the fast path keeps)."""
        named = authors or repeat("")
        if ids is None and all(good):
            return hashed_ids(named, map(datetime.isoformat, moments), texts)
        given = ids or repeat("")
        wanted = [not given_id and ok for given_id, ok in zip(given, good, strict=False)]
        hashed = iter(hashed_ids(compress(named, wanted), map(datetime.isoformat, compress(moments, wanted)),
                                 compress(texts, wanted)))  # fmt: skip
        return [next(hashed) if want else given_id for given_id, want in zip(given, wanted, strict=False)]


_PLAIN_COUNT, _PLAIN_COUNTS = re.compile(_COUNT), _lines_of(_COUNT)
_TIME_TEXT = methodcaller("isoformat", " ", "microseconds")  # utc_text of a naive UTC time


def _leave(good: list[bool], leave: Iterable[bool]) -> None:
    """Mark rows for the row path: `leave` says, row by row, whether the fast path cannot judge it."""
    for index, left in enumerate(leave):
        if left:
            good[index] = False


def _within_limit(column: Sequence[str] | None, limit: int, good: list[bool]) -> None:
    if column is not None and max(map(len, column)) > limit:
        _leave(good, (len(cell) > limit for cell in column))


def _all_match(lines: re.Pattern[str], column: Sequence[str]) -> bool:
    """Whether every cell matches: one regex over the cells joined by newlines (a cell holding one fails)."""
    joined = "\n".join(column)
    return joined.count("\n") == len(column) - 1 and lines.fullmatch(joined) is not None


def _naive_time(stamp: str, good: list[bool], index: int) -> datetime:
    try:
        return datetime.fromisoformat(stamp)
    except ValueError:
        good[index] = False
        return datetime.fromisoformat(_NOT_PLAIN)


def _or_none(column: tuple[str, ...] | None) -> Iterable[str | None]:
    return [cell or None for cell in column] if column is not None else repeat(None)


def _flags(column: tuple[str, ...] | None) -> Iterable[bool]:
    return [cell.strip().lower() in _TRUE for cell in column] if column is not None else repeat(False)


# ---- Parquet (a file or a dataset folder, e.g. one `backlash export --format parquet` wrote) ----------


def _read_parquet(
    path: Path, source: str, mapping: Mapping[str, str], dates: Dates, on_bytes: ProgressBytes | None
) -> Iterator[Record]:
    """Rows of a Parquet file or dataset; a Reject's line is the row's 1-based number in reading order."""
    from monitor import parquet

    names, rows = parquet.read_rows(path)
    columns = _column_positions(names, mapping, path)
    for number, row in enumerate(rows, start=1):
        record = _record({name: row.get(names[index]) for name, index in columns.items()}, number, source, dates)
        yield replace(record, raw=_raw(json.dumps(row, default=str))) if isinstance(record, Reject) else record
    if on_bytes is not None and path.is_file():
        on_bytes(path.stat().st_size)
