"""An embedded SQLite store of per-item results: atomic per item, so a killed run resumes exactly.

Each item's rows and its completion mark are written in one transaction (the runner writes a batch of items in
one): after a kill at any point an item is either fully stored or absent, and the primary key rules out
duplicates. Several processes
(torchrun ranks) may write to one store (WAL journal, busy timeout), and several threads of one process (the
runner writes from a background thread) share a connection under a lock.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import NamedTuple

__all__ = ["ConfigMismatchError", "ResultStore", "Row"]


class Row(NamedTuple):
    """One stored result: a metric's value for one unit (a cell, an object, an image, a depth) of an item.

    ``value`` is ``None`` where the map could not be scored (its ``zeroed`` row says so).
    """

    item: str
    unit: str
    method: str
    variant: str
    metric: str
    value: float | None

_SCHEMA = """
CREATE TABLE IF NOT EXISTS config (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS results (
    item TEXT NOT NULL, unit TEXT NOT NULL, method TEXT NOT NULL, variant TEXT NOT NULL,
    metric TEXT NOT NULL, value REAL,
    PRIMARY KEY (item, unit, method, variant, metric)
);
CREATE TABLE IF NOT EXISTS done (item TEXT PRIMARY KEY, seconds REAL, rank INTEGER);
CREATE TABLE IF NOT EXISTS skipped (item TEXT PRIMARY KEY, reason TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS cache (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS timings (
    item TEXT NOT NULL, stage TEXT NOT NULL, seconds REAL NOT NULL, PRIMARY KEY (item, stage)
);
CREATE TABLE IF NOT EXISTS curves (
    item TEXT NOT NULL, unit TEXT NOT NULL, method TEXT NOT NULL, variant TEXT NOT NULL, name TEXT NOT NULL,
    data TEXT NOT NULL, PRIMARY KEY (item, unit, method, variant, name)
);
"""


class ConfigMismatchError(ValueError):
    """A run folder holds results of a different configuration."""


class ResultStore:
    """Per-item results of one benchmark run in ``RUN_DIR/results.sqlite``.

    Args:
        path: The database file.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(self.path, timeout=120, isolation_level=None, check_same_thread=False)
        self.lock = threading.RLock()
        self._wal()
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.executescript(_SCHEMA)

    def _wal(self, wait: float = 120.0) -> None:
        # switching a new file to WAL answers "database is locked" at once (no busy wait) while another
        # process (a torchrun rank) creates it: retry until the switch is done or `wait` seconds have passed
        deadline = time.monotonic() + wait
        delay = 0.01
        while True:
            try:
                self.db.execute("PRAGMA journal_mode=WAL")
                return
            except sqlite3.OperationalError as err:
                if "locked" not in str(err) or time.monotonic() > deadline:
                    raise
                time.sleep(delay)
                delay = min(2 * delay, 0.5)

    def close(self) -> None:
        """Close the connection."""
        self.db.close()

    def __enter__(self) -> ResultStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def bind_config(self, config: dict) -> None:
        """Store the run configuration, or check that it equals the stored one.

        Raises:
            ConfigMismatchError: If the folder holds a run with another configuration.
        """
        text = json.dumps(config, sort_keys=True)
        self.db.execute("BEGIN IMMEDIATE")
        try:
            row = self.db.execute("SELECT value FROM config WHERE key='run'").fetchone()
            if row is None:
                self.db.execute("INSERT INTO config VALUES ('run', ?)", (text,))
            elif row[0] != text:
                old, new = json.loads(row[0]), config
                diff = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
                raise ConfigMismatchError(
                    f"{self.path.parent} holds a run with another configuration (differs in: {', '.join(diff)}); "
                    "use a new --out folder or the same options"
                )
            self.db.execute("COMMIT")
        except BaseException:
            self.db.execute("ROLLBACK")
            raise

    def config(self) -> dict:
        """The stored run configuration."""
        row = next(iter(self._query("SELECT value FROM config WHERE key='run'")), None)
        if row is None:
            raise FileNotFoundError(f"{self.path}: no run configuration stored")
        try:
            config = json.loads(row[0])
        except ValueError:
            raise ValueError(f"{self.path}: the stored run configuration is not valid JSON") from None
        if not isinstance(config, dict):
            raise ValueError(f"{self.path}: the stored run configuration is a {type(config).__name__}, not a mapping")
        return config

    def set_info(self, **info: object) -> None:
        """Record facts about the run (merged into what is recorded): what a report's header shows.

        The benchmark base records ``attrdist`` (the version), ``started`` (ISO date of the first start),
        ``dataset_size`` (items the dataset offers) and ``items`` (items the run scores).
        """
        with self.lock:
            self.cache_put("run_info", {**self.info(), **info})

    def info(self) -> dict:
        """What :meth:`set_info` recorded (empty for runs made before it existed)."""
        value = self.cache_get("run_info")
        return dict(value) if isinstance(value, dict) else {}

    def done(self) -> set[str]:
        """Items fully stored (or recorded as skipped)."""
        return {r[0] for r in self._query("SELECT item FROM done UNION SELECT item FROM skipped")}

    def write_item(
        self, item: str, rows: Iterable[Sequence], seconds: float, rank: int = 0, curves: Iterable[Sequence] = ()
    ) -> None:
        """Store all rows (and curves) of one item and mark it done, atomically.

        Args:
            item: Item id.
            rows: ``(unit, method, variant, metric, value)`` tuples.
            seconds: Time spent on the item.
            rank: The process that computed it.
            curves: ``(unit, method, variant, name, values)`` tuples (values: a list of floats).
        """
        self.write_items([(item, rows, seconds, rank, curves)])

    def write_items(self, items: Sequence[tuple], skipped: Sequence[tuple[str, str]] = ()) -> None:
        """Store several items (and skips) in one transaction: all of them or none.

        Args:
            items: ``(item, rows, seconds, rank, curves[, timings])`` per item, as :meth:`write_item` takes them;
                ``timings`` maps a stage (``"depth003"``, ``"model"``) to its seconds (:meth:`timings`).
            skipped: ``(item, reason)`` of skipped items (:meth:`skip_item`).
        """
        if not items and not skipped:
            return
        with self.lock:
            self.db.execute("BEGIN IMMEDIATE")
            try:
                self.db.executemany("INSERT OR REPLACE INTO skipped VALUES (?, ?)", list(skipped))
                for item, rows, seconds, rank, curves, *timings in items:
                    self._write(item, rows, seconds, rank, curves, timings[0] if timings else {})
                self.db.execute("COMMIT")
            except BaseException:
                self.db.execute("ROLLBACK")
                raise

    def _query(self, sql: str, params: Sequence = ()) -> list[tuple]:
        with self.lock:
            return self.db.execute(sql, params).fetchall()

    def _write(self, item: str, rows: Iterable[Sequence], seconds: float, rank: int,
               curves: Iterable[Sequence], timings: dict[str, float]) -> None:
        self.db.executemany("INSERT INTO results VALUES (?, ?, ?, ?, ?, ?)", [(item, *r) for r in rows])
        self.db.executemany("INSERT INTO curves VALUES (?, ?, ?, ?, ?, ?)",
                            [(item, *c[:4], json.dumps([float(v) for v in c[4]])) for c in curves])
        self.db.executemany("INSERT INTO timings VALUES (?, ?, ?)",
                            [(item, stage, float(t)) for stage, t in timings.items()])
        self.db.execute("INSERT INTO done VALUES (?, ?, ?)", (item, seconds, rank))

    def timings(self) -> dict[str, tuple[float, int]]:
        """Mean seconds per item of each recorded stage, and the items that recorded it: ``stage -> (mean, n)``.

        ``"item"`` is the whole computation of an item (every run records it); a benchmark may record its own stages
        (the sanity check: ``depth003``, the cost of one image at that depth).
        """
        mean, n = self._query("SELECT AVG(seconds), COUNT(*) FROM done")[0]
        out = {"item": (mean, n)} if n else {}
        out.update({r[0]: (r[1], r[2]) for r in self._query(
            "SELECT stage, AVG(seconds), COUNT(*) FROM timings GROUP BY stage ORDER BY stage")})
        return out

    def skip_item(self, item: str, reason: str) -> None:
        """Record that an item was skipped, with its reason (never silently dropped)."""
        with self.lock:
            self.db.execute("INSERT OR REPLACE INTO skipped VALUES (?, ?)", (item, reason))

    def cache_get(self, key: str) -> object | None:
        """A JSON value cached by an earlier (possibly killed) run, or ``None``."""
        row = next(iter(self._query("SELECT value FROM cache WHERE key=?", (key,))), None)
        return None if row is None else json.loads(row[0])

    def cache_put(self, key: str, value: object) -> None:
        """Cache a JSON value (e.g. the model's predictions for grid selection)."""
        with self.lock:
            self.db.execute("INSERT OR REPLACE INTO cache VALUES (?, ?)", (key, json.dumps(value)))

    def rows(self) -> list[Row]:
        """All result rows, sorted."""
        rows = [Row(*r) for r in self._query("SELECT * FROM results ORDER BY item, unit, method, variant, metric")]
        for r in rows:  # a database written by hand (or by someone else) may hold anything
            if not all(isinstance(v, str) for v in r[:5]) or not (
                    r.value is None or isinstance(r.value, int | float) and not isinstance(r.value, bool)):
                raise ValueError(f"{self.path}: a result row holds {r.value!r} where a number belongs "
                                 f"(item {str(r.item)[:60]!r}, metric {str(r.metric)[:60]!r})")
        return rows

    def curves(self, name: str) -> list[tuple[str, str, str, str, list[float]]]:
        """Stored curves called ``name``: ``(item, unit, method, variant, values)``, sorted."""
        rows = self._query("SELECT item, unit, method, variant, data FROM curves WHERE name=? "
                           "ORDER BY item, unit, method, variant", (name,))
        return [(*r[:4], json.loads(r[4])) for r in rows]

    def skipped(self) -> list[tuple[str, str]]:
        """Skipped items and their reasons."""
        return self._query("SELECT item, reason FROM skipped ORDER BY item")
