"""Insertion and sanity benchmarks on the bundled photos, through the command line."""

import os
import subprocess
import sys

from attrdist.bench import ResultStore, write_report


def run(*args):
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    return subprocess.run([sys.executable, "-m", "attrdist", *args], capture_output=True, text=True, env=env,
                          timeout=900)


def test_insertion_sample(tmp_path):
    out = tmp_path / "ins"
    proc = run("bench", "insertion", "--out", str(out), "--max-items", "4", "--methods", "gradcam,input_x_gradient")
    assert proc.returncode == 0, proc.stderr[-2000:]
    with ResultStore(out / "results.sqlite") as s:
        rows, skipped = s.rows(), dict(s.skipped())
        aic_curves = s.curves("aic")
    assert {r[4] for r in rows} == {"aic_auc", "sic_auc"} or {r[4] for r in rows} == {"aic_auc"}
    assert len(aic_curves) == 4 * 2 * 2 and all(len(c[4]) == 1001 for c in aic_curves)
    # SIC skips are recorded with the reason, never silently dropped
    sic_rows = {r[0] for r in rows if r[4] == "sic_auc"}
    for item in {r[0] for r in rows} - sic_rows:
        assert "min_pred" in skipped[f"{item}/sic"]
    written = write_report(out)
    md = written["markdown"].read_text()
    assert "aic_median_curve (vanilla)" in md and "| gradcam |" in md
    assert written["curve_aic"].stat().st_size > 0


def test_sanity_sample(tmp_path):
    out = tmp_path / "san"
    proc = run("bench", "sanity", "--out", str(out), "--max-items", "2", "--methods", "gradcam", "--depths", "3")
    assert proc.returncode == 0, proc.stderr[-2000:]
    with ResultStore(out / "results.sqlite") as s:
        rows = s.rows()
    depths = sorted({r[1] for r in rows})
    assert depths == ["depth000", "depth010", "depth021"]
    for r in rows:
        if r[1] == "depth000" and r[4] != "fraction":
            assert abs(r[5] - 1.0) < 1e-9, r
    written = write_report(out)
    assert written["sanity"].stat().st_size > 0 and "spearman_abs (vanilla)" in written["markdown"].read_text()
