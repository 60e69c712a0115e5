"""The variant study's analysis and its rule (the second study's), on made-up result stores with known answers."""

import json
import random

import pytest

from attrdist.bench.records import ItemResult, MapCheck, Score, UnitAttribute
from attrdist.bench.store import ResultStore
from attrdist.bench.study import analyse, choose_default, comparisons, markdown

METHODS = ["gradcam", "gradient"]
VARIANTS = ["good", "zeroing", "hurts_insertion", "ignores_weights"]


def _store(path, bench, items):
    path.mkdir(parents=True)
    s = ResultStore(path / "results.sqlite")
    s.bind_config({"benchmark": bench, "methods": METHODS, "variants": {v: {} for v in VARIANTS}})
    for item, result in items.items():
        s.write_item(item, result, 0.0)
    return s


def _scored(out, item, unit, method, variant, values):
    """A map's check and, if it could be scored (``values`` is not ``None``), its scores."""
    out.maps.append(MapCheck(item, unit, method, variant, None if values is not None else "all-zero map"))
    out.scores += [Score(item, unit, method, variant, metric, v) for metric, v in (values or {}).items()]


def _study(tmp_path):
    rng = random.Random(0)
    loc, ins, san = {}, {}, {}
    for g in range(12):
        item, out = f"grid{g}", ItemResult()
        for cell in range(4):
            for m in METHODS:
                base = 0.3 + 0.1 * rng.random()
                values = {"vanilla": base, "good": base * 1.5, "zeroing": None if cell == 0 else base * 2.0,
                          "hurts_insertion": base * 1.6, "ignores_weights": base * 1.7}
                for v, ra in values.items():
                    _scored(out, item, f"c{cell}", m, v,
                            None if ra is None else {"region_attribution": ra, "iou": ra / 2, "f1": ra / 3})
        loc[item] = out
    for i in range(10):
        item, out = f"img{i}", ItemResult()
        for m in METHODS:
            a = 0.5 + 0.1 * rng.random()
            for v in ["vanilla", *VARIANTS]:
                _scored(out, item, "image", m, v,
                        {"aic_auc": a * (0.5 if v == "hurts_insertion" else 1.0 + 0.01 * i), "sic_auc": a})
        ins[item] = out
        out = ItemResult(attributes=[UnitAttribute(item, d, "fraction", f)
                                     for d, f in (("depth000", 0.0), ("depth004", 0.5), ("depth009", 1.0))])
        for m in METHODS:
            s = 0.1 + 0.1 * rng.random()
            for v in ["vanilla", *VARIANTS]:
                _scored(out, item, "depth000", m, v, {"spearman_abs": 1.0, "spearman": 1.0})
                for d in ("depth004", "depth009"):
                    rho = s + (0.4 if v == "ignores_weights" else 0.0)
                    _scored(out, item, d, m, v, {"spearman_abs": rho, "spearman": rho})
        san[item] = out
    for bench, items in (("localization", loc), ("insertion", ins), ("sanity", san)):
        _store(tmp_path / bench, bench, items).close()
    return loc


def test_changes_are_paired_over_scorable_maps(tmp_path):
    loc = _study(tmp_path)
    res = analyse(tmp_path, bootstrap=300)
    assert res["depths"] == [0.5, 1.0] and res["comparisons"] == comparisons(2, 2) == 2 * (3 + 2 + 2 * 2)
    for m in METHODS:
        def values(v, m=m):
            return {(s.item, s.unit): s.value for out in loc.values() for s in out.scores
                    if s.method == m and s.variant == v and s.metric == "region_attribution"}

        van, zer = values("vanilla"), values("zeroing")
        pairs = [k for k in van if k in zer]  # only the maps both could score
        assert len(pairs) == 36
        want = (sum(zer[k] for k in pairs) / sum(van[k] for k in pairs) - 1) * 100
        cell = res["cells"][m]["zeroing"]
        assert cell["region_attribution"]["change"] == pytest.approx(want) and cell["region_attribution"]["n"] == 36
        assert cell["unscorable_localization"] == [12, 48]
        good = res["cells"][m]["good"]["region_attribution"]
        assert good["change"] == pytest.approx(50) and good["ci"] == pytest.approx([50, 50])  # no width: paired
        assert res["cells"][m]["ignores_weights"]["spearman_abs@1.00"]["change"] == pytest.approx(0.4)


def test_rule_uses_the_papers_measures_and_excludes_harms(tmp_path):
    _study(tmp_path)
    res = analyse(tmp_path, bootstrap=2000)
    ranking = {r["variant"]: r for r in res["default"]["ranking"]}
    assert ranking["good"]["eligible"] and res["default"]["chosen"] == "good" and res["default"]["eligible"]
    assert any("unscorable" in h for h in ranking["zeroing"]["harms"])
    assert any("aic_auc worse" in h for h in ranking["hurts_insertion"]["harms"])
    assert any("spearman_abs@1.00 worse" in h for h in ranking["ignores_weights"]["harms"])
    assert any("spearman@0.50 worse" in h for h in ranking["ignores_weights"]["harms"])
    md = markdown(res)
    assert "### gradcam" in md and "Chosen: **good** (eligible)" in md and "Bonferroni over 18 tests" in md


def test_rule_ranks_by_significant_improvements_and_falls_back_to_fewest_harms():
    def cell(lo, hi, ra):  # what analyse() writes per metric: means, change, interval, pairs
        c = {x: {"mean": 0.5, "base": 0.5, "change": 0.0, "ci": [-1, 1], "n": 10}
             for x in ("region_attribution", "iou", "f1", "aic_auc", "sic_auc")}
        c["region_attribution"] = {"mean": 0.5 * (1 + ra / 100), "base": 0.5, "ci": [lo, hi], "change": ra, "n": 10}
        return c

    cells = {"gradcam": {"a": cell(1, 3, 2), "b": cell(-1, 9, 4), "c": cell(-9, -1, 90)}}
    res = {"methods": ["gradcam"], "variants": ["vanilla", "a", "b", "c"], "cells": cells, "depths": [],
           "unscorable": {}}
    d = choose_default(res)
    assert d["chosen"] == "a" and [r["variant"] for r in d["ranking"]] == ["a", "b", "c"]  # a: one significant gain
    only_harmful = {"methods": ["gradcam"], "variants": ["vanilla", "c"], "cells": cells, "depths": [],
                    "unscorable": {}}
    d = choose_default(only_harmful)
    assert d["chosen"] == "c" and not d["eligible"]  # nothing eligible: the fewest harms, said so


@pytest.mark.slow
def test_study_runs_end_to_end_on_the_sample_photos(tmp_path, lite0):
    from attrdist.bench import BENCHMARKS
    from attrdist.bench.study import CANDIDATES, Study, StudyConfig, run_study

    cfg = StudyConfig(dataset="sample", methods=["gradcam", "gradient"], grids=2, insertion_images=1,
                      sanity_images=1, first_item=0, depths=2, bootstrap=50,
                      variants={v: CANDIDATES[v] for v in ("normalized", "n+positive+smooth.05", "paper")})
    with run_study(cfg, tmp_path, lm=lite0) as run:
        assert set(run.stores) == {"localization", "insertion", "sanity"} and run.folder == tmp_path
        assert all(store.layout == 2 for store in run.stores.values())
        text = run.text()  # what `attrdist bench study` prints
        result = Study.analysis(run)
    # study.json is the analysis of the folder (as JSON: its tuples read back as lists)
    assert result == json.loads(json.dumps(analyse(tmp_path, bootstrap=50, seed=cfg.seed)))
    assert result["methods"] == ["gradcam", "gradient"]
    assert result["variants"] == ["vanilla", "normalized", "n+positive+smooth.05", "paper"]
    cell = result["cells"]["gradient"]["n+positive+smooth.05"]
    assert {"region_attribution", "iou", "f1", "spearman_abs@1.00", "spearman@1.00"} <= set(cell)
    assert cell["unscorable_localization"][1] == 8
    assert "### gradcam" in (tmp_path / "study.md").read_text()
    assert (tmp_path / "frontier.png").stat().st_size > 0
    assert "chosen:" in text and BENCHMARKS.get("study") is Study
    from attrdist.cli import main

    assert main(["report", str(tmp_path)]) == 0  # a report of each of its runs
    assert all((tmp_path / b / "report.html").exists() for b in ("localization", "insertion", "sanity"))
    # resuming reads the stored rows: the same analysis
    with run_study(cfg, tmp_path, lm=lite0) as again:
        assert Study.analysis(again)["cells"] == result["cells"]
