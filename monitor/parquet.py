"""Parquet datasets with pyarrow: posts with their scores written partitioned by event and day, and read back.

The only module that imports pyarrow (the optional `scale` extra). Rows go in and out in batches, so a
dataset of any size is written or read in bounded memory.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

from monitor.errors import UsageError

log = logging.getLogger(__name__)

INSTALL_HINT = "pip install 'backlash-monitor[scale]'"
BATCH_ROWS = 50_000
FILE_ROWS = 50_000  # rows per file at most: a storm day is many Dask partitions, each about one local analysis chunk

# Columns of an exported dataset (besides the partition columns event and day), one per line:
POST_FIELDS: list[tuple[str, str]] = [
    ("source", "string"),  # platform or "archive"
    ("id", "string"),  # the post's id on its platform
    ("created_at", "timestamp"),  # UTC
    ("author", "string"),
    ("text", "string"),
    ("lang", "string"),  # the platform's language tag
    ("likes", "int64"),
    ("reposts", "int64"),
    ("replies", "int64"),
    ("followers", "int64"),
    ("url", "string"),
    ("is_repost", "bool"),
    ("is_quote", "bool"),  # quotes another post (its text is its own)
    ("neg", "float64"),  # scores: empty until scored, and for skipped posts
    ("neu", "float64"),
    ("pos", "float64"),
    ("compound", "float64"),
    ("churn", "bool"),
    ("aspects", "string"),  # comma-separated aspect names
    ("status", "string"),  # "scored", "skipped:<reason>", or empty when not scored yet
    ("scored_lang", "string"),  # the language the scorer used (the tag, or its guess)
]


def pyarrow_module() -> Any:
    """pyarrow, or a usage error that says how to install it."""
    try:
        import pyarrow
        import pyarrow.dataset  # noqa: F401 - the submodule must be loaded before use
        import pyarrow.parquet  # noqa: F401
    except ImportError:
        raise UsageError(f"Parquet needs the scale extra: {INSTALL_HINT}") from None
    return pyarrow


def schema(fields: list[tuple[str, str]], partition_columns: Iterable[str] = ()) -> Any:
    pa = pyarrow_module()
    types = {"string": pa.string(), "timestamp": pa.timestamp("us", tz="UTC"), "int64": pa.int64()}
    types |= {"bool": pa.bool_(), "float64": pa.float64()}
    columns = [pa.field(name, types[kind]) for name, kind in fields]
    return pa.schema(columns + [pa.field(name, pa.string()) for name in partition_columns])


def write_event_dataset(
    rows: Iterable[dict[str, Any]],
    out: Path,
    event: str,
    on_rows: Callable[[int], None] | None = None,
    rows_per_file: int = FILE_ROWS,
) -> int:
    """Write an event's rows (POST_FIELDS) under out/event=<event>/day=<YYYY-MM-DD>/, replacing that event's folder.

    A day holds files of at most `rows_per_file` rows: Dask reads each file as one partition, so a
    worker's memory is bounded by the file size rather than by the busiest day. Other events' folders
    in `out` are kept; the new folder is written beside and swapped in, so a reader never sees half of it.
    """
    pa = pyarrow_module()
    target = out / f"event={event}"
    staging = out / f".event={event}.part"
    shutil.rmtree(staging, ignore_errors=True)
    out.mkdir(parents=True, exist_ok=True)
    table_schema = schema(POST_FIELDS, ["day"])
    written = [0]

    def batches() -> Iterator[Any]:
        for chunk in _chunks(rows, BATCH_ROWS):
            for row in chunk:
                row["day"] = row["created_at"].strftime("%Y-%m-%d")
            written[0] += len(chunk)
            if on_rows is not None:
                on_rows(len(chunk))
            yield pa.RecordBatch.from_pylist(chunk, schema=table_schema)

    pa.dataset.write_dataset(
        batches(), staging, schema=table_schema, format="parquet", partitioning=["day"],
        partitioning_flavor="hive", basename_template="part-{i}.parquet", max_rows_per_file=rows_per_file,
        max_rows_per_group=min(BATCH_ROWS, rows_per_file),
    )  # fmt: skip
    _swap_in(staging, target)
    return written[0]


def _swap_in(staging: Path, target: Path) -> None:
    if not staging.exists():  # no rows: an empty folder stands for an empty event
        staging.mkdir(parents=True)
    old = target.with_name(f".{target.name}.old")  # dotted: readers skip it
    shutil.rmtree(old, ignore_errors=True)  # left by an export killed during its swap
    shutil.rmtree(target.with_name(target.name + ".old"), ignore_errors=True)  # the same, by an older version
    if target.exists():
        target.rename(old)
    staging.rename(target)
    shutil.rmtree(old, ignore_errors=True)


def write_parts(chunks: Iterable[list[dict[str, Any]]], folder: Path, fields: list[tuple[str, str]]) -> int:
    """One Parquet file per chunk of rows (part-00000.parquet, …), replacing the folder; returns the file count."""
    pa = pyarrow_module()
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    table_schema = schema(fields)
    parts = 0
    for chunk in chunks:
        table = pa.Table.from_pylist(chunk, schema=table_schema)
        pa.parquet.write_table(table, folder / f"part-{parts:05d}.parquet")
        parts += 1
    return parts


def read_rows(path: Path, batch_rows: int = BATCH_ROWS) -> tuple[list[str], Iterator[dict[str, Any]]]:
    """The column names of a Parquet file or dataset folder, and its rows as dicts, batch by batch.

    In a folder, files that are not .parquet are skipped with a warning naming each; a .parquet file that
    cannot be read is a usage error naming it, raised before any row is read.
    """
    pa = pyarrow_module()
    files = dataset_files(path)
    for file in files:
        _check_readable(pa, file)
    base = {"partition_base_dir": str(path)} if path.is_dir() else {}
    try:
        dataset = pa.dataset.dataset([str(file) for file in files], format="parquet", partitioning="hive", **base)
    except (OSError, pa.ArrowException) as error:
        raise UsageError(f"{path}: not a readable Parquet file or dataset ({error})") from None
    return list(dataset.schema.names), _rows(pa, path, dataset, batch_rows)


def dataset_files(path: Path) -> list[Path]:
    """The .parquet files of a dataset folder (or the one file), hidden and _-prefixed parts left out."""
    if not path.is_dir():
        return [path]
    files: list[Path] = []
    for file in sorted(path.rglob("*")):
        hidden = any(part.startswith((".", "_")) for part in file.relative_to(path).parts)
        if hidden or not file.is_file():
            continue
        if file.suffix.lower() == ".parquet":
            files.append(file)
        else:
            log.warning("%s: skipped, not a .parquet file", file)
    if not files:
        raise UsageError(f"{path}: no .parquet files in this folder")
    return files


def _check_readable(pa: Any, file: Path) -> None:
    try:
        pa.parquet.read_metadata(file)
    except (OSError, pa.ArrowException) as error:
        raise UsageError(f"{file}: not a readable Parquet file ({error})") from None


def _rows(pa: Any, path: Path, dataset: Any, batch_rows: int) -> Iterator[dict[str, Any]]:
    try:
        for batch in dataset.to_batches(batch_size=batch_rows):
            for row in batch.to_pylist():
                yield {key: _plain(value) for key, value in row.items()}
    except (OSError, pa.ArrowException) as error:  # a damaged page, or files whose columns disagree
        raise UsageError(f"{path}: cannot read the Parquet data ({error})") from None


def _plain(value: Any) -> Any:
    """A NaN (pandas' missing number) as None; a time as ISO 8601 text, as an archive's reader expects."""
    if isinstance(value, float) and value != value:
        return None
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def _chunks(rows: Iterable[dict[str, Any]], size: int) -> Iterator[list[dict[str, Any]]]:
    chunk: list[dict[str, Any]] = []
    for row in rows:
        chunk.append(row)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk
