"""Export one run of the record as CSV files or one HDF5 file, for analysis outside labd.

CSV: a folder with ``commands.csv``, ``transitions.csv``, one ``telemetry/<topic>.csv`` per topic
(columns ``t``, ``seq`` and every scalar field) and one ``traces/<topic>.<seq>.<name>.csv`` per
stored array. HDF5 (needs h5py, the ``hdf5`` extra): the same layout as groups and datasets.
The record is read directly (SQLite WAL allows this while the daemon writes).
"""

from __future__ import annotations

import csv
import json
import sqlite3
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from labd.store import load_trace


class ExportError(Exception):
    """The run cannot be exported (no such run, no such file, h5py missing)."""


def read_run(db_path: Path, run: int) -> dict[str, Any]:
    """Everything recorded for ``run``: commands, transitions, telemetry by topic, traces."""
    if not db_path.exists():
        raise ExportError(f"no record at {db_path}")
    db = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    try:
        if db.execute("SELECT 1 FROM runs WHERE id = ?", (run,)).fetchone() is None:
            runs = [r for (r,) in db.execute("SELECT id FROM runs")]
            raise ExportError(f"no run {run} in {db_path}; runs: {runs}")
        telemetry: dict[str, list[dict[str, Any]]] = defaultdict(list)
        traces: dict[str, np.ndarray] = {}
        for topic, seq, t, body in db.execute(
                "SELECT topic, seq, t, body FROM telemetry WHERE run = ? ORDER BY rowid", (run,)):
            row = {"t": t, "seq": seq}
            for key, value in json.loads(body).items():
                if isinstance(value, dict) and "$trace" in value:
                    traces[f"{topic}.{seq}.{key}"] = load_trace(db, value["$trace"])
                elif key not in ("t", "seq"):
                    row[key] = value
            telemetry[topic].append(row)
        return {
            "commands": _rows(db, "SELECT t, holder, method, params, error FROM commands "
                                  "WHERE run = ?", run),
            "transitions": _rows(db, "SELECT t, machine, source, target, reason FROM "
                                     "transitions WHERE run = ?", run),
            "telemetry": dict(telemetry),
            "traces": traces,
        }
    finally:
        db.close()


def _rows(db: sqlite3.Connection, query: str, run: int) -> list[dict[str, Any]]:
    cursor = db.execute(query, (run,))
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor]


def export_csv(data: dict[str, Any], folder: Path) -> None:
    (folder / "telemetry").mkdir(parents=True, exist_ok=True)
    (folder / "traces").mkdir(exist_ok=True)
    _write_csv(folder / "commands.csv", data["commands"])
    _write_csv(folder / "transitions.csv", data["transitions"])
    for topic, rows in data["telemetry"].items():
        _write_csv(folder / "telemetry" / f"{topic}.csv", rows)
    for name, values in data["traces"].items():
        np.savetxt(folder / "traces" / f"{name}.csv", values, delimiter=",")


def _write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    columns = list(dict.fromkeys(key for row in rows for key in row))
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        writer.writerows({k: _cell(v) for k, v in row.items()} for row in rows)


def _cell(value: Any) -> Any:
    return json.dumps(value) if isinstance(value, dict | list) else value


def export_hdf5(data: dict[str, Any], path: Path) -> None:
    try:
        import h5py
    except ImportError as exc:
        raise ExportError("HDF5 export needs h5py: pip install 'labd[hdf5]'") from exc
    with h5py.File(path, "w") as out:
        for table in ("commands", "transitions"):
            _table_to_group(out.create_group(table), data[table])
        telemetry = out.create_group("telemetry")
        for topic, rows in data["telemetry"].items():
            _table_to_group(telemetry.create_group(topic), rows)
        traces = out.create_group("traces")
        for name, values in data["traces"].items():
            traces.create_dataset(name, data=values)


def _table_to_group(group: Any, rows: list[dict[str, Any]]) -> None:
    for column in dict.fromkeys(key for row in rows for key in row):
        values = [row.get(column) for row in rows]
        present = [v for v in values if v is not None]
        if present and all(isinstance(v, int | float) and not isinstance(v, bool)
                           for v in present):  # missing numbers (an event row) become NaN
            numbers = [np.nan if v is None else v for v in values]
            group.create_dataset(column, data=np.asarray(numbers, dtype=np.float64))
        else:
            group.create_dataset(column, data=[json.dumps(v) if not isinstance(v, str) else v
                                               for v in values])
