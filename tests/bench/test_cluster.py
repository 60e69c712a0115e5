"""A run folder shared by several machines (issue 32): each process writes its own part of the store (rollback
journal, never a file written by two processes), every reader sees the union, and a run resumed with another number
of processes neither loses nor repeats an item. Two torchrun "nodes" on this machine (a static rendezvous on
127.0.0.1, one process each); one is killed mid-run, the run resumes with one node, is killed again, and finishes
with three processes; every record equals an uninterrupted one-process run's."""

import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from attrdist.bench import ResultStore
from attrdist.bench.store import part_files

pytestmark = pytest.mark.slow  # end-to-end: `pytest -m "not slow"` leaves it out

ARGS = ["localization", "--max-items", "10", "--methods", "gradcam,integrated_gradients", "--cell", "64"]
ENV = {**os.environ, "PYTHONWARNINGS": "ignore", "OMP_NUM_THREADS": "1"}
TORCHRUN = [sys.executable, "-m", "torch.distributed.run"]


def _port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _bench(out):
    return ["-m", "attrdist", "bench", *ARGS, "--out", str(out)]


def _done_rows(out):
    """``(file, item, rank)`` of every completion mark in every part, read with plain SQLite (not our reader)."""
    rows = []
    for path in sorted(Path(out).glob("results*.sqlite")):
        con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            rows += [(path.name, item, rank) for item, rank in con.execute("SELECT item, rank FROM done")]
        except sqlite3.OperationalError:  # created, no table yet
            pass
        finally:
            con.close()
    return rows


def _start(cmd):
    return subprocess.Popen(cmd, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)


def _tree(pid):
    """``pid`` and every process below it (torchrun starts its workers in sessions of their own)."""
    children = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo += children.get(p, [])
    return out


def _kill(proc):
    """Kill a node as a machine dies: torchrun and its workers at once."""
    for pid in _tree(proc.pid):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    proc.wait()


def _wait_for(predicate, seconds=300):
    deadline = time.time() + seconds
    while time.time() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def _records(out):
    with ResultStore(Path(out) / "results.sqlite", read_only=True) as s:
        return s.scores(), s.maps(), s.done()


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    out = tmp_path_factory.mktemp("one") / "run"
    proc = subprocess.run([sys.executable, *_bench(out)], env=ENV, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out


def test_two_nodes_killed_resumed_with_one_then_three_processes(reference, tmp_path):
    out = tmp_path / "shared"
    port = _port()
    nodes = [_start([*TORCHRUN, "--nnodes", "2", "--node_rank", str(rank), "--nproc_per_node", "1",
                     "--master_addr", "127.0.0.1", "--master_port", str(port), *_bench(out)]) for rank in (0, 1)]
    # kill the second node once it has stored an item of its own (mid-run: 10 items, 5 each)
    assert _wait_for(lambda: any(f == "results.rank1.sqlite" for f, _, _ in _done_rows(out))), nodes[1].stderr
    _kill(nodes[1])
    if not _wait_for(lambda: nodes[0].poll() is not None, 120):  # its peer is gone: it fails or waits forever
        _kill(nodes[0])
    first = _done_rows(out)
    assert 2 <= len(first) < 10, first

    # resume with one node (one process), killed after one more item
    one = _start([*TORCHRUN, "--nnodes", "1", "--nproc_per_node", "1", "--master_port", str(_port()), *_bench(out)])
    assert _wait_for(lambda: len(_done_rows(out)) > len(first)), one.stderr
    _kill(one)
    second = _done_rows(out)
    assert len(second) < 10, "the one-node resume should have been killed before the end"

    # finish with three processes
    three = subprocess.run([*TORCHRUN, "--nproc_per_node", "3", "--master_port", str(_port()), *_bench(out)],
                           env=ENV, capture_output=True, text=True, timeout=900)
    assert three.returncode == 0, three.stderr[-3000:]

    rows = _done_rows(out)
    items = [item for _, item, _ in rows]
    assert len(items) == len(set(items)) == 10  # no item lost, none stored twice
    for name, _, rank in rows:  # every file written by one rank only: its own
        assert name == ("results.sqlite" if rank == 0 else f"results.rank{rank}.sqlite"), (name, rank)
    assert {p.name for p in part_files(out)} == {"results.sqlite", "results.rank1.sqlite", "results.rank2.sqlite"}
    assert _records(out) == _records(reference)  # every score and map check, read through the union
    with sqlite3.connect(out / "results.sqlite") as con:
        assert con.execute("PRAGMA journal_mode").fetchone()[0] == "delete"  # a rollback journal, not WAL
