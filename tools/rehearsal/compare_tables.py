#!/usr/bin/env python3
"""Compare every table of two results folders of the same config (the rehearsal's last check).

Each ``tables/**/*.csv`` of ``A`` must exist in ``B`` with the same columns and rows, numbers
equal to 1e-9 relative. Timings are set aside: the tables of what jobs cost (``cost.csv``,
``campaign_summary.csv``) and, in the others, columns named for time, memory, hosts or dates, and
the config's hash (the two configs differ in ``results``); a folder's own path inside a cell is
read as ``<results>``. What was set aside is printed.

Use::

    .venv/bin/python tools/rehearsal/compare_tables.py RESULTS_A RESULTS_B
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pandas as pd

TIMING_TABLES = {"cost.csv", "campaign_summary.csv"}
# the two runs' configs differ in `results` alone, so the hash of the config differs
OTHER_RUN_COLUMNS = {"expertalign_config_sha256"}
TIMING_COLUMN = re.compile(
    r"(second|minute|hour|_s$|time|rss|_mb$|memory|host|node|date|created|elapsed|duration)", re.I
)


def _frame(path: Path, results: Path) -> pd.DataFrame:
    frame = pd.read_csv(path)
    for column in frame.columns:
        if pd.api.types.is_string_dtype(frame[column]) or frame[column].dtype == object:
            frame[column] = frame[column].astype(str).str.replace(str(results), "<results>")
    return frame


def compare(a: Path, b: Path) -> tuple[list[str], list[str], int]:
    """(differences, what was set aside, tables compared)."""
    bad: list[str] = []
    aside: list[str] = []
    tables_a = {p.relative_to(a) for p in (a / "tables").rglob("*.csv")}
    tables_b = {p.relative_to(b) for p in (b / "tables").rglob("*.csv")}
    bad += [f"{rel}: only in {a}" for rel in sorted(tables_a - tables_b)]
    bad += [f"{rel}: only in {b}" for rel in sorted(tables_b - tables_a)]
    compared = 0
    for rel in sorted(tables_a & tables_b):
        if rel.name in TIMING_TABLES:
            aside.append(f"{rel}: a table of timings")
            continue
        x, y = _frame(a / rel, a), _frame(b / rel, b)
        timing = [c for c in x.columns if TIMING_COLUMN.search(str(c)) or c in OTHER_RUN_COLUMNS]
        if timing:
            aside.append(f"{rel}: columns {', '.join(map(str, timing))}")
            x = x.drop(columns=timing)
            y = y.drop(columns=[c for c in timing if c in y.columns])
        compared += 1
        try:
            pd.testing.assert_frame_equal(x, y, check_exact=False, rtol=1e-9, atol=0)
        except AssertionError as err:
            bad.append(f"{rel}: {' '.join(str(err).split())[:300]}")
    return bad, aside, compared


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    a, b = (Path(p).resolve() for p in args)
    bad, aside, compared = compare(a, b)
    print(f"{compared} tables compared; {len(bad)} differ")
    for line in aside:
        print(f"  set aside: {line}")
    for line in bad:
        print(f"  DIFFERS: {line}")
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
