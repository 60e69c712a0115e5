"""The one aggregation: paired means over the maps both sides could score, intervals, unscorable counts.

Expectations are computed by hand from the rows (plain loops), not with attrdist's helpers."""

import math
import random

from attrdist.bench.results import aggregate


def _rows():
    rnd = random.Random(0)
    rows = []
    for i in range(12):
        item = f"img{i}"
        for unit in ("u0", "u1"):
            van = rnd.random()
            rows.append((item, unit, "m", "vanilla", "region_attribution", van))
            rows.append((item, unit, "m", "vanilla", "zeroed", 0.0))
            dead = i % 4 == 0 and unit == "u1"  # VAR zeroes a quarter of the second units' maps
            rows.append((item, unit, "m", "var", "zeroed", float(dead)))
            rows.append((item, unit, "m", "var", "region_attribution", None if dead else van + 0.1))
            # a sanity-style metric where unscorable maps have no row at all, and vanilla misses one item
            if not (i == 3 and unit == "u0"):
                rows.append((item, unit, "m", "vanilla", "spearman_abs", 0.5))
            if not dead:
                rows.append((item, unit, "m", "var", "spearman_abs", 0.4))
    return rows


def test_paired_means_leave_out_every_map_either_side_could_not_score():
    rows = _rows()
    agg = aggregate(rows, bootstrap=200)
    van = {(r[0], r[1]): r[5] for r in rows if r[3] == "vanilla" and r[4] == "region_attribution"}
    var = {(r[0], r[1]): r[5] for r in rows if r[3] == "var" and r[4] == "region_attribution" and r[5] is not None}
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
    agg = aggregate(_rows(), bootstrap=100)
    cell = agg.cells[("m", "var", "spearman_abs")]
    assert cell.n == 24 - 3 - 1 and math.isclose(cell.change, -0.1) and math.isclose(cell.base, 0.5)
    assert math.isclose(cell.ci[0], -0.1) and math.isclose(cell.ci[1], -0.1)


def test_no_pairs_give_nan_not_an_error():
    rows = [("a", "u", "m", "vanilla", "iou", 0.5), ("a", "u", "m", "var", "zeroed", 1.0),
            ("a", "u", "m", "var", "iou", None)]
    cell = aggregate(rows, bootstrap=10).cells[("m", "var", "iou")]
    assert cell.n == 0 and math.isnan(cell.change)
