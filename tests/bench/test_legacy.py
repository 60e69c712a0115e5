"""Run folders of the store's first layout (tests/fixtures/run_v1, written by attrdist before the typed records) read
as records, and report as a new-layout run of the same results would.

The fixtures: localisation (2 grids, 2 methods; the ``dead`` variant leaves all 16 of its maps unscorable, no reason
stored), insertion (3 images; ``dead``'s 3 all-zero maps recorded as pseudo-item skips) and sanity (1 image, 2
depths; ``dead``'s maps unscorable because the original is). Expectations come from the raw SQLite rows, read here
in plain loops; the fixtures are only ever copied, never written."""

import hashlib
import json
import math
import shutil
import sqlite3
from collections import defaultdict
from pathlib import Path

import pytest

from attrdist.bench import BENCHMARKS, ItemResult, ResultStore
from attrdist.bench.records import Curve, MapCheck, Score, UnitAttribute
from attrdist.bench.report import markdown, report_benchmark, summarize, write_report
from attrdist.cli import main

V1 = Path(__file__).resolve().parents[1] / "fixtures" / "run_v1"
BENCHES = ("localization", "insertion", "sanity")
#: Metrics whose changes read as differences (correlations around 0), the others in percent.
SIMILARITIES = ("spearman", "spearman_abs", "pearson", "cosine", "ssim", "hog_pearson")
#: The reason of an unscorable map whose run stored none (localisation wrote no reason).
NO_REASON = "unscorable (reason not recorded)"


def _digest(folder):
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


@pytest.fixture(scope="module", autouse=True)
def fixtures_stay_untouched():
    before = {b: _digest(V1 / b) for b in BENCHES}
    yield
    assert {b: _digest(V1 / b) for b in BENCHES} == before


def _copy(tmp_path, bench):
    shutil.copytree(V1 / bench, tmp_path / bench)
    return tmp_path / bench


class Raw:
    """A layout-1 database read with sqlite3 alone: its rows as the old code wrote them."""

    def __init__(self, path):
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
            self.rows = db.execute("SELECT item, unit, method, variant, metric, value FROM results").fetchall()
            self.skips = dict(db.execute("SELECT item, reason FROM skipped").fetchall())
            self.curves = db.execute("SELECT item, unit, method, variant, name, data FROM curves").fetchall()
            self.done = db.execute("SELECT item, seconds, rank FROM done").fetchall()
            self.timings = db.execute("SELECT item, stage, seconds FROM timings").fetchall()
            self.config = json.loads(db.execute("SELECT value FROM config WHERE key='run'").fetchone()[0])
            info = db.execute("SELECT value FROM cache WHERE key='run_info'").fetchone()
            self.info = json.loads(info[0]) if info else {}
        # every map has a zeroed row: 1 when it could not be scored
        self.zeroed = {(i, u, m, v): value > 0 for i, u, m, v, metric, value in self.rows if metric == "zeroed"}

    def reason(self, key):
        """The reason the old code stored for an unscorable map (under a pseudo-item id), if any."""
        item, unit, method, variant = key
        return self.skips.get(f"{item}/{unit}/{method}/{variant}") or self.skips.get(f"{item}/{method}/{variant}")

    def values(self, metric, unit=None):
        """``(method, variant) -> {(item, unit): value}`` of the scorable maps with a value."""
        out = defaultdict(dict)
        for i, u, m, v, name, value in self.rows:
            if name == metric and value is not None and not self.zeroed[(i, u, m, v)] and unit in (None, u):
                out[(m, v)][(i, u)] = value
        return out


def _table(md, title):
    """A Markdown table of the report: the header's cells, then each row's (plain names: no escapes here)."""
    lines = md.split(f"## {title}\n\n")[1].split("\n\n")[0].splitlines()
    return [[c.strip() for c in line.strip().strip("|").split("|")] for line in lines[:1] + lines[2:]]


# --- the records -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("bench", BENCHES)
def test_old_rows_read_as_records(bench):
    raw = Raw(V1 / bench / "results.sqlite")
    with ResultStore(V1 / bench / "results.sqlite", read_only=True) as store:
        assert store.layout == 1
        scores, maps, attributes = store.scores(), store.maps(), store.unit_attributes()
        skipped, curves, curve_skips = store.skipped(), store.curves(), store.curve_skips()
        assert store.config() == raw.config and {d[0] for d in raw.done} <= store.done()
    # a check per map, unscorable where the old zeroed row said so
    assert {(m.item, m.unit, m.method, m.variant): not m.scorable for m in maps} == raw.zeroed
    assert all(m.reason for m in maps if not m.scorable)
    # no pseudo-metric and no pseudo-item: zeroed and fraction rows are no scores, the map reasons no skips
    assert not {s.metric for s in scores} & {"zeroed", "fraction"}
    assert skipped == [] and all("/" in k for k in raw.skips)
    assert all(math.isfinite(s.value) for s in scores)
    # every value of a scorable map is a score
    want = {(i, u, m, v, metric): value for i, u, m, v, metric, value in raw.rows
            if metric not in ("zeroed", "fraction") and value is not None and not raw.zeroed[(i, u, m, v)]}
    live = {key for key, dead in raw.zeroed.items() if not dead}  # (the others: test_an_unscorable_old_map...)
    assert {(s.item, s.unit, s.method, s.variant, s.metric): s.value for s in scores
            if (s.item, s.unit, s.method, s.variant) in live} == want
    # the curves as stored, and no PIC skips in these runs
    assert [(c.item, c.unit, c.method, c.variant, c.name, list(c.values)) for c in curves] == sorted(
        (i, u, m, v, n, json.loads(d)) for i, u, m, v, n, d in raw.curves)
    assert curve_skips == []
    # sanity's depth fraction: a fact of the unit, not a score
    fractions = {(i, u, value) for i, u, m, v, metric, value in raw.rows if metric == "fraction"}
    assert {(a.item, a.unit, a.value) for a in attributes} == fractions
    assert all(a.name == "fraction" for a in attributes) and (bench == "sanity") == bool(attributes)


def test_the_stored_reasons_come_back_with_the_maps():
    with ResultStore(V1 / "insertion" / "results.sqlite", read_only=True) as store:
        dead = [m for m in store.maps() if not m.scorable]
    assert [(m.item, m.variant, m.reason) for m in dead] == [
        (item, "dead", "all-zero map") for item in ("camera", "camera~flip", "camera~zoom")]
    with ResultStore(V1 / "sanity" / "results.sqlite", read_only=True) as store:
        dead = [m for m in store.maps() if not m.scorable]
        fractions = store.unit_attributes()
    assert [(m.unit, m.variant, m.reason) for m in dead] == [
        ("depth000", "dead", "original all-zero map"), ("depth019", "dead", "original all-zero map")]
    assert fractions == [UnitAttribute("camera", "depth000", "fraction", 0.0),
                         UnitAttribute("camera", "depth019", "fraction", 1.0)]
    with ResultStore(V1 / "localization" / "results.sqlite", read_only=True) as store:
        dead = [m for m in store.maps() if not m.scorable]
    assert len(dead) == 16 and {m.variant for m in dead} == {"dead"} and {m.reason for m in dead} == {NO_REASON}


def test_an_unscorable_old_map_has_no_score():
    """A new run writes no score at all for a map it could not score, no_positive included."""
    with ResultStore(V1 / "localization" / "results.sqlite", read_only=True) as store:
        dead = {(m.item, m.unit, m.method, m.variant) for m in store.maps() if not m.scorable}
        scored = {(s.item, s.unit, s.method, s.variant) for s in store.scores()}
    assert dead and not dead & scored


@pytest.mark.parametrize("bench", ["insertion", "sanity"])
def test_an_old_folders_done_items_are_items(bench):
    raw = Raw(V1 / bench / "results.sqlite")
    with ResultStore(V1 / bench / "results.sqlite", read_only=True) as store:
        assert store.done() == {d[0] for d in raw.done}


# --- the report --------------------------------------------------------------------------------------------------


def _mean(values):
    return sum(values) / len(values)


@pytest.mark.parametrize("bench", BENCHES)
def test_report_of_an_old_folder_has_the_hand_computed_numbers(tmp_path, bench, capsys):
    run = _copy(tmp_path, bench)
    assert main(["report", str(run)]) == 0
    md = (run / "report.md").read_text()
    assert capsys.readouterr().out.strip() == md.strip()
    assert "zeroed" not in md and "fraction" not in md.split("## Run configuration")[0]
    raw = Raw(run / "results.sqlite")
    # the sanity report's table: the deepest randomisation
    unit = max({(v, u) for i, u, m, var, metric, v in raw.rows if metric == "fraction"})[1] if bench == "sanity" \
        else None
    metrics = sorted({r[4] for r in raw.rows} - {"zeroed", "fraction", "no_positive"})
    variants = ["dead", "var"]  # the report's order: the stored configuration's (its keys sorted)
    for metric in metrics:
        values = raw.values(metric, unit)
        title = next(line[3:] for line in md.splitlines() if line.startswith(f"## {metric} ("))
        header, *rows = _table(md, title)
        assert header[2:6] == ["dead", "dead: change", "var", "var: change"]
        by = {r[0]: r for r in rows}
        for method in raw.config["methods"]:
            vanilla = values[(method, "vanilla")]
            assert by[method][1].split(" ")[0] == f"{_mean(vanilla.values()):.3f}", (metric, method)
            for k, variant in enumerate(variants):
                own = values[(method, variant)]
                pairs = sorted(vanilla.keys() & own.keys())
                cell = by[method][2 + 2 * k]
                if not pairs:
                    assert cell == "-" and by[method][3 + 2 * k] == "-"
                    continue
                mean, base = _mean([own[p] for p in pairs]), _mean([vanilla[p] for p in pairs])
                assert cell.split(" ")[0] == f"{mean:.3f}", (metric, method, variant)
                change = mean - base if metric in SIMILARITIES else (mean - base) / abs(base) * 100
                shown = by[method][3 + 2 * k].split(" ")[0].rstrip("%,")
                assert float(shown) == pytest.approx(change, abs=0.051 if "%" in by[method][3 + 2 * k] else 5e-4)
            # the unscorable maps of each variant, n/N, from the zeroed rows
            for k, variant in enumerate(["vanilla", *variants]):
                flags = [z for (i, u, m, v), z in raw.zeroed.items() if m == method and v == variant
                         and unit in (None, u)]
                assert by[method][6 + k] == f"{sum(flags)}/{len(flags)}", (metric, method, variant)
    # the header counts the unscorable maps with their stored reasons, no pseudo-item
    dead = [key for key, z in raw.zeroed.items() if z and unit in (None, key[1])]  # the table's unit's
    reasons = defaultdict(int)
    for key in dead:
        reasons[raw.reason(key) or NO_REASON] += 1
    skips = next(line for line in md.splitlines() if line.startswith("- skips: "))
    assert skips.startswith(f"- skips: {len(dead)} recorded") and all(f"{r}: {n}" in skips for r, n in reasons.items())
    assert f"{len(raw.done)} scored" in md and "0 skipped as a whole" in md


def _as_new_layout(raw, path):
    """The old rows written as a new run records them, by hand: a check per map (the stored reason), scores of the
    scorable maps only, the fraction as a unit attribute, the curves; the same configuration, facts and timings."""
    results = defaultdict(ItemResult)
    for i, u, m, v, metric, value in raw.rows:
        key = (i, u, m, v)
        if metric == "zeroed":
            results[i].maps.append(MapCheck(*key, (raw.reason(key) or NO_REASON) if raw.zeroed[key] else None))
        elif metric == "fraction":
            if (u, value) not in {(a.unit, a.value) for a in results[i].attributes}:
                results[i].attributes.append(UnitAttribute(i, u, "fraction", value))
        elif value is not None and not raw.zeroed[key]:
            results[i].scores.append(Score(*key, metric, value))
    for i, u, m, v, name, data in raw.curves:
        results[i].curves.append(Curve(i, u, m, v, name, tuple(json.loads(data))))
    for i, stage, seconds in raw.timings:
        results[i].timings[stage] = seconds
    with ResultStore(path / "results.sqlite") as store:
        store.bind_config(raw.config)
        store.set_info(**raw.info)
        for item, seconds, rank in raw.done:
            store.write_item(item, results[item], seconds, rank)


@pytest.mark.parametrize("bench", BENCHES)
def test_an_old_folder_reports_as_the_same_run_in_the_new_layout_would(tmp_path, bench):
    run = _copy(tmp_path, bench)
    new = tmp_path / f"{bench}-new"
    new.mkdir()
    _as_new_layout(Raw(run / "results.sqlite"), new)
    reports = {}
    for folder in (run, new):
        benchmark = BENCHMARKS.get(report_benchmark(folder))
        written = write_report(folder, benchmark)
        reports[folder] = written["markdown"].read_text()
        with ResultStore(folder / "results.sqlite", read_only=True) as store:
            assert markdown(summarize(store, unit=benchmark.report_unit(store))) == reports[folder]
        assert set(written) >= {"markdown", "latex", "html", "csv"}
    old, fresh = reports[run], reports[new]
    assert old == fresh
