"""The one rule that ranks VAR variants (bench/ranking.py): harms and benefits from intervals, read in each metric's
registered direction; eligibility; the order."""

import math

import pytest

from attrdist.bench.ranking import UNSCORABLE_SHARE, judge, rank
from attrdist.bench.results import Cell


def cell(lo, hi, change=None):
    """A change against vanilla with its interval (means and pairs do not enter the rule)."""
    mid = (lo + hi) / 2 if change is None else change
    return Cell(0.5, 0.5, mid, (lo, hi), 10, 10)


@pytest.mark.parametrize(("metric", "interval", "harm", "benefit"), [
    ("region_attribution", (-9.0, -1.0), True, False),  # higher is better: a drop is a harm
    ("region_attribution", (1.0, 9.0), False, True),
    ("region_attribution", (-1.0, 9.0), False, False),  # an interval across 0 decides nothing
    ("spearman", (0.05, 0.2), True, False),  # lower is better (the registry): a rise is a harm
    ("spearman", (-0.2, -0.05), False, True),
    ("spearman_abs", (-0.2, 0.05), False, False),
    ("spearman@0.50", (0.05, 0.2), True, False),  # the study's per-depth names read the metric's direction
    ("spearman_abs@1.00", (-0.2, -0.05), False, True),
    ("aic_auc", (-0.3, -0.1), True, False),
    ("my_own_score", (-0.3, -0.1), True, False),  # an unregistered metric counts as higher-is-better
])
def test_an_interval_entirely_on_the_worse_side_is_a_harm(metric, interval, harm, benefit):
    v = judge("cand", {("gradcam", metric): cell(*interval)})
    assert (bool(v.harms), v.benefits == 1, v.eligible) == (harm, benefit, not harm)
    if harm:
        assert v.harms == (f"gradcam: {metric} worse than vanilla",)


def test_one_harm_anywhere_makes_a_variant_ineligible_whatever_it_gains():
    gains = {("gradcam", m): cell(10.0, 30.0) for m in ("region_attribution", "iou", "f1")}
    v = judge("cand", {**gains, ("lrp", "spearman"): cell(0.01, 0.3)})
    assert not v.eligible and v.benefits == 3 and v.harms == ("lrp: spearman worse than vanilla",)
    assert v.mean_ra_change == pytest.approx(20.0)


def test_unscorable_maps_beyond_vanillas_are_a_harm_past_one_percent():
    assert UNSCORABLE_SHARE == 0.01
    ok = judge("a", {}, {"localization": (3, 200)}, {"localization": (1, 200)})  # 2 beyond vanilla's: 1%
    assert ok.eligible
    bad = judge("b", {}, {"localization": (4, 200)}, {"localization": (1, 200)})  # 3 beyond: 1.5%
    assert not bad.eligible and bad.harms == ("localization: 3 of 200 maps unscorable beyond vanilla's",)
    assert not judge("c", {}, {"insertion": (1, 10)}).eligible  # vanilla's default: none unscorable


def test_rank_fewest_harms_then_most_benefits_then_the_largest_ra_change():
    good, worse = (1.0, 9.0), (-9.0, -1.0)
    verdicts = [
        judge("two_harms", {("m", "region_attribution"): cell(*worse), ("m", "iou"): cell(*worse)}),
        judge("one_harm_many_gains", {("m", "region_attribution"): cell(*worse), ("m", "iou"): cell(*good),
                                      ("m", "f1"): cell(*good)}),
        judge("one_gain_small_ra", {("m", "region_attribution"): cell(*good, change=2.0)}),
        judge("one_gain_large_ra", {("m", "region_attribution"): cell(*good, change=8.0)}),
        judge("no_ra", {("m", "iou"): cell(*good)}),  # no RA change: after any with one
        judge("nothing", {("m", "region_attribution"): cell(-1.0, 1.0, change=50.0)}),
    ]
    ranked = rank(verdicts)
    assert [v.variant for v in ranked] == ["one_gain_large_ra", "one_gain_small_ra", "no_ra", "nothing",
                                           "one_harm_many_gains", "two_harms"]
    assert [v.eligible for v in ranked] == [True] * 4 + [False] * 2
    assert math.isnan(ranked[2].mean_ra_change) and ranked[3].mean_ra_change == 50.0
