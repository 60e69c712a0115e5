"""The store's typed records: every kind round-trips, an item's records are written in one transaction, and a
store of the first layout can be read but not resumed.

Expectations are the records written here, read back by name."""

import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from attrdist.bench import (
    Curve,
    CurveSkip,
    ItemResult,
    MapCheck,
    ResultStore,
    Score,
    SkippedItem,
    UnitAttribute,
)
from attrdist.bench.store import LAYOUT, StoredItem

V1 = Path(__file__).resolve().parents[1] / "fixtures" / "run_v1"


def _result(item):
    """One record of every kind, and a timing, for ``item``."""
    return ItemResult(
        scores=[Score(item, "cell0", "gradcam", "vanilla", "region_attribution", 0.25),
                Score(item, "cell0", "gradcam", "vanilla", "no_positive", 0.0),
                Score(item, "cell1", "gradcam", "var", "iou", 0.125)],
        maps=[MapCheck(item, "cell0", "gradcam", "vanilla", None), MapCheck(item, "cell1", "gradcam", "var", None),
              MapCheck(item, "cell2", "gradcam", "var", "all-zero map")],
        curves=[Curve(item, "image", "gradcam", "vanilla", "aic", (0.0, 0.5, 1.0))],
        curve_skips=[CurveSkip(item, "image", "gradcam", "var", "sic", "prediction 0.2 < min_pred 0.8")],
        attributes=[UnitAttribute(item, "depth010", "fraction", 0.5)],
        timings={"depth010": 0.75},
    )


def test_every_record_kind_round_trips(tmp_path):
    path = tmp_path / "results.sqlite"
    with ResultStore(path) as store:
        assert store.layout == LAYOUT == 2
        store.bind_config({"benchmark": "localization"})
        store.write_item("b", _result("b"), seconds=1.5, rank=1)
        store.write_item("a", _result("a"), seconds=0.5)
        store.skip_item("c", "grid too small")
    for read_only in (False, True):
        with ResultStore(path, read_only=read_only) as store:
            want = {"scores": [], "maps": [], "curves": [], "curve_skips": [], "attributes": []}
            for item in ("a", "b"):  # read back sorted by item, unit, method, variant (and metric or name)
                for kind, records in want.items():
                    records += getattr(_result(item), kind)
            assert store.scores() == sorted(want["scores"])
            assert store.maps() == sorted(want["maps"], key=lambda m: (m.item, m.unit, m.method, m.variant))
            assert store.curves() == want["curves"] and store.curves("aic") == want["curves"]
            assert store.curves("sic") == []
            assert store.curve_skips() == want["curve_skips"]
            assert store.unit_attributes() == want["attributes"]
            assert store.skipped() == [SkippedItem("c", "grid too small")]
            assert store.done() == {"a", "b", "c"}
            assert store.timings() == {"item": (1.0, 2), "depth010": (0.75, 2)}
            assert store.config() == {"benchmark": "localization"}
            # the types come back, read by name
            score = store.scores()[0]
            assert isinstance(score, Score) and isinstance(score.value, float)
            curve = store.curves()[0]
            assert isinstance(curve, Curve) and curve.values == (0.0, 0.5, 1.0)
            dead = [m for m in store.maps() if not m.scorable]
            assert [(m.item, m.unit, m.reason) for m in dead] == [("a", "cell2", "all-zero map"),
                                                                  ("b", "cell2", "all-zero map")]
        with sqlite3.connect(path) as db:
            assert {r[0] for r in db.execute("SELECT rank FROM done WHERE item='b'")} == {1}


def test_a_read_only_store_creates_and_writes_nothing(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such results database"):
        ResultStore(tmp_path / "results.sqlite", read_only=True)
    assert not (tmp_path / "results.sqlite").exists()
    with ResultStore(tmp_path / "results.sqlite") as store:
        store.write_item("a", _result("a"))
    with ResultStore(tmp_path / "results.sqlite", read_only=True) as store:
        with pytest.raises(sqlite3.OperationalError, match="readonly"):
            store.write_item("b", _result("b"))
        assert store.done() == {"a"}


def _tables(path):
    """Rows of every table of a database, raw (what a kill would leave)."""
    with sqlite3.connect(path) as db:
        names = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table' ORDER BY name")]
        return {n: sorted(db.execute(f"SELECT * FROM {n}").fetchall(), key=repr) for n in names}


def test_an_items_records_are_written_in_one_transaction(tmp_path):
    """A failure after some of an item's records are written leaves no record of it (and no done mark)."""
    path = tmp_path / "results.sqlite"
    with ResultStore(path) as store:
        store.write_item("a", _result("a"))
        before = _tables(path)
        bad = _result("b")
        # the scores, maps and curves of "b" are inserted before its curve skips, whose duplicate key fails
        bad.curve_skips = bad.curve_skips * 2
        with pytest.raises(sqlite3.IntegrityError):
            store.write_item("b", bad)
        assert _tables(path) == before and store.done() == {"a"}
        # a record of another item, returned with this one: refused, nothing of either written
        stray = _result("c")
        stray.maps.append(MapCheck("a", "cell9", "gradcam", "var", None))
        with pytest.raises(ValueError, match="a record of another item"):
            store.write_items([StoredItem("d", _result("d"), 0.0), StoredItem("c", stray, 0.0)],
                              [SkippedItem("e", "why")])
        assert _tables(path) == before
        # the item itself may be written afterwards, whole
        store.write_item("b", _result("b"))
        assert store.done() == {"a", "b"} and len(store.scores()) == 6


def test_a_killed_write_leaves_the_item_absent(tmp_path):
    """SIGKILL mid-transaction (simulated: a process that exits inside the transaction) stores nothing of it."""
    path = tmp_path / "results.sqlite"
    with ResultStore(path) as store:
        store.write_item("a", _result("a"))
    code = f"""
import os
from attrdist.bench import ResultStore
from attrdist.bench.store import ResultStore as R
import tests.bench.test_records as t
store = ResultStore({str(path)!r})
original = R._write
def write(self, stored):
    original(self, stored)  # every record of the item is inserted, the transaction not committed
    os._exit(9)
R._write = write
store.write_item("b", t._result("b"))
"""
    root = Path(__file__).resolve().parents[2]
    proc = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 9, proc.stderr
    with ResultStore(path, read_only=True) as store:
        assert store.done() == {"a"}
        assert {s.item for s in store.scores()} == {m.item for m in store.maps()} == {"a"}
        assert {c.item for c in store.curves()} == {a.item for a in store.unit_attributes()} == {"a"}


def test_a_first_layout_store_opens_for_reading_only(tmp_path):
    for bench in ("localization", "insertion", "sanity"):
        run = tmp_path / bench
        shutil.copytree(V1 / bench, run)
        before = (run / "results.sqlite").read_bytes()
        with pytest.raises(ValueError) as err:
            ResultStore(run / "results.sqlite")
        message = str(err.value)
        assert "\n" not in message and str(run / "results.sqlite") in message
        assert "cannot be resumed" in message and "new --out folder" in message
        assert (run / "results.sqlite").read_bytes() == before  # nothing created in it
        with ResultStore(run / "results.sqlite", read_only=True) as store:
            assert store.layout == 1 and store.done()


def test_a_second_process_writing_the_same_part_is_refused_in_one_line(tmp_path):
    """Issue 34: two `attrdist bench` on one run folder; the second said "is the disk full?" after computing."""
    code = ("from attrdist.bench.store import ResultStore\n"
            f"try:\n    ResultStore({str(tmp_path / 'results.sqlite')!r})\n"
            "except ValueError as err:\n    print(err)\nelse:\n    print('opened')")
    with ResultStore(tmp_path / "results.sqlite"):
        held = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120).stdout
    free = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120).stdout
    assert held.count("\n") == 1 and "another process is writing this run folder" in held
    assert free.strip() == "opened"  # the lock goes with the store (and with a killed process)


def test_a_store_or_its_lock_that_is_a_link_is_never_written_through(tmp_path):
    """Issue 34: no write follows a link; a run folder may come from someone else."""
    target = tmp_path / "elsewhere.sqlite"
    target.write_bytes(b"")
    run = tmp_path / "run"
    run.mkdir()
    (run / "results.sqlite").symlink_to(target)
    with pytest.raises(ValueError, match="a link, not a results database"):
        ResultStore(run / "results.sqlite")
    assert target.read_bytes() == b""
    other = tmp_path / "run2"
    other.mkdir()
    (other / "results.sqlite.lock").symlink_to(tmp_path / "not-there")  # a dangling link: nothing is created
    with pytest.raises(ValueError, match="cannot be opened"):
        ResultStore(other / "results.sqlite")
    assert not (tmp_path / "not-there").exists()
