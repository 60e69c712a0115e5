"""The localisation runner: results, resume after a real SIGKILL, torchrun sharding, config checks, report."""

import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time

import pytest

from attrdist.bench import (
    BENCHMARKS,
    ConfigMismatchError,
    LocalizationConfig,
    ResultStore,
    report_benchmark,
    run_localization,
    write_report,
)
from attrdist.bench.store import part_files

pytestmark = pytest.mark.slow  # end-to-end: `pytest -m "not slow"` leaves it out

ARGS = ["--max-items", "6", "--methods", "gradcam,input_x_gradient", "--cell", "64"]
# one thread everywhere: float32 sums depend on the thread count, and torchrun ranks use one thread each
ENV = {"PYTHONWARNINGS": "ignore", "OMP_NUM_THREADS": "1"}


def cli(*args):
    return [sys.executable, "-m", "attrdist", *args], {**os.environ, **ENV}


def records_of(run_dir):
    """Every record of a run: its scores and its map checks."""
    with ResultStore(run_dir / "results.sqlite", read_only=True) as s:
        return s.scores(), s.maps()


def key(record):
    """The map a record belongs to."""
    return record.item, record.unit, record.method, record.variant


def report(run_dir):
    """``attrdist report``'s call: the benchmark that wrote the run, from the registry."""
    return write_report(run_dir, BENCHMARKS.get(report_benchmark(run_dir)))


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    out = tmp_path_factory.mktemp("ref")
    cmd, env = cli("bench", "localization", "--out", str(out), *ARGS)
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert "| gradcam |" in proc.stdout and "average change" in proc.stdout
    return out


def test_records_complete(reference):
    scores, maps = records_of(reference)
    assert len({m.item for m in maps}) == 6
    # 6 grids x 4 cells x 2 methods x 2 variants: a check of every map
    assert len(maps) == 6 * 4 * 2 * 2 and len({key(m) for m in maps}) == len(maps)
    assert {m.variant for m in maps} == {"vanilla", "var"}
    # 6 metrics (RA, IoU, precision, recall, F1, no_positive) of every scorable map, none of the others
    metrics = {"region_attribution", "iou", "precision", "recall", "f1", "no_positive"}
    assert {s.metric for s in scores} == metrics
    scorable = {key(m) for m in maps if m.scorable}
    assert len(scores) == len(scorable) * len(metrics)
    assert {key(s) for s in scores} == scorable
    assert all(m.reason for m in maps if not m.scorable)  # an unscorable map says why
    for s in scores:
        if s.metric == "region_attribution":
            assert 0 <= s.value <= 1, s


def test_config_records_every_method_setting(reference):
    """Every option that changes a number is stored with the run, defaults included (the CAM layer resolved)."""
    import yaml

    with ResultStore(reference / "results.sqlite") as s:
        stored = s.config()["method_settings"]
    saved = yaml.safe_load((reference / "config.yaml").read_text())["method_settings"]
    assert stored == saved
    assert stored["gradcam"]["relu"] is True and stored["gradcam"]["upsample"] == "bilinear"
    assert stored["gradcam"]["layer"] and stored["gradcam"]["resolution"] == "input"
    LocalizationConfig.load(reference / "config.yaml")  # a run's config.yaml loads back as a configuration


def test_resume_after_sigkill(reference, tmp_path):
    out = tmp_path / "run"
    cmd, env = cli("bench", "localization", "--out", str(out), *ARGS)
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    db = out / "results.sqlite"
    deadline = time.time() + 300
    while time.time() < deadline:  # kill once some, not all, items are stored (the run's file is only read here)
        if db.exists():
            try:
                with ResultStore(db, read_only=True) as s:
                    if 1 <= len(s.done()) < 6:
                        break
            except sqlite3.OperationalError:  # its tables are not made yet, or it is being written
                pass
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    with ResultStore(db, read_only=True) as s:
        partial = len(s.done())
    assert 1 <= partial < 6
    again = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr
    assert records_of(out) == records_of(reference)


def test_torchrun_two_processes_equal_one(reference, tmp_path):
    torchrun = shutil.which("torchrun") or os.path.join(os.path.dirname(sys.executable), "torchrun")
    out = tmp_path / "dist"
    env = {**os.environ, **ENV}
    proc = subprocess.run([torchrun, "--nproc_per_node", "2", "--master_port", "29533", "-m", "attrdist", "bench",
                           "localization", "--out", str(out), *ARGS], env=env, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert records_of(out) == records_of(reference)
    ranks = set()
    for part in part_files(out):  # each rank writes its own part of the store
        with sqlite3.connect(part) as db:
            ranks |= {r[0] for r in db.execute("SELECT rank FROM done")}
    assert ranks == {0, 1} and [p.name for p in part_files(out)] == ["results.sqlite", "results.rank1.sqlite"]


def test_other_config_in_same_folder_is_refused(reference):
    cmd, env = cli("bench", "localization", "--out", str(reference), *ARGS[:-2], "--cell", "32")
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 2 and "differs in: cell" in proc.stderr


def test_report_files(reference):
    written = report(reference)
    md = written["markdown"].read_text()
    assert "| gradcam |" in md and "average change" in md and "%" in md
    assert "\\begin{tabular}" in written["latex"].read_text() and written["html"].name == "report.html"
    assert "region_attribution" in written["csv"].read_text()
    assert written["plot_region_attribution"].stat().st_size > 0
    cmd, env = cli("report", str(reference))
    assert subprocess.run(cmd, env=env, capture_output=True, text=True).returncode == 0


@pytest.mark.parametrize("text, message", [
    ("trust_checkpoint: true\nmodel: evil.pt\n", "trust_checkpoint cannot come from a configuration file"),
    ("batch_size: '4'\n", "field 'batch_size' must be int"),
    ("variants: [a]\n", "field 'variants' must be dict"),
    ("methods: [\n", "not valid YAML"),
    ("- 1\n", "a configuration is a mapping"),
])
def test_bad_config_files_are_clear_errors(tmp_path, text, message):
    (tmp_path / "c.yaml").write_text(text)
    with pytest.raises(ValueError, match=message):
        LocalizationConfig.load(tmp_path / "c.yaml")


def test_saved_configs_never_carry_trust(tmp_path):
    LocalizationConfig(trust_checkpoint=True).save(tmp_path / "c.yaml")
    assert "trust" not in (tmp_path / "c.yaml").read_text()
    assert LocalizationConfig.load(tmp_path / "c.yaml").trust_checkpoint is False


def test_report_writes_only_inside_the_run_folder(reference, tmp_path):
    # a shared run folder is data: a metric named like a path, or report.md linked elsewhere, must not
    # make `attrdist report` write outside it
    run = tmp_path / "run"
    shutil.copytree(reference, run)
    (run / "plot_a").mkdir()
    outside = tmp_path / "outside.md"
    outside.write_text("keep")
    (run / "report.md").unlink(missing_ok=True)
    (run / "report.md").symlink_to(outside)
    with sqlite3.connect(run / "results.sqlite") as db:
        cols = [r[1] for r in db.execute("PRAGMA table_info(scores)")]
        row = db.execute(f"SELECT {', '.join(cols)} FROM scores LIMIT 1").fetchone()
        values = dict(zip(cols, row, strict=True)) | {"metric": "a/../../escaped"}
        db.execute(f"INSERT INTO scores ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})",
                   [values[c] for c in cols])
    written = report(run)
    assert outside.read_text() == "keep" and not (tmp_path / "escaped.png").exists()
    assert all(p.resolve().parent == run.resolve() for p in written.values())
    (run / "results.sqlite").write_bytes(b"not a database" * 100)
    with pytest.raises(ValueError, match="not a readable results database"):
        report(run)


def test_config_yaml_round_trip(reference, tmp_path):
    cfg = LocalizationConfig.load(reference / "config.yaml")
    assert cfg.cell == 64 and cfg.methods == ["gradcam", "input_x_gradient"]
    with ResultStore(tmp_path / "r.sqlite") as s:
        s.bind_config(cfg.to_dict())
        with pytest.raises(ConfigMismatchError, match="seed"):
            s.bind_config({**cfg.to_dict(), "seed": 9})


def test_unknown_dataset(tmp_path, lite0):
    with pytest.raises(ValueError, match="unknown dataset kind"):
        run_localization(LocalizationConfig(dataset="mnist:/x"), tmp_path, lm=lite0)


def test_default_preset_zeroes_no_map_on_the_sample_benchmark(tmp_path, lite0):
    from attrdist import list_methods

    cfg = LocalizationConfig(methods=list_methods("cnn"), max_items=4)
    with run_localization(cfg, tmp_path, lm=lite0) as run:
        checks = [m for m in run.store.maps() if m.variant == "var"]
    assert len(checks) == 4 * 4 * len(list_methods("cnn"))
    assert all(m.scorable for m in checks), [m for m in checks if not m.scorable]


def test_the_ranking_section_puts_a_variant_that_zeroes_maps_last(tmp_path, lite0):
    from attrdist.bench.report import markdown, summarize

    cfg = LocalizationConfig(methods=["gradcam", "lrp"], max_items=2, variants={
        "paper": {"preset": "paper"}, "authors-code": {"preset": "authors-code"},
        "paper+quantile": {"preset": "paper", "normalize": "quantile"}})
    with run_localization(cfg, tmp_path, lm=lite0) as run:
        t = summarize(run.store)
        dead = [m for m in run.store.maps() if not m.scorable]
    assert dead and {m.variant for m in dead} == {"authors-code"}  # it zeroes LRP maps, the others none
    md = markdown(t)
    section = md.split("## variants ranked (the variant study's rule")[1].split("\n\n")[1].splitlines()
    assert section[0] == "| variant | no harm | harms | improvements | mean change (RA) |"
    last = [c.strip() for c in section[-1].strip("|").split("|")]
    assert last[:2] == ["authors-code", "no"] and int(last[2]) >= 1
    assert "unscorable" in md and "zeroed" not in md


def test_vit_runs_448_pixel_grids(tmp_path):
    """--cell 224 gives 448-px grids: a ViT sees the grid at its input size, its maps are scored on the grid."""
    pytest.importorskip("timm")
    cmd, env = cli("bench", "localization", "--out", str(tmp_path), "--model", "timm:vit_tiny_patch16_224",
                   "--weights", "random", "--cell", "224", "--max-items", "1", "--methods", "gradcam,gae")
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    scores, maps = records_of(tmp_path)
    dead = {key(m) for m in maps if not m.scorable}
    ra = [s for s in scores if s.metric == "region_attribution"]
    assert len(maps) == 4 * 2 * 2 and len(ra) == len(maps) - len(dead)
    assert not {key(s) for s in ra} & dead  # an unscorable map has no score
    assert all(0 <= s.value <= 1 for s in ra) and len(dead) < len(maps)



def test_opening_a_store_while_another_process_creates_it(tmp_path):
    # a store opened while another connection holds the write lock (creating tables) waits for the lock, not
    # fail; it keeps SQLite's rollback journal (a run folder may live on a network file system, where WAL is unsafe)
    import threading

    path = tmp_path / "results.sqlite"
    other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    other.execute("CREATE TABLE creating(x)")
    other.execute("BEGIN IMMEDIATE")
    threading.Timer(0.5, lambda: other.execute("COMMIT")).start()
    with ResultStore(path) as store:
        assert store.db.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
    other.close()
