"""Scale: Parquet export and import, the Dask engine against the local path, bounded memory on big imports."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from monitor.cli import cli
from monitor.pipeline import Workspace, analyze_event, open_workspace, score
from monitor.sources.simulated import simulate
from tests.analysis_compare import assert_same_analysis

EVENT = "instagram-tos-2012"
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def scale_extra() -> None:
    """Skip a test that needs the [scale] extra (pyarrow, dask[distributed]) when it is not installed."""
    for module in ("pyarrow", "dask.dataframe", "distributed"):
        pytest.importorskip(module)


def run(config: Path, *args: str) -> Result:
    return CliRunner().invoke(cli, ["--config", str(config), *args], catch_exceptions=False)


@pytest.fixture
def workspace_of(write_config: Callable[..., Path], tmp_path: Path) -> Iterator[Callable[..., Workspace]]:
    """Workspaces on their own databases, each holding the same simulated posts."""
    opened: list[Workspace] = []

    def make(name: str, posts: int, **overrides: Any) -> Workspace:
        config = write_config(database=f"sqlite:///{tmp_path / name / 'db.sqlite'}", **overrides)
        ws = open_workspace(config)
        ws.store.add_posts(EVENT, simulate(ws.config.event(EVENT), ws.config, seed=5, posts=posts))
        opened.append(ws)
        return ws

    yield make
    for ws in opened:
        ws.close()


def all_scores(ws: Workspace) -> list[dict[str, Any]]:
    rows = [row for chunk in ws.store.iter_event_posts(EVENT, scorer=str(_key(ws))) for row in chunk]
    names = ("source", "post_id", "status", "scored_lang", "neg", "neu", "pos", "compound", "churn", "aspects")
    return sorted(
        ({name: row[name] for name in names} for row in rows), key=lambda row: (row["source"], row["post_id"])
    )


def _key(ws: Workspace) -> str:
    from monitor.pipeline import current_scorer

    return str(current_scorer(ws))


# ---- Parquet ---------------------------------------------------------------------------------------------


@pytest.mark.usefixtures("scale_extra")
def test_parquet_export_is_partitioned_by_event_and_day_and_imports_back(
    workspace_of: Callable[..., Workspace], write_config: Callable[..., Path], tmp_path: Path
) -> None:
    source = workspace_of("source", 600)
    score(source, workers=1)
    out = tmp_path / "dataset"
    config = write_config(database=f"sqlite:///{tmp_path / 'source' / 'db.sqlite'}")
    result = run(config, "export", "--event", EVENT, "--format", "parquet", "--out", str(out))
    assert result.exit_code == 0, result.output
    assert "600 posts" in result.output
    days = sorted(path.name for path in (out / f"event={EVENT}").iterdir())
    assert days[0] == "day=2012-12-10" and all(
        day.startswith("day=2012-") or day.startswith("day=2013-") for day in days
    )

    target = write_config(database=f"sqlite:///{tmp_path / 'target' / 'db.sqlite'}")
    imported = run(target, "import", str(out), "--event", EVENT, "--source", "simulated")
    assert imported.exit_code == 0, imported.output
    assert "read 600, new 600, duplicate 0, rejected 0" in imported.output
    again = open_workspace(target)
    names = ("source", "post_id", "created_at", "text", "author", "lang", "likes", "reposts", "followers", "is_repost")
    copied = sorted(tuple(row[n] for n in names) for chunk in again.store.iter_event_posts(EVENT) for row in chunk)
    original = sorted(tuple(row[n] for n in names) for chunk in source.store.iter_event_posts(EVENT) for row in chunk)
    again.close()
    assert copied == original


@pytest.mark.usefixtures("scale_extra")
def test_a_parquet_export_killed_during_its_swap_does_not_block_the_next(
    workspace_of: Callable[..., Workspace], write_config: Callable[..., Path], tmp_path: Path
) -> None:
    """Killed between moving the old folder aside and removing it, an export left event=E.old; the next one works."""
    workspace_of("source", 50)
    out = tmp_path / "dataset"
    config = write_config(database=f"sqlite:///{tmp_path / 'source' / 'db.sqlite'}")
    assert run(config, "export", "--event", EVENT, "--format", "parquet", "--out", str(out)).exit_code == 0
    left_behind = out / f"event={EVENT}.old" / "day=2012-12-10"
    left_behind.mkdir(parents=True)
    (left_behind / "part-0.parquet").write_bytes(b"PAR1")
    result = run(config, "export", "--event", EVENT, "--format", "parquet", "--out", str(out))
    assert result.exit_code == 0, result.output
    assert sorted(path.name for path in out.iterdir()) == [f"event={EVENT}"]


@pytest.mark.usefixtures("scale_extra")
def test_a_storm_day_is_written_as_several_files_that_dask_reads_as_several_partitions(tmp_path: Path) -> None:
    import dask.dataframe as dd
    import pyarrow.parquet as pq

    from monitor import parquet

    storm = datetime(2012, 12, 18, tzinfo=UTC)
    rows = [
        {"source": "x", "id": str(n), "created_at": storm + timedelta(seconds=n), "text": f"post {n}"}
        for n in range(250)
    ]
    assert parquet.write_event_dataset(iter(rows), tmp_path, EVENT, rows_per_file=100) == 250
    files = sorted((tmp_path / f"event={EVENT}" / "day=2012-12-18").glob("*.parquet"))
    sizes = [pq.read_metadata(path).num_rows for path in files]
    assert sorted(sizes) == [50, 100, 100]
    frame = dd.read_parquet(str(tmp_path / f"event={EVENT}"))
    assert frame.npartitions == 3
    assert sorted(frame.compute()["id"].astype(int)) == list(range(250))


@pytest.mark.usefixtures("scale_extra")
def test_parquet_file_import_maps_columns_and_rejects_bad_rows(
    write_config: Callable[..., Path], tmp_path: Path
) -> None:
    import pandas as pd

    archive = tmp_path / "posts.parquet"
    frame = pd.DataFrame(
        {
            "Tweet": ["Quit Instagram today", "", "Fine by me", "Sell my photos? no"],
            "Date": ["2012-12-18T10:00:00Z", "2012-12-18T11:00:00Z", "not a date", "2012-12-18 12:30:00"],
            "likes": [3.0, 1.0, None, float("nan")],
        }
    )
    frame.to_parquet(archive)
    config = write_config()
    result = run(config, "import", str(archive), "--event", EVENT, "--map", "text=Tweet", "--map", "created_at=Date")
    assert result.exit_code == 3, result.output
    assert "read 2, new 2, duplicate 0, rejected 2" in result.output
    assert "line 2: text: missing or empty" in result.output and "line 3: created_at" in result.output
    ws = open_workspace(config)
    rows = [row for chunk in ws.store.iter_event_posts(EVENT) for row in chunk]
    ws.close()
    assert [(row["text"], row["likes"]) for row in rows] == [("Quit Instagram today", 3), ("Sell my photos? no", None)]


@pytest.mark.usefixtures("scale_extra")
def test_parquet_without_a_required_column_is_exit_2(write_config: Callable[..., Path], tmp_path: Path) -> None:
    import pandas as pd

    archive = tmp_path / "posts.parquet"
    pd.DataFrame({"text": ["hello"]}).to_parquet(archive)
    result = run(write_config(), "import", str(archive), "--event", EVENT)
    assert result.exit_code == 2 and "no column 'created_at' for required field 'created_at'" in result.output


# ---- Dask against the local path -------------------------------------------------------------------------


@pytest.mark.usefixtures("scale_extra")
@pytest.mark.slow
def test_dask_on_a_local_cluster_gives_the_local_scores_and_numbers(
    workspace_of: Callable[..., Workspace], tmp_path: Path
) -> None:
    from monitor import dask_engine
    from monitor.dask_engine import analyze_event_dask, score_dask

    # chunks of 700: several partitions, spread over two worker processes as `--engine dask` starts them
    local, distributed = workspace_of("local", 3000), workspace_of("dask", 3000, scoring={"chunk_size": 700})
    local_result = score(local, workers=1)
    dask_result = score_dask(distributed, dataset=tmp_path / "parquet", workers=2, processes=True)
    assert (dask_result.scored, dask_result.skipped, dask_result.total, dask_result.workers) == (
        local_result.scored, local_result.skipped, local_result.total, 2,
    )  # fmt: skip
    assert all_scores(distributed) == all_scores(local)
    assert score_dask(distributed, dataset=tmp_path / "parquet", workers=2, processes=False).total == 0

    expected = analyze_event(local, EVENT)
    with dask_engine.connect(None, workers=2, processes=True) as client:
        found = analyze_event_dask(distributed, EVENT, client, tmp_path / "parquet")
    assert found.coverage.posts == 3000 and found.coverage.scored == local_result.scored
    assert_same_analysis(found, expected)


@pytest.mark.usefixtures("scale_extra")
@pytest.mark.slow
def test_report_with_the_dask_engine_writes_the_local_summary(
    write_config: Callable[..., Path], tmp_path: Path, workspace_of: Callable[..., Workspace]
) -> None:
    ws = workspace_of("one", 800)
    score(ws, workers=1)
    config = write_config(database=f"sqlite:///{tmp_path / 'one' / 'db.sqlite'}")
    assert run(config, "report").exit_code == 0
    summary_path = tmp_path / "dashboards" / EVENT / "summary.json"
    local = json.loads(summary_path.read_text())
    result = run(config, "report", "--engine", "dask", "--dataset", str(tmp_path / "pq"))
    assert result.exit_code == 0, result.output
    on_dask = json.loads(summary_path.read_text())
    for document in (local, on_dask):
        document.pop("generated_at")
    assert on_dask["coverage"] == local["coverage"] and on_dask["drivers"] == local["drivers"]
    assert on_dask["latest_bin"]["volume"] == local["latest_bin"]["volume"]
    assert on_dask["totals"]["since_announced"]["mean_compound"] == pytest.approx(
        local["totals"]["since_announced"]["mean_compound"], rel=1e-9
    )


@pytest.mark.usefixtures("scale_extra")
@pytest.mark.slow
def test_an_unreachable_scheduler_is_one_line(write_config: Callable[..., Path]) -> None:
    result = run(write_config(), "report", "--engine", "dask", "--scheduler", "tcp://127.0.0.1:9")
    assert result.exit_code == 1
    assert "cannot reach the Dask scheduler at tcp://127.0.0.1:9" in result.output


def test_without_the_scale_extra_the_dask_engine_says_how_to_install_it(write_config: Callable[..., Path]) -> None:
    config = write_config()
    blocked = "import sys; sys.modules.update(dask=None, distributed=None, pyarrow=None)\n"
    script = (
        blocked
        + f"from monitor.cli import main; sys.argv = ['backlash', '--config', {str(config)!r}, 'score', '--engine', 'dask']; main()"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "error: --engine dask needs the scale extra: pip install 'backlash-monitor[scale]'"
    ]
    plain = (
        blocked + f"from monitor.cli import main; sys.argv = ['backlash', '--config', {str(config)!r}, 'score']; main()"
    )
    assert subprocess.run([sys.executable, "-c", plain], capture_output=True, text=True, cwd=ROOT).returncode == 0


# ---- bounded memory --------------------------------------------------------------------------------------

IMPORT_IN_A_CHILD = textwrap.dedent(
    """
    import csv, sys
    from pathlib import Path
    import monitor.cores, monitor.pipeline.archive
    from monitor.pipeline import import_archive, open_workspace

    monitor.pipeline.archive.IMPORT_BATCH = 20_000  # ten batches: what one holds, not the file, is the bound
    monitor.cores.core_idle = lambda: False  # the reader thread, whatever the machine does

    def peak_kb():  # this process's own high-water mark (ru_maxrss keeps the parent's across exec)
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])

    config, archive, rows = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
    with archive.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "created_at", "author", "text", "likes"])
        for n in range(rows):
            text = f"post {n}: instagram wants to sell my photos, I am quitting, number {n * 7919 % 100003} " * 2
            writer.writerow([n, f"2012-12-{10 + n % 20:02d}T{n % 24:02d}:{n % 60:02d}:00Z", f"user{n % 5000}", text, n % 9])
    ws = open_workspace(config)
    before = peak_kb()
    result = import_archive(ws, archive, "instagram-tos-2012")
    after = peak_kb()
    print(result.new, archive.stat().st_size // 1024, before, after)
    """
)


@pytest.mark.slow
def test_importing_400000_rows_keeps_memory_bounded(write_config: Callable[..., Path], tmp_path: Path) -> None:
    rows = 400_000
    config = write_config()
    done = subprocess.run(
        [sys.executable, "-c", IMPORT_IN_A_CHILD, str(config), str(tmp_path / "big.csv"), str(rows)],
        capture_output=True, text=True, cwd=ROOT, check=True,
    )  # fmt: skip
    new, file_kb, before_kb, after_kb = (int(value) for value in done.stdout.split())
    assert new == rows
    # the archive is ~75 MB and its posts as objects several times that (≈ 240 MB held whole); batches of
    # 20,000 (≈ 12 MB), the reader's chunks ahead and SQLite's 64 MiB page cache keep the child's peak
    # (VmHWM, KiB) within 150 MB of where it was before the import started, whatever the file's size
    assert file_kb > 60_000
    assert after_kb - before_kb < 150_000, f"peak grew by {(after_kb - before_kb) // 1024} MB"
