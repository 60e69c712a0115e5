"""An embedded SQLite store of per-item results: atomic per item, so a killed run resumes exactly.

Each item's records (:mod:`~attrdist.bench.records`: scores, map checks, curves, curve skips, unit attributes,
timings) and its completion mark are written in one transaction (the runner writes a batch of items in one): after
a kill at any point an item is either fully stored or absent, and the primary keys rule out duplicates. Every kind
of record has its own table and is read back as its record type. Several threads of one process (the runner writes
from a background thread) share a connection under a lock.

A run folder may hold several parts: a single process (and rank 0 of torchrun) writes ``results.sqlite``, rank ``r``
writes ``results.rank{r}.sqlite`` (:func:`part_path`), each in SQLite's rollback-journal mode, so that no file is
ever written by two processes: a run folder on a network file system (NFS, Lustre), shared by several machines,
is safe, which SQLite's WAL journal is not. Every reader sees the union of the folder's parts (:meth:`done`,
:meth:`scores`, ...): a resume with another number of processes neither loses nor repeats an item.

Reports and analyses open a store read-only (``read_only=True``): nothing is created or written. Run folders
written before the records had their own tables (layout 1: one ``results`` table with pseudo-metric rows and
pseudo-item skips) are read through :mod:`~attrdist.bench.legacy` into the same records; they cannot be resumed.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import sqlite3
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, NamedTuple, TypeVar
from urllib.parse import quote

from .legacy import LegacyRecords
from .records import Curve, CurveSkip, ItemResult, MapCheck, Score, SkippedItem, UnitAttribute

__all__ = ["LAYOUT", "ConfigMismatchError", "ResultStore", "StoredItem", "part_files", "part_path", "read_done"]

#: The store's layout: 2 since every kind of record has its own table (1: one ``results`` table for everything).
LAYOUT = 2

_KEY = "item TEXT NOT NULL, unit TEXT NOT NULL, method TEXT NOT NULL, variant TEXT NOT NULL"
_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS config (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS scores ({_KEY}, metric TEXT NOT NULL, value REAL NOT NULL,
    PRIMARY KEY (item, unit, method, variant, metric));
CREATE TABLE IF NOT EXISTS maps ({_KEY}, reason TEXT, PRIMARY KEY (item, unit, method, variant));
CREATE TABLE IF NOT EXISTS curves ({_KEY}, name TEXT NOT NULL, data TEXT NOT NULL,
    PRIMARY KEY (item, unit, method, variant, name));
CREATE TABLE IF NOT EXISTS curve_skips ({_KEY}, name TEXT NOT NULL, reason TEXT NOT NULL,
    PRIMARY KEY (item, unit, method, variant, name));
CREATE TABLE IF NOT EXISTS unit_attributes (item TEXT NOT NULL, unit TEXT NOT NULL, name TEXT NOT NULL,
    value REAL NOT NULL, PRIMARY KEY (item, unit, name));
CREATE TABLE IF NOT EXISTS done (item TEXT PRIMARY KEY, seconds REAL, rank INTEGER);
CREATE TABLE IF NOT EXISTS skipped (item TEXT PRIMARY KEY, reason TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS cache (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS timings (
    item TEXT NOT NULL, stage TEXT NOT NULL, seconds REAL NOT NULL, PRIMARY KEY (item, stage)
);
"""


#: The file of rank ``r > 0`` (rank 0 and a single process write ``results.sqlite``).
_PART = re.compile(r"results(?:\.rank(\d+))?\.sqlite")


def _claim(path: Path) -> IO[bytes]:
    """An exclusive lock on ``path``'s writing (``path.lock``), held while the returned file is open.

    Raises:
        ValueError: If another process writes the file (two ``attrdist bench`` on one run folder and rank).
    """
    if path.is_symlink():
        raise ValueError(f"{path}: a link, not a results database; a run folder's store is a plain file (choose "
                         "another --out)")
    try:  # never through a link: a run folder may come from someone else
        fd = os.open(path.parent / f"{path.name}.lock", os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW, 0o644)
    except OSError as err:
        raise ValueError(f"{path}.lock: cannot be opened ({err.strerror}); a run folder's files are plain "
                         "files") from None
    hold = os.fdopen(fd, "wb")
    try:
        fcntl.lockf(hold, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        hold.close()
        raise ValueError(f"{path}: another process is writing this run folder (the same command, still running?); "
                         "wait for it to finish or choose another --out") from None
    return hold


def part_path(folder: str | Path, rank: int = 0) -> Path:
    """The store file one process writes in a run folder: ``results.sqlite`` (rank 0) or ``results.rank{r}.sqlite``."""
    return Path(folder) / ("results.sqlite" if rank == 0 else f"results.rank{rank}.sqlite")


def part_files(folder: str | Path) -> list[Path]:
    """The store files of a run folder, rank 0's first, then by rank."""
    found = [(int(m.group(1) or 0), p) for p in Path(folder).glob("results*.sqlite")
             if (m := _PART.fullmatch(p.name)) and p.is_file()]
    return [p for _, p in sorted(found)]


#: Why a first-layout store is not resumed.
_OLD_LAYOUT = ("a run folder of an older attrdist (one results table); reports still read it, but it cannot be "
               "resumed: start a new --out folder")

_R = TypeVar("_R", bound="tuple[object, ...] | str")


class ConfigMismatchError(ValueError):
    """A run folder holds results of a different configuration."""


class StoredItem(NamedTuple):
    """One computed item as the runner hands it to the store."""

    item: str
    result: ItemResult
    seconds: float
    rank: int = 0


def _text(value: object, path: Path, what: str) -> str:
    if not isinstance(value, str):  # a database written by hand (or by someone else) may hold anything
        raise ValueError(f"{path}: a {what} holds {value!r} where a name belongs")
    return value


def _number(value: object, path: Path, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{path}: a {what} holds {str(value)[:60]!r} where a number belongs")
    return float(value)


class ResultStore:
    """Per-item results of one benchmark run in ``RUN_DIR/results.sqlite``.

    Args:
        path: The database file.
        read_only: Open an existing store for reading only (reports, analyses): nothing is created or written.

    Raises:
        FileNotFoundError: If ``read_only`` and there is no such file.
        ValueError: If a store of the first layout is opened for writing (it can be read, not resumed).
    """

    def __init__(self, path: str | Path, *, read_only: bool = False) -> None:
        self.path = Path(path)
        self.read_only = read_only
        self.lock = threading.RLock()
        self._legacy: LegacyRecords | None = None
        self._hold: IO[bytes] | None = None
        if read_only:
            if not self.path.is_file():
                raise FileNotFoundError(f"{self.path}: no such results database")
            self.db = sqlite3.connect(f"file:{quote(str(self.path.resolve()))}?mode=ro", uri=True, timeout=120,
                                      isolation_level=None, check_same_thread=False)
        else:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._hold = _claim(self.path)  # one writing process per file, or a one-line refusal
            self.db = sqlite3.connect(self.path, timeout=120, isolation_level=None, check_same_thread=False)
        tables = {r[0] for r in self._query("SELECT name FROM sqlite_master WHERE type='table'")}
        self.layout = 1 if "results" in tables else LAYOUT
        if read_only:
            return
        if self.layout == 1:
            self.db.close()
            raise ValueError(f"{self.path}: {_OLD_LAYOUT}")
        self.db.execute("PRAGMA journal_mode=DELETE")  # rollback journal: safe on a network file system
        self.db.execute("PRAGMA synchronous=FULL")
        self.db.executescript(_SCHEMA)

    def close(self) -> None:
        """Close the connection (and let another process write the file)."""
        self.db.close()
        if self._hold is not None:
            self._hold.close()
            self._hold = None

    def __enter__(self) -> ResultStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # configuration and facts ----------------------------------------------------------------------------------

    def bind_config(self, config: dict) -> None:
        """Store the run configuration, or check that it equals the stored one.

        Raises:
            ConfigMismatchError: If the folder holds a run with another configuration.
        """
        self.db.execute("BEGIN IMMEDIATE")
        try:
            row = self.db.execute("SELECT value FROM config WHERE key='run'").fetchone()
            if row is None:
                self.db.execute("INSERT INTO config VALUES ('run', ?)", (json.dumps(config, sort_keys=True),))
            else:
                _check_config(self, config, row[0])
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

    def cache_get(self, key: str) -> object | None:
        """A JSON value cached by an earlier (possibly killed) run, or ``None``."""
        row = next(iter(self._query("SELECT value FROM cache WHERE key=?", (key,))), None)
        return None if row is None else json.loads(row[0])

    def cache_put(self, key: str, value: object) -> None:
        """Cache a JSON value (e.g. the model's predictions for grid selection)."""
        with self.lock:
            self.db.execute("INSERT OR REPLACE INTO cache VALUES (?, ?)", (key, json.dumps(value)))

    # writing ----------------------------------------------------------------------------------------------

    def write_item(self, item: str, result: ItemResult, seconds: float = 0.0, rank: int = 0) -> None:
        """Store every record of one item and mark it done, atomically."""
        self.write_items([StoredItem(item, result, seconds, rank)])

    def write_items(self, items: Sequence[StoredItem], skipped: Sequence[SkippedItem] = ()) -> None:
        """Store several items (and items skipped as a whole) in one transaction: all of them or none."""
        if not items and not skipped:
            return
        with self.lock:
            self.db.execute("BEGIN IMMEDIATE")
            try:
                self.db.executemany("INSERT OR REPLACE INTO skipped VALUES (?, ?)",
                                    [(s.item, s.reason) for s in skipped])
                for stored in items:
                    self._write(stored)
                self.db.execute("COMMIT")
            except BaseException:
                self.db.execute("ROLLBACK")
                raise

    def _write(self, stored: StoredItem) -> None:
        r, item, many = stored.result, stored.item, self.db.executemany
        for records in (r.scores, r.maps, r.curve_skips, r.attributes):
            if any(rec.item != item for rec in records):
                raise ValueError(f"item {item!r}: a record of another item was returned with it")
        many("INSERT INTO scores VALUES (?, ?, ?, ?, ?, ?)", r.scores)
        many("INSERT INTO maps VALUES (?, ?, ?, ?, ?)", r.maps)
        many("INSERT INTO curves VALUES (?, ?, ?, ?, ?, ?)",
             [(*c[:5], json.dumps([float(v) for v in c.values])) for c in r.curves if c.item == item])
        many("INSERT INTO curve_skips VALUES (?, ?, ?, ?, ?, ?)", r.curve_skips)
        many("INSERT INTO unit_attributes VALUES (?, ?, ?, ?)", r.attributes)
        many("INSERT INTO timings VALUES (?, ?, ?)", [(item, stage, float(t)) for stage, t in r.timings.items()])
        self.db.execute("INSERT INTO done VALUES (?, ?, ?)", (item, stored.seconds, stored.rank))

    def skip_item(self, item: str, reason: str) -> None:
        """Record that an item was skipped as a whole, with its reason (never silently dropped)."""
        self.write_items([], [SkippedItem(item, reason)])

    # reading ----------------------------------------------------------------------------------------------

    def _query(self, sql: str, params: Sequence = ()) -> list[tuple]:
        with self.lock:
            return self.db.execute(sql, params).fetchall()

    def _name(self, value: object, what: str) -> str:
        return _text(value, self.path, what)

    def _key(self, row: tuple, what: str) -> tuple[str, str, str, str]:
        """``(item, unit, method, variant)`` of a stored row, checked to be names."""
        return (self._name(row[0], what), self._name(row[1], what), self._name(row[2], what),
                self._name(row[3], what))

    def _union(self, read: Callable[[ResultStore], list[_R]]) -> list[_R]:
        """``read`` of this file and of every other part of its run folder (each opened read-only), sorted."""
        out = read(self)
        others = [p for p in part_files(self.path.parent) if p.resolve() != self.path.resolve()]
        if self.layout == 1 or not others:
            return out
        for path in others:
            with ResultStore(path, read_only=True) as part:
                out += read(part)
        return sorted(out)

    def done(self) -> set[str]:
        """Items fully stored (or skipped as a whole) in any part of the run folder."""
        return set(self._union(ResultStore._done))

    def scores(self) -> list[Score]:
        """Every score, sorted by item, unit, method, variant and metric."""
        return self._union(ResultStore._scores)

    def maps(self) -> list[MapCheck]:
        """Every map refined, with the reason it could not be scored (``None``: scorable), sorted."""
        return self._union(ResultStore._maps)

    def curves(self, name: str | None = None) -> list[Curve]:
        """Stored curves (of one ``name`` if given), sorted."""
        return [c for c in self._union(ResultStore._curves) if name is None or c.name == name]

    def curve_skips(self) -> list[CurveSkip]:
        """Curves that could not be computed, with the reason, sorted."""
        return self._union(ResultStore._curve_skips)

    def unit_attributes(self) -> list[UnitAttribute]:
        """Facts about units (the sanity check's depth fractions), sorted."""
        return self._union(ResultStore._attributes)

    def skipped(self) -> list[SkippedItem]:
        """Items skipped as a whole and their reasons."""
        return self._union(ResultStore._skipped)

    def timings(self) -> dict[str, tuple[float, int]]:
        """Mean seconds per item of each recorded stage, and the items that recorded it: ``stage -> (mean, n)``.

        ``"item"`` is the whole computation of an item (every run records it); a benchmark may record its own stages
        (the sanity check: ``depth003``, the cost of one image at that depth).
        """
        rows = self._union(lambda s: [("item", float(t)) for (t,) in s._query("SELECT seconds FROM done")]
                           + [(st, float(t)) for st, t in s._query("SELECT stage, seconds FROM timings")])
        by: dict[str, list[float]] = {}
        for stage, seconds in rows:
            by.setdefault(stage, []).append(seconds)
        order = (["item"] if "item" in by else []) + sorted(k for k in by if k != "item")
        return {k: (sum(by[k]) / len(by[k]), len(by[k])) for k in order}

    # one part's records ------------------------------------------------------------------------------------

    def _done(self) -> list[str]:
        if self.layout == 1:  # its skipped table also holds the reasons of maps and curves under invented ids
            return list(self._legacy_view().done)
        return [str(r[0]) for r in self._query("SELECT item FROM done UNION SELECT item FROM skipped")]

    def _scores(self) -> list[Score]:
        if self.layout == 1:
            return list(self._legacy_view().scores)
        rows = self._query("SELECT * FROM scores ORDER BY item, unit, method, variant, metric")
        return [Score(*self._key(r, "score"), self._name(r[4], "score"),
                      _number(r[5], self.path, f"score of {str(r[4])[:60]!r}")) for r in rows]

    def _maps(self) -> list[MapCheck]:
        if self.layout == 1:
            return list(self._legacy_view().maps)
        rows = self._query("SELECT * FROM maps ORDER BY item, unit, method, variant")
        return [MapCheck(*self._key(r, "map check"), None if r[4] is None else self._name(r[4], "map check"))
                for r in rows]

    def _curves(self) -> list[Curve]:
        if self.layout == 1:
            return list(self._legacy_view().curves)
        rows = self._query("SELECT * FROM curves ORDER BY item, unit, method, variant, name")
        return [Curve(*self._key(r, "curve"), self._name(r[4], "curve"), tuple(_curve(r[5], self.path)))
                for r in rows]

    def _curve_skips(self) -> list[CurveSkip]:
        if self.layout == 1:
            return list(self._legacy_view().curve_skips)
        rows = self._query("SELECT * FROM curve_skips ORDER BY item, unit, method, variant, name")
        return [CurveSkip(*self._key(r, "curve skip"), self._name(r[4], "curve skip"), self._name(r[5], "curve skip"))
                for r in rows]

    def _attributes(self) -> list[UnitAttribute]:
        if self.layout == 1:
            return list(self._legacy_view().attributes)
        rows = self._query("SELECT * FROM unit_attributes ORDER BY item, unit, name")
        return [UnitAttribute(self._name(r[0], "unit attribute"), self._name(r[1], "unit attribute"),
                              self._name(r[2], "unit attribute"), _number(r[3], self.path, "unit attribute"))
                for r in rows]

    def _skipped(self) -> list[SkippedItem]:
        if self.layout == 1:
            return list(self._legacy_view().skipped)
        return [SkippedItem(self._name(r[0], "skip"), self._name(r[1], "skip"))
                for r in self._query("SELECT item, reason FROM skipped ORDER BY item")]

    def _legacy_view(self) -> LegacyRecords:
        """The records of a first-layout store, read once."""
        if self._legacy is None:
            with self.lock:
                self._legacy = LegacyRecords.read(self.db, self.path)
        return self._legacy


def _curve(data: object, path: Path) -> list[float]:
    values = json.loads(_text(data, path, "curve"))
    if not isinstance(values, list):
        raise ValueError(f"{path}: a stored curve is not a list of numbers")
    return [_number(v, path, "curve") for v in values]


def _check_config(store: ResultStore, config: dict, stored: str | None = None) -> None:
    """Refuse a run folder part that holds another configuration (nothing stored yet: nothing to refuse)."""
    if stored is None:
        row = next(iter(store._query("SELECT value FROM config WHERE key='run'")), None)
        if row is None:
            return
        stored = str(row[0])
    if stored == json.dumps(config, sort_keys=True):
        return
    old = json.loads(stored)
    diff = sorted(k for k in set(old) | set(config) if old.get(k) != config.get(k))
    raise ConfigMismatchError(f"{store.path.parent} holds a run with another configuration (differs in: "
                              f"{', '.join(diff)}); use a new --out folder or the same options")


def read_done(folder: str | Path, config: dict) -> set[str]:
    """The items every existing part of a run folder holds, each part read-only and checked against ``config``.

    Every process of a run calls this before any of them writes (the runner then waits for all at a barrier), so
    that no file is read by one machine while another writes it.

    Raises:
        ConfigMismatchError: If a part holds a run of another configuration.
    """
    done: set[str] = set()
    for path in part_files(folder):
        with ResultStore(path, read_only=True) as part:
            if part.layout == 1:
                raise ValueError(f"{path}: {_OLD_LAYOUT}")
            _check_config(part, config)
            done.update(part._done())
    return done
