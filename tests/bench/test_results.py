"""The one aggregation: paired means over the maps both sides could score, intervals, unscorable counts.

Expectations are computed by hand from the rows (plain loops), not with attrdist's helpers."""

import math
import random

from attrdist.bench.records import MapCheck, Score
from attrdist.bench.results import aggregate


def _records():
    """Scores and map checks: an unscorable map has a check with its reason and no score."""
    rnd = random.Random(0)
    scores, maps = [], []
    for i in range(12):
        item = f"img{i}"
        for unit in ("u0", "u1"):
            van = rnd.random()
            scores.append(Score(item, unit, "m", "vanilla", "region_attribution", van))
            maps.append(MapCheck(item, unit, "m", "vanilla", None))
            dead = i % 4 == 0 and unit == "u1"  # VAR zeroes a quarter of the second units' maps
            maps.append(MapCheck(item, unit, "m", "var", "all-zero map" if dead else None))
            if not dead:
                scores.append(Score(item, unit, "m", "var", "region_attribution", van + 0.1))
            # a sanity-style metric that vanilla misses on one item
            if not (i == 3 and unit == "u0"):
                scores.append(Score(item, unit, "m", "vanilla", "spearman_abs", 0.5))
            if not dead:
                scores.append(Score(item, unit, "m", "var", "spearman_abs", 0.4))
    return scores, maps


def test_paired_means_leave_out_every_map_either_side_could_not_score():
    scores, maps = _records()
    agg = aggregate(scores, maps, bootstrap=200)
    van = {(s.item, s.unit): s.value for s in scores if s.variant == "vanilla" and s.metric == "region_attribution"}
    var = {(s.item, s.unit): s.value for s in scores if s.variant == "var" and s.metric == "region_attribution"}
    pairs = [k for k in van if k in var]
    assert len(pairs) == 21
    mean_var = sum(var[k] for k in pairs) / len(pairs)
    mean_van = sum(van[k] for k in pairs) / len(pairs)
    cell = agg.cells[("m", "var", "region_attribution")]
    assert cell.n == 21 and cell.items == 12
    assert math.isclose(cell.mean, mean_var) and math.isclose(cell.base, mean_van)
    assert math.isclose(cell.change, (mean_var - mean_van) / mean_van * 100)
    assert cell.ci[0] <= cell.change <= cell.ci[1]
    # vanilla's own column: every map it could score
    assert math.isclose(agg.cells[("m", "vanilla", "region_attribution")].mean, sum(van.values()) / len(van))
    assert agg.unscorable[("m", "var")] == (3, 24) and agg.unscorable[("m", "vanilla")] == (0, 24)


def test_correlations_change_as_differences_on_the_same_maps():
    agg = aggregate(*_records(), bootstrap=100)
    cell = agg.cells[("m", "var", "spearman_abs")]
    assert cell.n == 24 - 3 - 1 and math.isclose(cell.change, -0.1) and math.isclose(cell.base, 0.5)
    assert math.isclose(cell.ci[0], -0.1) and math.isclose(cell.ci[1], -0.1)


def test_no_pairs_give_nan_not_an_error():
    # var's only map has a score that is not finite: a cell without pairs
    scores = [Score("a", "u", "m", "vanilla", "iou", 0.5), Score("a", "u", "m", "var", "iou", math.nan)]
    cell = aggregate(scores, [MapCheck("a", "u", "m", "var", None)], bootstrap=10).cells[("m", "var", "iou")]
    assert cell.n == 0 and math.isnan(cell.change)
    # a score of a map checked unscorable is never averaged (a benchmark should not write one)
    scores = [Score("a", "u", "m", "vanilla", "iou", 0.5), Score("a", "u", "m", "var", "iou", 0.7)]
    agg = aggregate(scores, [MapCheck("a", "u", "m", "var", "all-zero map")], bootstrap=10)
    cell = agg.cells[("m", "var", "iou")]
    assert cell.n == 0 and math.isnan(cell.change) and agg.unscorable[("m", "var")] == (1, 1)


def test_an_unscorable_map_without_any_score_is_counted():
    """The new records: an unscorable map has no score row at all, only its check; the count still sees it."""
    scores = [Score("a", "u", "m", "vanilla", "iou", 0.5), Score("b", "u", "m", "vanilla", "iou", 0.7),
              Score("b", "u", "m", "var", "iou", 0.8)]
    maps = [MapCheck(i, "u", "m", v, "constant map" if (i, v) == ("a", "var") else None)
            for i in ("a", "b") for v in ("vanilla", "var")]
    agg = aggregate(scores, maps, bootstrap=0)
    assert agg.unscorable == {("m", "vanilla"): (0, 2), ("m", "var"): (1, 2)} and agg.items == 2
    cell = agg.cells[("m", "var", "iou")]
    assert cell.n == 1 and math.isclose(cell.mean, 0.8) and math.isclose(cell.base, 0.7)
