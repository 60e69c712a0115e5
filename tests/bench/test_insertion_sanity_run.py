"""Insertion and sanity benchmarks on the bundled photos, through the command line."""

import os
import subprocess
import sys

import pytest

from attrdist.bench import ResultStore, write_report

pytestmark = pytest.mark.slow  # end-to-end: `pytest -m "not slow"` leaves it out


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
    assert {r[4] for r in rows} - {"zeroed"} in ({"aic_auc", "sic_auc"}, {"aic_auc"})
    assert all(r[5] == 0 for r in rows if r[4] == "zeroed")
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
    assert depths == ["depth000", "depth010", "depth019"]  # 19 blocks with weights (no _bn0, _bn1)
    for r in rows:
        if r[1] == "depth000" and r[4] not in ("fraction", "zeroed"):
            assert abs(r[5] - 1.0) < 1e-9, r
    written = write_report(out)
    assert written["sanity"].stat().st_size > 0
    assert "spearman_abs (vanilla, lower is better)" in written["markdown"].read_text()
    # a run folder is data: a sanity.png linked elsewhere is replaced, never written through
    outside = tmp_path / "outside.png"
    outside.write_text("keep")
    written["sanity"].unlink()
    written["sanity"].symlink_to(outside)
    written = write_report(out)
    assert outside.read_text() == "keep" and not written["sanity"].is_symlink()


# tau 0.9 > 1 - 1/K: VAR keeps no pixel, so every refined map is all zero
ZEROING = {"var": {"preset": "normalized"}, "zero": {"preset": "paper", "tau": 0.9}}


def test_zeroed_maps_are_reported_not_scored(tmp_path, lite0):
    from attrdist.bench import InsertionConfig, SanityConfig, run_insertion, run_sanity

    store = run_insertion(InsertionConfig(methods=["gradcam"], max_items=1, variants=ZEROING), tmp_path / "i",
                          lm=lite0)
    rows, skipped = store.rows(), dict(store.skipped())
    zero = [r for r in rows if r[3] == "zero"]
    assert [(r[4], r[5]) for r in zero] == [("zeroed", 1.0)]  # no AUC, no curve
    assert not [c for c in store.curves("aic") if c[3] == "zero"]
    assert skipped[f"{zero[0][0]}/gradcam/zero"] == "all-zero map"
    store.close()
    md = write_report(tmp_path / "i")["markdown"].read_text()
    assert "1/1" in md  # the zeroed count is in the report

    store = run_sanity(SanityConfig(methods=["gradcam"], max_items=1, depths=2, variants=ZEROING), tmp_path / "s",
                       lm=lite0)
    rows, skipped = store.rows(), dict(store.skipped())
    zero = [r for r in rows if r[3] == "zero"]
    assert {r[4] for r in zero} == {"fraction", "zeroed"}  # no similarity: 0 would read as "passes the check"
    assert all(r[5] == 1.0 for r in zero if r[4] == "zeroed")
    assert any(v == "original all-zero map" for k, v in skipped.items() if k.endswith("/gradcam/zero"))
    assert {r[4] for r in rows if r[3] == "var"} >= {"spearman_abs", "ssim", "hog_pearson"}
    store.close()


LITE0_BLOCKS = ["_fc", "_conv_head"] + [f"_blocks.{i}" for i in range(15, -1, -1)] + ["_conv_stem"]


def test_sanity_run_stores_the_blocks_it_randomised(tmp_path, lite0):
    import yaml

    from attrdist.bench import SanityConfig, run_sanity

    config = SanityConfig(methods=["gradcam"], max_items=1, depths=2)
    store = run_sanity(config, tmp_path / "s", lm=lite0)
    assert store.config()["blocks"] == LITE0_BLOCKS  # the weight-holding blocks, no BatchNorm-only _bn0 or _bn1
    assert {(r[1], r[5]) for r in store.rows() if r[4] == "fraction"} == {("depth000", 0.0), ("depth019", 1.0)}
    store.close()
    assert yaml.safe_load((tmp_path / "s" / "config.yaml").read_text())["blocks"] == LITE0_BLOCKS
    assert SanityConfig.load(tmp_path / "s" / "config.yaml").blocks == LITE0_BLOCKS
    run_sanity(config, tmp_path / "s", lm=lite0).close()  # resuming with the same choice is the same run

    store = run_sanity(SanityConfig(methods=["gradcam"], max_items=1, depths=2, blocks="all"),
                       tmp_path / "all", lm=lite0)
    everything = store.config()["blocks"]
    assert everything[:3] == ["_fc", "_bn1", "_conv_head"] and everything[-2:] == ["_bn0", "_conv_stem"]
    store.close()
    store = run_sanity(SanityConfig(methods=["gradcam"], max_items=1, depths=0, blocks="_fc,_conv_head"),
                       tmp_path / "named", lm=lite0)
    assert store.config()["blocks"] == ["_fc", "_conv_head"]
    assert {r[1] for r in store.rows()} == {"depth000", "depth001", "depth002"}
    store.close()
