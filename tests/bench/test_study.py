"""The variant study's analysis and its rule, on made-up result stores with known answers."""

import math
import random

import pytest

from attrdist.bench.store import ResultStore
from attrdist.bench.study import PAPER_RA_GAIN, analyse, choose_default, markdown

METHODS = ["gradcam", "gradient"]
VARIANTS = ["good", "zeroing", "hurts_insertion"]


def _store(path, bench, items):
    path.mkdir(parents=True)
    s = ResultStore(path / "results.sqlite")
    s.bind_config({"benchmark": bench, "methods": METHODS, "variants": {v: {} for v in VARIANTS}})
    for item, rows in items.items():
        s.write_item(item, rows, 0.0)
    return s


def _study(tmp_path):
    rng = random.Random(0)
    loc, ins, san = {}, {}, {}
    for g in range(12):
        rows = []
        for cell in range(4):
            for m in METHODS:
                base = 0.3 + 0.1 * rng.random()
                values = {"vanilla": base, "good": base * 1.5, "zeroing": 0.0 if cell == 0 else base * 2.0,
                          "hurts_insertion": base * 1.6}
                for v, ra in values.items():
                    rows += [(f"c{cell}", m, v, "region_attribution", ra), (f"c{cell}", m, v, "iou", ra / 2),
                             (f"c{cell}", m, v, "f1", ra / 3),
                             (f"c{cell}", m, v, "zeroed", float(v == "zeroing" and cell == 0)),
                             (f"c{cell}", m, v, "no_positive", float(v == "zeroing" and cell == 0))]
        loc[f"grid{g}"] = rows
    for i in range(10):
        rows = []
        for m in METHODS:
            a = 0.5 + 0.1 * rng.random()
            for v in ["vanilla", *VARIANTS]:
                rows += [("image", m, v, "aic_auc", a * (0.5 if v == "hurts_insertion" else 1.05)),
                         ("image", m, v, "sic_auc", a), ("image", m, v, "zeroed", 0.0)]
        ins[f"img{i}"] = rows
        rows = []
        for m in METHODS:
            s = 0.1 + 0.01 * rng.random()
            for v in ["vanilla", *VARIANTS]:
                rows += [("depth000", m, v, "ssim", 1.0), ("depth009", m, v, "ssim", s),
                         ("depth009", m, v, "spearman_abs", s + 0.1)]
        san[f"img{i}"] = rows
    for bench, items in (("localization", loc), ("insertion", ins), ("sanity", san)):
        _store(tmp_path / bench, bench, items).close()
    return loc


def test_zeroed_maps_counted_and_excluded(tmp_path):
    loc = _study(tmp_path)
    res = analyse(tmp_path, bootstrap=300)
    for m in METHODS:
        # plain means over every cell (zeroed as 0) and over the scorable cells only
        def mean(v, exclude, m=m):
            vals = [r[4] for rows in loc.values() for r in rows
                    if r[1] == m and r[2] == v and r[3] == "region_attribution"
                    and not (exclude and v == "zeroing" and r[0] == "c0")]
            return sum(vals) / len(vals)

        cell = res["cells"][m]["zeroing"]
        assert cell["region_attribution"]["mean"] == pytest.approx(mean("zeroing", False))
        assert cell["region_attribution_excl"]["mean"] == pytest.approx(mean("zeroing", True))
        want = (mean("zeroing", False) / mean("vanilla", False) - 1) * 100
        assert cell["region_attribution"]["change"] == pytest.approx(want)
        lo, hi = cell["region_attribution"]["ci"]
        assert lo <= want <= hi
        assert cell["zeroed"] == 12 and cell["no_positive_localization"] == 12
        assert cell["maps_localization"] == 48
        good = res["cells"][m]["good"]["region_attribution"]
        # every cell gains exactly 50%: a paired interval has no width
        assert good["change"] == pytest.approx(50) and good["ci"] == pytest.approx([50, 50])


def test_rule_excludes_zeroing_and_insertion_loss(tmp_path):
    _study(tmp_path)
    res = analyse(tmp_path, bootstrap=300)
    ranking = {r["variant"]: r for r in res["default"]["ranking"]}
    assert not ranking["zeroing"]["eligible"] and "zeroed" in ranking["zeroing"]["reasons"][0]
    assert not ranking["hurts_insertion"]["eligible"]
    assert any("aic_auc lower" in r for r in ranking["hurts_insertion"]["reasons"])
    assert res["default"]["chosen"] == "good"
    assert ranking["good"]["paper_gains_reached"] == int(50 >= PAPER_RA_GAIN["gradcam"])
    assert ranking["good"]["extra_improved"] == 1
    md = markdown(res)
    assert "### gradcam (paper: +25%; the most any refinement can gain here: +" in md and "Chosen: **good**" in md


def test_rule_prefers_paper_gains_then_extra_methods():
    def cell(gain, zeroed=0):
        return {"region_attribution": {"change": gain, "mean": 1.0, "ci": [gain, gain]}, "zeroed": zeroed,
                "aic_auc": {"ci": [-1, 1]}, "sic_auc": {"ci": [-1, 1]}, "ssim": {"ci": [-0.1, 0.1]}}

    cells = {"gradcam": {"a": cell(30), "b": cell(20), "c": cell(90, zeroed=1)},
             "gradient": {"a": cell(-5), "b": cell(10), "c": cell(90)}}
    res = {"methods": ["gradcam", "gradient"], "variants": ["vanilla", "a", "b", "c"], "cells": cells}
    d = choose_default(res)
    assert d["chosen"] == "a"  # reaches the paper's Grad-CAM gain; b improves gradient but misses it
    assert [r["variant"] for r in d["ranking"]] == ["a", "b", "c"]
    assert math.isclose(d["ranking"][0]["mean_gain"], 12.5)


def test_study_runs_end_to_end_on_the_sample_photos(tmp_path, lite0):
    from attrdist.bench.study import CANDIDATES, StudyConfig, frontier_plot, run_study

    cfg = StudyConfig(dataset="sample", methods=["gradcam", "gradient"], grids=2, insertion_images=1,
                      sanity_images=1, bootstrap=50,
                      variants={v: CANDIDATES[v] for v in ("normalized", "n+positive+smooth.05", "paper")})
    result = run_study(cfg, tmp_path, lm=lite0)
    assert result["methods"] == ["gradcam", "gradient"]
    assert result["variants"] == ["vanilla", "normalized", "n+positive+smooth.05", "paper"]
    cell = result["cells"]["gradient"]["n+positive+smooth.05"]
    assert {"region_attribution", "region_attribution_excl", "iou", "f1", "ssim", "spearman_abs"} <= set(cell)
    assert cell["maps_localization"] == 8 and "zeroed" in cell
    assert (tmp_path / "study.md").read_text().startswith("### gradcam")
    assert frontier_plot(result, tmp_path / "frontier.png").stat().st_size > 0
    # resuming reads the stored rows: the same analysis
    assert run_study(cfg, tmp_path, lm=lite0)["cells"] == result["cells"]
