"""Archive files written for the import tests."""

from __future__ import annotations

import csv
from datetime import UTC, datetime, timedelta
from pathlib import Path


def numbered_archive(path: Path, rows: int) -> None:
    """A CSV of `rows` valid posts a second apart from 17 Dec 2012, each text numbered (so all distinct)."""
    start = datetime(2012, 12, 17, tzinfo=UTC)
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["author", "created_at", "text", "likes"])
        for number in range(rows):
            stamp = (start + timedelta(seconds=number)).isoformat().replace("+00:00", "Z")
            writer.writerow([f"user{number % 977}", stamp, f"quit instagram, post {number}", number % 50])
