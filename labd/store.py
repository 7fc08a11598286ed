"""The record: every run, telemetry message, command and state transition, in SQLite (WAL).

Writes go through a queue to one writer thread, so the event loop never waits for the disk.
The writer commits at least every ``COMMIT_INTERVAL_S``: a crash of the daemon loses at most
that much of the record (WAL with synchronous=NORMAL survives a process crash; a power cut may
also lose the last committed transactions). Long numeric arrays (traces, spectra) are stored
once, as float64 blobs, in ``traces``; the telemetry row refers to them.
"""

from __future__ import annotations

import json
import queue
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

import labd

COMMIT_INTERVAL_S = 0.25
ARRAY_MIN_LENGTH = 16  # shorter lists stay inline in the JSON body

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY, started REAL NOT NULL, ended REAL, version TEXT, config TEXT);
CREATE TABLE IF NOT EXISTS telemetry (
    run INTEGER NOT NULL REFERENCES runs(id), topic TEXT NOT NULL, seq INTEGER NOT NULL,
    t REAL NOT NULL, body TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS telemetry_by_topic ON telemetry(run, topic, seq);
CREATE TABLE IF NOT EXISTS traces (
    id INTEGER PRIMARY KEY, run INTEGER NOT NULL REFERENCES runs(id), topic TEXT NOT NULL,
    seq INTEGER NOT NULL, name TEXT NOT NULL, length INTEGER NOT NULL, data BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS commands (
    run INTEGER NOT NULL REFERENCES runs(id), t REAL NOT NULL, holder TEXT NOT NULL,
    method TEXT NOT NULL, params TEXT NOT NULL, error TEXT);
CREATE TABLE IF NOT EXISTS transitions (
    run INTEGER NOT NULL REFERENCES runs(id), t REAL NOT NULL, machine TEXT NOT NULL,
    source TEXT NOT NULL, target TEXT NOT NULL, reason TEXT NOT NULL);
"""

_STOP = object()


def connect(path: str | Path) -> sqlite3.Connection:
    """Open (and if needed create) a record database in WAL mode."""
    db = sqlite3.connect(path, check_same_thread=False)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    db.executescript(SCHEMA)
    return db


class Recorder:
    """Appends to the record of one run from any thread; one writer thread owns the file."""

    def __init__(self, path: str | Path, config_text: str) -> None:
        self._db = connect(path)
        cursor = self._db.execute("INSERT INTO runs(started, version, config) VALUES (?, ?, ?)",
                                  (time.time(), labd.__version__, config_text))
        self._db.commit()
        self.run = int(cursor.lastrowid or 0)
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._write, name="recorder", daemon=True)
        self._thread.start()

    def telemetry(self, topic: str, message: dict[str, Any]) -> None:
        self._queue.put(("telemetry", topic, message))

    def command(self, t: float, holder: str, method: str, params: dict[str, Any],
                error: str | None) -> None:
        self._queue.put(("command", t, holder, method, json.dumps(params), error))

    def transition(self, t: float, machine: str, source: str, target: str, reason: str) -> None:
        self._queue.put(("transition", t, machine, source, target, reason))

    def close(self) -> None:
        """Write everything queued, mark the run ended, and close the file."""
        self._queue.put(_STOP)
        self._thread.join()
        self._db.execute("UPDATE runs SET ended = ? WHERE id = ?", (time.time(), self.run))
        self._db.commit()
        self._db.close()

    def _write(self) -> None:
        last_commit = time.monotonic()
        while True:
            try:
                item = self._queue.get(timeout=COMMIT_INTERVAL_S)
            except queue.Empty:
                item = None
            if item is _STOP:
                self._db.commit()
                return
            if item is not None:
                self._insert(item)
            if time.monotonic() - last_commit >= COMMIT_INTERVAL_S or item is None:
                self._db.commit()
                last_commit = time.monotonic()

    def _insert(self, item: tuple[Any, ...]) -> None:
        kind, *fields = item
        if kind == "telemetry":
            self._insert_telemetry(*fields)
        elif kind == "command":
            self._db.execute("INSERT INTO commands VALUES (?, ?, ?, ?, ?, ?)", (self.run, *fields))
        else:
            self._db.execute("INSERT INTO transitions VALUES (?, ?, ?, ?, ?, ?)",
                             (self.run, *fields))

    def _insert_telemetry(self, topic: str, message: dict[str, Any]) -> None:
        body = {}
        for key, value in message.items():
            if _is_array(value):
                data = np.asarray(value, dtype=np.float64)
                cursor = self._db.execute(
                    "INSERT INTO traces(run, topic, seq, name, length, data) VALUES (?,?,?,?,?,?)",
                    (self.run, topic, message["seq"], key, data.size, data.tobytes()))
                value = {"$trace": cursor.lastrowid}
            body[key] = value
        self._db.execute("INSERT INTO telemetry VALUES (?, ?, ?, ?, ?)",
                         (self.run, topic, message["seq"], message["t"], json.dumps(body)))


def _is_array(value: Any) -> bool:
    return (isinstance(value, list) and len(value) >= ARRAY_MIN_LENGTH
            and all(isinstance(v, int | float) and not isinstance(v, bool) for v in value))


def load_trace(db: sqlite3.Connection, trace_id: int) -> np.ndarray:
    """A stored array, back as float64."""
    (data,) = db.execute("SELECT data FROM traces WHERE id = ?", (trace_id,)).fetchone()
    return np.frombuffer(data, dtype=np.float64)
