"""Scoring and analysis as Dask work over Parquet datasets, on a LocalCluster or an existing scheduler.

The only module that imports dask (the optional `scale` extra). Each partition is scored by the same
BatchScorer the local path uses (one per worker thread, built once), and analysed by the same
AnalysisAccumulator; the partial accumulators are merged pairwise on the cluster, so the client only
receives per-bin and per-window sums.
"""

from __future__ import annotations

import copy
import importlib.util
import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from monitor.errors import ClusterError, UsageError
from monitor.pipeline.analysis_parts import analysis_accumulator
from monitor.pipeline.archive import export_parquet
from monitor.pipeline.report import finish_analysis, report
from monitor.pipeline.runlog import recorded_run
from monitor.pipeline.score import ScoreResult, write_chunk
from monitor.pipeline.workspace import ProgressCallback, Workspace, scorer_spec
from monitor.posts import SCORE_ROW_FIELDS, UNSCORED_POST_FIELDS

if TYPE_CHECKING:
    from monitor.report import ReportResult

INSTALL_HINT = "pip install 'backlash-monitor[scale]'"
LOCAL_WORKERS = 2  # a LocalCluster's worker processes when none is given
CONNECT_TIMEOUT = "10s"
_ANALYSIS_FROM_PARQUET = ["source", "id", "created_at", "text", "author", "lang", "likes", "reposts", "replies",
    "followers", "url", "is_repost", "is_quote", "status", "compound", "churn", "aspects", "scored_lang"]  # fmt: skip


def require_dask() -> None:
    """Fail with the install hint (exit 2) when the scale extra is missing."""
    try:
        import dask.dataframe  # noqa: F401
        import distributed  # noqa: F401
    except ImportError:
        raise UsageError(f"--engine dask needs the scale extra: {INSTALL_HINT}") from None
    if importlib.util.find_spec("pyarrow") is None:
        raise UsageError(f"--engine dask needs the scale extra: {INSTALL_HINT}")


@contextmanager
def connect(scheduler: str | None, workers: int = LOCAL_WORKERS, processes: bool = True) -> Iterator[Any]:
    """A client of the scheduler at an address (tcp://host:8786), or of a LocalCluster started here."""
    require_dask()
    from distributed import Client, LocalCluster

    if scheduler:
        try:
            client = Client(scheduler, timeout=CONNECT_TIMEOUT)
        except (OSError, TimeoutError) as error:
            raise ClusterError(f"cannot reach the Dask scheduler at {scheduler}: {error}") from None
        with client:
            yield client
        return
    # one thread per worker: VADER and the tokenizer are pure Python, threads would share one GIL
    with LocalCluster(
        n_workers=workers, threads_per_worker=1, processes=processes, dashboard_address=None,
        silence_logs=logging.ERROR,
    ) as cluster, Client(cluster) as client:  # fmt: skip
        yield client


def worker_count(client: Any) -> int:
    return len(client.scheduler_info().get("workers", {}))


# ---- scoring ----------------------------------------------------------------------------------------

_thread_scorers = threading.local()


def _batch_scorer(spec: Any) -> Any:
    """This worker thread's BatchScorer for a spec, built on first use (an analyzer is not thread-safe)."""
    from monitor.scoring import BatchScorer

    cached = getattr(_thread_scorers, "by_key", None)
    if cached is None:
        cached = _thread_scorers.by_key = {}
    if spec.key() not in cached:
        cached[spec.key()] = BatchScorer(spec, workers=1)
    return cached[spec.key()]


def score_partition(posts: Any, spec: Any) -> Any:
    """Score rows (SCORE_ROW_FIELDS) of a partition of posts (UNSCORED_POST_FIELDS)."""
    import pandas as pd

    batch = _batch_scorer(spec)
    columns = posts[list(UNSCORED_POST_FIELDS)].astype(object)
    records = list(columns.where(columns.notna(), None).itertuples(index=False, name=None))
    rows = batch.collect(batch.submit(records)).rows
    return pd.DataFrame.from_records(rows, columns=list(SCORE_ROW_FIELDS)).astype(object)


def score_dataset(client: Any, folder: Path, spec: Any) -> Iterator[list[Any]]:
    """Score every post of a Parquet folder on the cluster; yield the score rows partition by partition."""
    import dask.dataframe as dd
    import pandas as pd
    from distributed import as_completed

    posts = dd.read_parquet(str(folder))
    meta = pd.DataFrame({name: pd.Series(dtype=object) for name in SCORE_ROW_FIELDS})
    scored = posts.map_partitions(score_partition, spec, meta=meta)
    futures = client.compute(scored.to_delayed())
    try:
        for future in as_completed(futures):
            frame = future.result()
            future.release()
            yield frame.astype(object).where(frame.notna(), None).to_dict("split")["data"]  # rows of SCORE_ROW_FIELDS
    except (OSError, TimeoutError) as error:
        raise ClusterError(f"scoring on the cluster failed: {error}") from None


# ---- analysis ---------------------------------------------------------------------------------------


def analysis_frame(parquet_posts: Any) -> Any:
    """A partition of an exported dataset → the post frame AnalysisAccumulator.add() reads (lang: the scorer's language)."""
    frame = parquet_posts.astype(object).where(parquet_posts.notna(), None).rename(columns={"id": "post_id"})
    frame["lang_tag"] = frame["lang"]
    frame["lang"] = frame["scored_lang"].where(frame["scored_lang"].notna(), frame["lang"])
    return frame.drop(columns=["scored_lang"])


def _partition_sums(parquet_posts: Any, empty: Any) -> Any:
    return copy.deepcopy(empty).add(analysis_frame(parquet_posts))


def _merged(first: Any, second: Any) -> Any:
    return first.merge(second)


def analyze_dataset(client: Any, folder: Path, empty: Any) -> Any:
    """Feed every partition of an event's Parquet folder to a copy of an empty AnalysisAccumulator on the
    cluster and merge the copies pairwise there; return the merged accumulator."""
    import dask
    import dask.dataframe as dd

    if not any(folder.rglob("*.parquet")):
        return empty
    posts = dd.read_parquet(str(folder), columns=_ANALYSIS_FROM_PARQUET)
    parts = [dask.delayed(_partition_sums)(part, empty) for part in posts.to_delayed()]
    while len(parts) > 1:
        pairs = [parts[i : i + 2] for i in range(0, len(parts), 2)]
        parts = [dask.delayed(_merged)(*pair) if len(pair) == 2 else pair[0] for pair in pairs]
    try:
        return client.compute(parts[0]).result()
    except (OSError, TimeoutError) as error:
        raise ClusterError(f"analysis on the cluster failed: {error}") from None


# ---- the verbs on a cluster: `score --engine dask`, `report --engine dask` ----------------------------


UNSCORED_FIELDS = list(zip(UNSCORED_POST_FIELDS, ["string", "string", "string", "string", "bool"], strict=True))


def _unscored_records(chunk: list[tuple[Any, ...]]) -> list[dict[str, Any]]:
    """Unscored posts as Parquet rows; is_bot as the bool its column holds (SQLite reads it as 0/1)."""
    return [
        {"source": source, "post_id": post_id, "text": text, "lang": lang, "is_bot": bool(is_bot)}
        for source, post_id, text, lang, is_bot in chunk
    ]


def dask_dataset(ws: Workspace) -> Path:
    """Where the Dask engine stages its Parquet data: parquet/ beside a SQLite database, else ./data/parquet.

    With a remote cluster this folder must be on a file system every worker sees at the same path.
    """
    url = ws.config.database_url()
    if url.startswith("sqlite:///") and url != "sqlite:///:memory:":
        return Path(url.removeprefix("sqlite:///")).parent / "parquet"
    return ws.config.resolve_path(Path("data/parquet"))


def score_dask(
    ws: Workspace,
    scheduler: str | None = None,
    dataset: Path | None = None,
    workers: int | None = None,
    on_progress: ProgressCallback | None = None,
    processes: bool = True,
) -> ScoreResult:
    """Score every post the current scorer has not scored yet on a Dask cluster; the scores go into the store.

    The unscored posts are staged as Parquet files (one per scoring.chunk_size posts) under the dataset
    folder, scored there with one analyzer per worker, and each partition's scores written back as it arrives.
    """
    import shutil

    from monitor import parquet
    from monitor.scoring import ChunkScores

    require_dask()
    spec = scorer_spec(ws)
    folder = (dataset or dask_dataset(ws)) / "unscored"
    chunks = ws.store.iter_unscored(spec.key(), ws.config.scoring.chunk_size)
    parts = parquet.write_parts(map(_unscored_records, chunks), folder, UNSCORED_FIELDS)
    result = ScoreResult(scorer=spec.key())
    if not parts:
        return result
    with recorded_run(ws.store, "score", tally=lambda: (result.total, result.scored, 0.0)) as run:
        try:
            with connect(scheduler, workers or LOCAL_WORKERS, processes) as client:
                result.workers = worker_count(client)
                for rows in score_dataset(client, folder, spec):
                    write_chunk(ws, ChunkScores.of_rows(rows), result, on_progress)
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        run.message = f"scorer {result.scorer} on dask"
    return result


def analyze_event_dask(ws: Workspace, event_name: str, client: Any, dataset: Path | None = None) -> Any:
    """analyze_event on a Dask cluster: the event is exported as a Parquet dataset, analysed partition by
    partition on the workers, and the partial sums merged there."""
    event = ws.config.event(event_name)
    folder = (dataset or dask_dataset(ws)) / "posts"
    export_parquet(ws, event.name, folder)
    accumulator = analyze_dataset(client, folder / f"event={event.name}", analysis_accumulator(ws, event))
    return finish_analysis(ws, event.name, accumulator)


def report_dask(
    ws: Workspace,
    event_name: str | None = None,
    scheduler: str | None = None,
    dataset: Path | None = None,
    workers: int | None = None,
    processes: bool = True,
) -> list[ReportResult]:
    """report() with each event analysed on a Dask cluster (a LocalCluster unless a scheduler is given)."""
    require_dask()
    with connect(scheduler, workers or LOCAL_WORKERS, processes) as client:
        return report(ws, event_name, analyse=lambda ws, name: analyze_event_dask(ws, name, client, dataset))
