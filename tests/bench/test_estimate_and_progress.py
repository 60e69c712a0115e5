"""An estimate before a run, the progress of a run, per-depth timings and batch transactions (issue 24)."""

import os
import sqlite3
import subprocess
import sys

import pytest

from attrdist.bench import (
    ItemResult,
    LocalizationConfig,
    ResultStore,
    SanityConfig,
    Score,
    SkippedItem,
    run_localization,
    run_sanity,
)
from attrdist.bench.localization import Localization
from attrdist.bench.runner import Progress
from attrdist.bench.store import StoredItem


def test_estimate_projects_the_whole_run_and_writes_nothing(tmp_path, lite0):
    out = tmp_path / "run"
    config = LocalizationConfig(methods=["gradcam"], max_items=5)
    estimates = Localization.estimate(config, out, items=2, lm=lite0)
    (est,) = estimates.runs  # one run: one estimate
    assert not out.exists()  # nothing in the run folder
    assert (est.items, est.done, est.measured) == (5, 0, 2)
    assert est.seconds_per_item > 0 and est.bytes_per_item > 0
    assert est.seconds == pytest.approx(5 * est.seconds_per_item) and est.bytes == pytest.approx(5 * est.bytes_per_item)
    assert estimates.seconds == est.seconds and str(estimates) == str(est)
    assert "5 items (5 to do)" in str(est) and "projected time" in str(est)


def test_estimate_subtracts_what_the_run_folder_holds(tmp_path, lite0):
    config = LocalizationConfig(methods=["gradcam"], max_items=2)
    run_localization(config, tmp_path, lm=lite0).close()
    before = sorted(p.name for p in tmp_path.iterdir())
    (est,) = Localization.estimate(config, tmp_path, items=1, lm=lite0).runs
    assert (est.items, est.done, est.seconds) == (2, 2, 0.0)
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_a_run_says_what_it_runs_and_moves_within_an_item(tmp_path, lite0, capsys, monkeypatch):
    steps = []
    step = Progress.step
    monkeypatch.setattr(Progress, "step", lambda self, items, what="": (steps.append((items, what)),
                                                                          step(self, items, what)))
    run_localization(LocalizationConfig(methods=["gradcam", "input_x_gradient"], max_items=1), tmp_path,
                     lm=lite0).close()
    first = capsys.readouterr().err.splitlines()[0]
    assert first.startswith("localization: 1 items of sample (1 to do)") and "gradcam, input_x_gradient" in first
    assert steps == [(0.5, "gradcam"), (0.5, "input_x_gradient")]  # half an item per method


def test_in_a_log_a_run_prints_lines_with_its_rate_and_time_left(monkeypatch, capsys):
    """Where standard error is a file (a batch job), progress is plain lines, not a bar's carriage returns."""
    monkeypatch.setenv("ATTRDIST_LOG_INTERVAL", "0")
    progress = Progress()
    progress.open(todo=4, total=10, desc="localization")
    progress.step(0.5, "gradcam")
    progress.finish(2)
    progress.close()
    err = capsys.readouterr().err  # capsys's stderr is not a terminal
    lines = err.splitlines()
    assert "\r" not in err and len(lines) == 3, err
    assert lines[0].startswith("localization: 6.5/10 items, ") and "(last: gradcam)" in lines[0]
    assert all("items/h" in line and "elapsed" in line and " left" in line for line in lines)
    assert lines[-1].startswith("localization: 8.0/10 items")


def test_sanity_records_each_depths_cost_and_moves_per_depth(tmp_path, lite0, monkeypatch):
    steps = []
    step = Progress.step
    monkeypatch.setattr(Progress, "step", lambda self, items, what="": (steps.append(what), step(self, items, what)))
    store = run_sanity(SanityConfig(methods=["gradcam"], max_items=1, depths=3), tmp_path, lm=lite0).store
    timings = store.timings()
    store.close()
    assert {"item", "depth000", "depth010", "depth019"} <= set(timings)
    assert all(seconds > 0 and n == 1 for seconds, n in timings.values())
    assert steps == ["depth 0/19 gradcam", "depth 10/19 gradcam", "depth 19/19 gradcam"]


def _one(item, value, timings=None):
    return ItemResult(scores=[Score(item, "u", "m", "v", "x", value)], timings=timings or {})


def test_a_batch_is_one_transaction(tmp_path):
    with ResultStore(tmp_path / "results.sqlite") as store:
        store.write_items([StoredItem("a", _one("a", 1.0), 0.1),
                           StoredItem("b", _one("b", 2.0, {"depth001": 0.5}), 0.1)], [SkippedItem("c", "why")])
        assert store.done() == {"a", "b", "c"} and store.timings()["depth001"] == (0.5, 1)
        with pytest.raises(sqlite3.IntegrityError):  # "a" again: the whole batch is rolled back
            store.write_items([StoredItem("d", _one("d", 1.0), 0.1), StoredItem("a", ItemResult(), 0.1)])
        assert store.done() == {"a", "b", "c"} and len(store.scores()) == 2


@pytest.mark.slow
@pytest.mark.parametrize("benchmark, args", [
    ("localization", ["--max-items", "3"]),
    ("insertion", ["--max-items", "3"]),
    ("sanity", ["--max-items", "3", "--depths", "2"]),
])
def test_estimate_from_the_command_line(tmp_path, benchmark, args):
    out = tmp_path / "run"
    proc = subprocess.run([sys.executable, "-m", "attrdist", "bench", benchmark, "--out", str(out), "--methods",
                           "gradcam", *args, "--estimate", "1"], capture_output=True, text=True, timeout=900,
                          env={**os.environ, "PYTHONWARNINGS": "ignore"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert f"{benchmark}: 3 items (3 to do), measured on 1" in proc.stdout and "projected time" in proc.stdout
    assert not out.exists()
    # it says first that it estimates, and where the run would go (not the temporary folder it times in)
    assert f"{benchmark}: estimating from 1 item(s)" in proc.stderr and f"run folder {out}" in proc.stderr
    assert "attrdist-estimate-" not in proc.stderr
