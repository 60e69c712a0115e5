"""Insertion and sanity benchmarks on the bundled photos, through the command line."""

import os
import subprocess
import sys

import pytest

from attrdist.bench import BENCHMARKS, ResultStore, report_benchmark, write_report

pytestmark = pytest.mark.slow  # end-to-end: `pytest -m "not slow"` leaves it out


def run(*args):
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    return subprocess.run([sys.executable, "-m", "attrdist", *args], capture_output=True, text=True, env=env,
                          timeout=900)


def report(run_dir):
    """``attrdist report``'s call: the benchmark that wrote the run, from the registry."""
    return write_report(run_dir, BENCHMARKS.get(report_benchmark(run_dir)))


def test_insertion_sample(tmp_path):
    out = tmp_path / "ins"
    proc = run("bench", "insertion", "--out", str(out), "--max-items", "4", "--methods", "gradcam,input_x_gradient")
    assert proc.returncode == 0, proc.stderr[-2000:]
    with ResultStore(out / "results.sqlite", read_only=True) as s:
        scores, maps, curve_skips = s.scores(), s.maps(), s.curve_skips()
        aic_curves = s.curves("aic")
    assert {x.metric for x in scores} in ({"aic_auc", "sic_auc"}, {"aic_auc"})
    assert len(maps) == 4 * 2 * 2 and all(m.scorable for m in maps)
    assert len(aic_curves) == 4 * 2 * 2 and all(len(c.values) == 1001 for c in aic_curves)
    # SIC skips are recorded per map with the reason, never silently dropped
    sic = {(x.item, x.method, x.variant) for x in scores if x.metric == "sic_auc"}
    skipped = {(c.item, c.method, c.variant): c.reason for c in curve_skips if c.name == "sic"}
    assert {(m.item, m.method, m.variant) for m in maps} == sic | set(skipped) and not sic & set(skipped)
    assert all("min_pred" in reason for reason in skipped.values())
    written = report(out)
    md = written["markdown"].read_text()
    assert "aic_median_curve (vanilla)" in md and "| gradcam |" in md
    assert written["curve_aic"].stat().st_size > 0


def test_sanity_sample(tmp_path):
    out = tmp_path / "san"
    proc = run("bench", "sanity", "--out", str(out), "--max-items", "2", "--methods", "gradcam", "--depths", "3")
    assert proc.returncode == 0, proc.stderr[-2000:]
    with ResultStore(out / "results.sqlite", read_only=True) as s:
        scores, fractions = s.scores(), s.unit_attributes()
    depths = sorted({x.unit for x in scores})
    assert depths == ["depth000", "depth010", "depth019"]  # 19 blocks with weights (no _bn0, _bn1)
    assert {(a.unit, a.name, a.value) for a in fractions} == {
        ("depth000", "fraction", 0.0), ("depth010", "fraction", 10 / 19), ("depth019", "fraction", 1.0)}
    for x in scores:
        if x.unit == "depth000":  # the original against itself
            assert abs(x.value - 1.0) < 1e-9, x
    written = report(out)
    assert written["sanity"].stat().st_size > 0
    assert "spearman_abs (vanilla, lower is better)" in written["markdown"].read_text()
    # a run folder is data: a sanity.png linked elsewhere is replaced, never written through
    outside = tmp_path / "outside.png"
    outside.write_text("keep")
    written["sanity"].unlink()
    written["sanity"].symlink_to(outside)
    written = report(out)
    assert outside.read_text() == "keep" and not written["sanity"].is_symlink()


# tau 0.9 > 1 - 1/K: VAR keeps no pixel, so every refined map is all zero
ZEROING = {"var": {"preset": "normalized"}, "zero": {"preset": "paper", "tau": 0.9}}


def test_zeroed_maps_are_reported_not_scored(tmp_path, lite0):
    from attrdist.bench import InsertionConfig, SanityConfig, run_insertion, run_sanity

    with run_insertion(InsertionConfig(methods=["gradcam"], max_items=1, variants=ZEROING), tmp_path / "i",
                       lm=lite0) as run:
        store = run.store
        assert not [x for x in store.scores() if x.variant == "zero"]  # no AUC, no curve
        assert not [c for c in store.curves("aic") if c.variant == "zero"]
        assert [(m.method, m.reason) for m in store.maps() if m.variant == "zero"] == [("gradcam", "all-zero map")]
        assert store.skipped() == []  # a map, not the item
    md = report(tmp_path / "i")["markdown"].read_text()
    assert "1/1" in md and "all-zero map: 1" in md  # the unscorable count and its reason are in the report

    with run_sanity(SanityConfig(methods=["gradcam"], max_items=1, depths=2, variants=ZEROING), tmp_path / "s",
                    lm=lite0) as run:
        store = run.store
        scores, maps = store.scores(), store.maps()
        fractions = {a.unit for a in store.unit_attributes() if a.name == "fraction"}
    # no similarity: 0 would read as "passes the check"
    assert not [x for x in scores if x.variant == "zero"]
    zero = [m for m in maps if m.variant == "zero"]
    assert {m.unit for m in zero} == fractions and all(not m.scorable for m in zero)
    assert {m.reason for m in zero if m.unit != "depth000"} == {"original all-zero map"}
    assert {x.metric for x in scores if x.variant == "var"} >= {"spearman_abs", "ssim", "hog_pearson"}


LITE0_BLOCKS = ["_fc", "_conv_head"] + [f"_blocks.{i}" for i in range(15, -1, -1)] + ["_conv_stem"]


def test_sanity_run_stores_the_blocks_it_randomised(tmp_path, lite0):
    import yaml

    from attrdist.bench import SanityConfig, run_sanity

    config = SanityConfig(methods=["gradcam"], max_items=1, depths=2)
    with run_sanity(config, tmp_path / "s", lm=lite0) as run:
        assert run.store.config()["blocks"] == LITE0_BLOCKS  # the weight-holding blocks, no BatchNorm-only ones
        assert {(a.unit, a.value) for a in run.store.unit_attributes() if a.name == "fraction"} == {
            ("depth000", 0.0), ("depth019", 1.0)}
    assert yaml.safe_load((tmp_path / "s" / "config.yaml").read_text())["blocks"] == LITE0_BLOCKS
    assert SanityConfig.load(tmp_path / "s" / "config.yaml").blocks == LITE0_BLOCKS
    run_sanity(config, tmp_path / "s", lm=lite0).close()  # resuming with the same choice is the same run

    with run_sanity(SanityConfig(methods=["gradcam"], max_items=1, depths=2, blocks="all"),
                    tmp_path / "all", lm=lite0) as run:
        everything = run.store.config()["blocks"]
    assert everything[:3] == ["_fc", "_bn1", "_conv_head"] and everything[-2:] == ["_bn0", "_conv_stem"]
    with run_sanity(SanityConfig(methods=["gradcam"], max_items=1, depths=0, blocks="_fc,_conv_head"),
                    tmp_path / "named", lm=lite0) as run:
        assert run.store.config()["blocks"] == ["_fc", "_conv_head"]
        assert {x.unit for x in run.store.scores()} == {"depth000", "depth001", "depth002"}
