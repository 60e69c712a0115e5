"""Reports from hand-built result stores (no model): header, intervals, per-metric tables, counts, the HTML page,
escaping of names from a results database in every format, and figure files.

Expectations come from the rows written here (plain loops), not from attrdist's helpers."""

import base64
import csv
import math
import re
from html.parser import HTMLParser

import numpy as np
import pytest

from attrdist.bench import BENCHMARKS
from attrdist.bench.records import ItemResult, MapCheck, Score, UnitAttribute
from attrdist.bench.report import bar_plots, markdown, report_benchmark, sanity_plot, summarize, write_report
from attrdist.bench.results import Cell, aggregate
from attrdist.bench.store import ResultStore

ITEMS = [f"img{i}" for i in range(10)]
CONFIG = {"benchmark": "localization", "model": "torchvision:resnet50", "weights": "IMAGENET1K_V1",
          "dataset": "imagenet:/data/val", "methods": ["gradcam", "lrp"], "variants": {"var": {"preset": "paper"}},
          "seed": 7, "cell": 112}
INFO = {"attrdist": "9.8.7", "started": "2025-01-02T03:04:05", "dataset_size": 48, "items": 13}


def _plain_result(item, i):
    """The records of item ``i``: RA (lrp's VAR map of img3 unscorable: a check with its reason and no score),
    spearman_abs (VAR: vanilla - 0.1), spearman, no_positive."""
    out = ItemResult()
    for k, method in enumerate(CONFIG["methods"]):
        van = 0.3 + 0.04 * i + 0.1 * k + 0.01 * (i % 3) ** 2
        sp = 0.5 + 0.02 * i + 0.03 * (i % 4)
        dead = method == "lrp" and i == 3
        out.maps += [MapCheck(item, "cell", method, "vanilla", None),
                     MapCheck(item, "cell", method, "var", "all-zero map" if dead else None)]
        out.scores += [Score(item, "cell", method, "vanilla", metric, value) for metric, value in (
            ("region_attribution", van), ("no_positive", float(method == "lrp" and i < 2)), ("spearman", -0.5),
            ("spearman_abs", sp))]
        if not dead:
            out.scores += [Score(item, "cell", method, "var", metric, value) for metric, value in (
                ("region_attribution", van * 1.2 + 0.01 * (i % 2)), ("no_positive", 0.0), ("spearman", -0.5),
                ("spearman_abs", sp - 0.1))]
    return out


def _report(run):
    """``attrdist report``'s call: the benchmark that wrote the run, looked up in the registry and handed in."""
    return write_report(run, BENCHMARKS.get(report_benchmark(run)))


def _plain(path, info=True):
    with ResultStore(path / "results.sqlite") as s:
        s.bind_config(CONFIG)
        if info:
            s.set_info(**INFO)
        for i, item in enumerate(ITEMS):
            s.write_item(item, _plain_result(item, i), 0.1)
        s.skip_item("img10", "prediction on the original image 0.2194 < min_pred 0.8")
        s.skip_item("img11", "prediction on the original image 0.3611 < min_pred 0.8")
        s.skip_item("img12", "grid too small")
    return path


@pytest.fixture
def plain(tmp_path):
    return _plain(tmp_path / "plain")


HOSTILE = ['=HYPERLINK("x")', "a_b%&#", "<script>alert(1)</script>", "../evil", "a/b", "a\\b", "x|y\n| z |",
           "$\\x^~{}[1]", "+1", "@SUM(A1)", "\tt", "[t](javascript:alert(1))"]
HOSTILE_METRICS = ["a/b", "a\\b", "a_b", "../evil", "Foo", "foo", "<m>&_%", "x" * 300]


def _hostile(path):
    cfg = {"benchmark": "localization", "model": "<b>m</b>", "weights": "w\n\\input{x}", "dataset": "d&$",
           "methods": HOSTILE, "variants": {"@v": {"preset": "paper"}}, "note": "```\n</pre><script>x</script>"}
    with ResultStore(path / "results.sqlite") as s:
        s.bind_config(cfg)
        for i in range(4):
            item, out = f"-item{i}", ItemResult()
            for method in HOSTILE:
                for variant in ("vanilla", "@v"):
                    out.maps.append(MapCheck(item, "=u", method, variant, None))
                    out.scores += [Score(item, "=u", method, variant, metric, 0.2 + 0.1 * i + (variant == "@v") * 0.05)
                                   for metric in HOSTILE_METRICS]
            s.write_item(item, out, 0.1)
        s.skip_item("=cmd|' /C calc'!A0", "<img src=x onerror=alert(1)> & \\end{document}")
    return path


@pytest.fixture(scope="module")
def hostile(tmp_path_factory):
    run = _hostile(tmp_path_factory.mktemp("hostile"))
    return run, _report(run)


# --- the one aggregation: an interval of each mean -------------------------------------------------------------


def test_mean_interval_is_a_bootstrap_over_items_on_the_same_resamples_as_the_change():
    results = [_plain_result(item, i) for i, item in enumerate(ITEMS)]
    scores = [s for r in results for s in r.scores]
    maps = [m for r in results for m in r.maps]
    agg = aggregate(scores, maps, bootstrap=2000)
    van = agg.cells[("gradcam", "vanilla", "spearman_abs")]
    var = agg.cells[("gradcam", "var", "spearman_abs")]
    # VAR is vanilla - 0.1 on every map: each resample's VAR mean is its vanilla mean - 0.1, so are the intervals
    assert var.mean_ci == pytest.approx((van.mean_ci[0] - 0.1, van.mean_ci[1] - 0.1))
    assert var.ci == pytest.approx((-0.1, -0.1))
    # a literal percentile bootstrap over items (its own generator) agrees to resampling noise
    values = [0.5 + 0.02 * i + 0.03 * (i % 4) for i in range(10)]
    rng = np.random.default_rng(123)
    means = sorted(sum(values[j] for j in rng.integers(0, 10, 10)) / 10 for _ in range(8000))
    lo, hi = means[int(0.025 * 8000)], means[int(0.975 * 8000)]
    assert van.mean_ci[0] == pytest.approx(lo, abs=0.006) and van.mean_ci[1] == pytest.approx(hi, abs=0.006)
    assert van.mean_ci[0] < van.mean < van.mean_ci[1]
    # no resamples, no interval; a Cell built without one (older callers) has none
    unsampled = aggregate(scores, maps, bootstrap=0).cells[("gradcam", "var", "spearman_abs")]
    assert all(math.isnan(x) for x in unsampled.mean_ci)
    assert all(math.isnan(x) for x in Cell(1.0, 1.0, 0.0, (0.0, 0.0), 1, 1).mean_ci)


# --- header ------------------------------------------------------------------------------------------------------


def test_every_format_opens_with_the_runs_context(plain):
    written = _report(plain)
    assert {"markdown", "latex", "html", "csv"} <= set(written) and written["html"].name == "report.html"
    texts = {k: written[k].read_text(encoding="utf-8") for k in ("markdown", "latex", "html")}
    for kind, text in texts.items():
        for fact in ("torchvision:resnet50", "IMAGENET1K_V1", "imagenet:/data/val (48 items)", "2025-01-02T03:04:05",
                     "9.8.7", "10 scored of 13 selected; 3 skipped as a whole", "4 recorded",
                     "all-zero map: 1", "grid too small: 1"):
            assert fact in text, (kind, fact)
        # reasons that differ in a number count together, the number they share is kept
        assert re.search(r"prediction on the original image \.\.\. (<|\\<|&lt;) min_pred 0.8: 2",
                         text), kind
    md = texts["markdown"]
    assert md.index("torchvision:resnet50") < md.index("## region_attribution")
    # the full configuration: a fenced YAML block at the end of the Markdown, a <details> block in HTML,
    # comments in LaTeX
    block = md.split("## Run configuration")[1]
    assert block.strip().startswith("```yaml") and block.strip().endswith("```")
    assert "cell: 112" in block and "seed: 7" in block and "preset: paper" in block
    details = texts["html"].split("<details>")[1].split("</details>")[0]
    assert "cell: 112" in details and "seed: 7" in details and "preset: paper" in details
    assert "% cell: 112" in texts["latex"] and "%     preset: paper" in texts["latex"]


def test_a_run_without_recorded_facts_says_so(tmp_path):
    run = _plain(tmp_path / "old", info=False)
    with ResultStore(run / "results.sqlite") as s:
        md = markdown(summarize(s, bootstrap=50))
    assert "- attrdist: unknown (run made before versions were recorded)" in md
    assert "- date: unknown" in md and "(size not recorded)" in md and "10 scored; 3 skipped" in md


# --- tables ------------------------------------------------------------------------------------------------------


def _md_cells(line):
    """The cells of a Markdown table row (GFM: a backslash escapes the next character)."""
    cells, cur, i = [], "", 0
    while i < len(line):
        if line[i] == "\\" and i + 1 < len(line):
            cur += line[i:i + 2]
            i += 2
            continue
        if line[i] == "|":
            cells.append(cur)
            cur = ""
        else:
            cur += line[i]
        i += 1
    return [c.strip() for c in cells[1:]]


def _md_table(md, title):
    lines = md.split(f"## {title}\n\n")[1].split("\n\n")[0].splitlines()
    return [_md_cells(x) for x in lines[:1] + lines[2:]]


def test_a_table_per_metric_with_mean_and_change_intervals(plain):
    with ResultStore(plain / "results.sqlite") as s:
        t = summarize(s, bootstrap=500)
    md = markdown(t)
    header, *rows = _md_table(md, "region_attribution (higher is better)")
    assert header == ["method", "region_attribution (vanilla)", "var", "var: change", "unscorable (vanilla)",
                      "unscorable (var)"]
    by = {r[0]: r for r in rows}
    # by hand: lrp's VAR mean over the 9 maps both could score, vanilla's over all 10
    van = [0.3 + 0.04 * i + 0.1 + 0.01 * (i % 3) ** 2 for i in range(10)]
    var = {i: van[i] * 1.2 + 0.01 * (i % 2) for i in range(10) if i != 3}
    c = t.cells[("lrp", "var", "region_attribution")]
    assert by["lrp"][2] == f"{sum(var.values()) / 9:.3f} [{c.mean_ci[0]:.3f}, {c.mean_ci[1]:.3f}]"
    lo, hi = t.cells[("lrp", "vanilla", "region_attribution")].mean_ci
    assert by["lrp"][1] == f"{sum(van) / 10:.3f} [{lo:.3f}, {hi:.3f}]"
    change = (sum(var.values()) / 9 - sum(van[i] for i in var) / 9) / (sum(van[i] for i in var) / 9) * 100
    assert re.fullmatch(rf"\+{change:.1f}% \[\+\d+\.\d, \+\d+\.\d\], better", by["lrp"][3])
    assert by["lrp"][4:] == ["0/10", "1/10"] and by["gradcam"][4:] == ["0/10", "0/10"]
    assert by["average change"][-2:] == ["0/20 in all", "1/20 in all"]
    # a lower-is-better difference metric: its own table, a negative change is better
    header, *rows = _md_table(md, "spearman_abs (lower is better)")
    assert header[1] == "spearman_abs (vanilla, lower is better)"
    assert re.fullmatch(r"-0\.100 \[-0\.100, -0\.100\], better", {r[0]: r for r in rows}["gradcam"][3])
    # one wide table no more: no table holds two metrics
    for line in md.splitlines():
        if line.startswith("| method"):
            cells = _md_cells(line)
            assert len({m for m in ("region_attribution", "spearman_abs", "spearman") for c in cells
                        if c.startswith(m + " (")}) <= 1, line


def test_many_variants_give_a_row_per_variant_not_a_wider_table(tmp_path):
    variants = ["v1", "v2", "v3"]
    with ResultStore(tmp_path / "results.sqlite") as s:
        s.bind_config({**CONFIG, "variants": {v: {"preset": "paper"} for v in variants}})
        for i, item in enumerate(ITEMS):
            out = ItemResult()
            for v in ["vanilla", *variants]:
                dead = v == "v3" and i == 0
                out.maps.append(MapCheck(item, "cell", "gradcam", v, "constant map" if dead else None))
                if not dead:
                    out.scores.append(Score(item, "cell", "gradcam", v, "region_attribution",
                                            0.5 + 0.01 * i + 0.1 * (v != "vanilla")))
            s.write_item(item, out, 0.1)
        md = markdown(summarize(s, bootstrap=100))
    header, *rows = _md_table(md, "region_attribution (higher is better)")
    assert header == ["method", "variant", "region_attribution (mean)", "change against vanilla", "unscorable"]
    assert [r[:2] for r in rows] == [["gradcam", v] for v in ["vanilla", *variants]] + [
        ["average change", v] for v in variants]
    assert rows[3][4] == "1/10" and rows[0][3] == "" and re.match(r"\+\d+\.\d% \[", rows[1][3])
    header, *rows = _md_table(md, "maps counted (n/N, never averaged)")
    assert header == ["method", "variant", "unscorable"] and ["gradcam", "v3", "1/10"] in rows


def test_count_metrics_are_n_of_N_never_averaged(plain):
    written = _report(plain)
    md = written["markdown"].read_text()
    header, *rows = _md_table(md, "maps counted (n/N, never averaged)")
    assert header == ["method", "unscorable (vanilla)", "unscorable (var)", "no_positive (vanilla)",
                      "no_positive (var)"]
    # no_positive counts the scorable maps only: lrp's VAR map of img3 is unscorable, so 0 of 9
    assert {r[0]: r[1:] for r in rows} == {"gradcam": ["0/10", "0/10", "0/10", "0/10"],
                                           "lrp": ["0/10", "1/10", "2/10", "0/9"],
                                           "in all": ["0/20", "1/20", "2/20", "0/19"]}
    assert "## unscorable" not in md and "## no_positive" not in md and "zeroed" not in md
    with written["csv"].open() as f:
        rows = list(csv.DictReader(f))
    counts = [r for r in rows if r["kind"] == "count"]
    assert {r["metric"] for r in counts} == {"no_positive"} and "zeroed" not in {r["metric"] for r in rows}
    assert len(counts) == 4 and all(r["mean"] == "" for r in counts)
    lrp = {r["variant"]: r for r in counts if r["method"] == "lrp"}
    assert (lrp["vanilla"]["n"], lrp["vanilla"]["maps"]) == ("2", "10")
    assert (lrp["var"]["n"], lrp["var"]["unscorable"]) == ("0", "1")


def test_csv_is_long_with_intervals(plain):
    written = _report(plain)
    with written["csv"].open() as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["method", "variant", "metric", "kind", "mean", "ci_low", "ci_high", "base", "change",
                             "change_low", "change_high", "change_unit", "higher_is_better", "n", "items",
                             "unscorable", "maps"]
    means = [r for r in rows if r["kind"] == "mean"]
    assert len(means) == 2 * 2 * 3  # methods x variants x (region_attribution, spearman_abs, spearman)
    r = next(r for r in means if (r["method"], r["variant"], r["metric"]) == ("lrp", "var", "region_attribution"))
    assert float(r["ci_low"]) < float(r["mean"]) < float(r["ci_high"])
    assert float(r["change_low"]) < float(r["change"]) < float(r["change_high"])
    assert (r["n"], r["items"], r["unscorable"], r["maps"], r["change_unit"]) == ("9", "9", "1", "10", "percent")
    van = next(r for r in means if (r["method"], r["variant"], r["metric"]) == ("lrp", "vanilla", "spearman"))
    assert van["mean"] == "-0.5" and van["change"] == "" and van["ci_low"] == "-0.5"  # numbers stay numbers


def _ranked_run(path):
    """Three variants of known fate: ``good`` (RA +20%, spearman lower), ``zeroing`` (RA +50%, one map unscorable
    of ten), ``worse`` (RA -20%, spearman higher)."""
    variants = ["worse", "zeroing", "good"]  # the configuration's order is not the ranking's
    with ResultStore(path / "results.sqlite") as s:
        s.bind_config({**CONFIG, "methods": ["gradcam"], "variants": {v: {"preset": "paper"} for v in variants}})
        for i, item in enumerate(ITEMS):
            van = 0.3 + 0.04 * i
            out = ItemResult()
            for v, ra, rho in (("vanilla", van, 0.5), ("good", van * 1.2, 0.4), ("zeroing", van * 1.5, 0.5),
                               ("worse", van * 0.8, 0.6)):
                dead = v == "zeroing" and i == 0
                out.maps.append(MapCheck(item, "cell", "gradcam", v, "all-zero map" if dead else None))
                if not dead:
                    out.scores += [Score(item, "cell", "gradcam", v, "region_attribution", ra),
                                   Score(item, "cell", "gradcam", v, "spearman", rho + 0.01 * (i % 3))]
            s.write_item(item, out, 0.1)
    return path


def test_the_ranking_section_ranks_variants_by_the_studys_rule(tmp_path):
    """The study's rule on one run: a change whose interval is entirely on the worse side (by the metric's
    registered direction: a higher spearman is worse) is a harm, so is a share of unscorable maps beyond
    vanilla's; fewest harms first, then most improvements."""
    run = _ranked_run(tmp_path)
    md = _report(run)["markdown"].read_text()
    header, *rows = _md_table(md, "variants ranked (the variant study's rule, on this run's 95% intervals)")
    assert header == ["variant", "no harm", "harms", "improvements", "mean change (RA)"]
    # by hand: good improves RA (+20%) and lowers spearman (-0.1): two improvements, no harm; zeroing improves RA
    # (+50%) but leaves 1 of 10 maps unscorable (vanilla: none; the rule allows 1%); worse: RA -20% and spearman
    # +0.1, two harms
    assert rows == [["good", "yes", "0", "2", "+20.0%"], ["zeroing", "no", "1", "1", "+50.0%"],
                    ["worse", "no", "2", "0", "-20.0%"]]
    assert "variant_summary" not in md and "maps zeroed" not in md
    # one variant: nothing to rank
    assert "variants ranked" not in _report(_plain(tmp_path / "plain"))["markdown"].read_text()


# --- HTML --------------------------------------------------------------------------------------------------------


class _Tags(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags, self.attrs = [], []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.attrs += [(tag, k, v or "") for k, v in attrs]


def test_html_is_one_self_contained_page(plain):
    written = _report(plain)
    page = written["html"].read_text(encoding="utf-8")
    figures = [k for k in written if k.startswith("plot_")]
    assert len(figures) == 3 and page.count('src="data:image/png;base64,') == len(figures)
    text = re.sub(r'src="data:image/png;base64,[A-Za-z0-9+/=]*"', "", page)
    assert not re.search(r"https?:|ftp:|file:|//", text) and "url(" not in text and "@import" not in text
    p = _Tags()
    p.feed(page)
    assert not {"script", "link", "iframe", "object", "embed", "base", "svg"} & set(p.tags)
    assert all(v.startswith("data:image/") for tag, k, v in p.attrs if k in ("src", "href"))
    assert "<details>" in page and "<style>" in page and page.count("<table") == 1 + 4  # header + 3 metrics + counts


def test_html_keeps_its_figures_when_the_files_go(plain):
    written = _report(plain)
    page = written["html"].read_text(encoding="utf-8")
    for k in [k for k in written if k.startswith("plot_")]:
        written[k].unlink()
    assert "plot_region_attribution.png" not in page  # nothing points at a file beside it
    img = page.split('src="data:image/png;base64,')[1].split('"')[0]
    assert base64.b64decode(img)[:8] == b"\x89PNG\r\n\x1a\n"


# --- names from a results database: escaped in every format ----------------------------------------------------


def test_html_escapes_names(hostile):
    _run, written = hostile
    page = written["html"].read_text(encoding="utf-8")
    assert "<script" not in page and "<img src=x" not in page and "<b>m</b>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page and "=HYPERLINK(&quot;x&quot;)" in page
    assert "&lt;img src=x onerror=alert(1)&gt;" in page and "&lt;b&gt;m&lt;/b&gt;" in page
    p = _Tags()
    p.feed(page)
    assert not any(k.startswith("on") for _t, k, _v in p.attrs)


def test_markdown_escapes_names(hostile):
    _run, written = hostile
    md = written["markdown"].read_text(encoding="utf-8")
    body = md.split("## Run configuration")[0]
    assert not re.search(r"(?<!\\)<", body)  # no HTML a renderer would run
    assert "](" not in body.replace("\\](", "")  # no link
    columns = None
    for line in body.splitlines():  # every row of every table has its header's number of cells
        if not line.startswith("|"):
            columns = None
        elif columns is None:
            columns = len(_md_cells(line))
        elif not line.startswith("|---"):
            assert len(_md_cells(line)) == columns, line
    rows = _md_table(md, "a/b (higher is better)")
    assert [r[0] for r in rows[1:-1]] == [
        re.sub(r"([\\|<>`])", r"\\\1", n.replace("\n", " ").replace("\t", " ")).replace("](", "\\](").strip()
        for n in HOSTILE]
    # the configuration block cannot be closed from inside: its fence is longer than any backtick run in it
    fence = md.split("## Run configuration\n\n")[1].split("yaml")[0]
    assert len(fence) > 3 and md.rstrip().endswith(fence)


def test_latex_escapes_names(hostile):
    _run, written = hostile
    tex = written["latex"].read_text(encoding="utf-8")
    head, body = tex.split("\n\\begin{table}", 1)
    assert all(line.startswith("% ") for line in head.strip().splitlines())  # no line break out of a comment
    assert r"w \textbackslash{}input\{x\}" in body and r"a\_b\%\&\#" in body and r"a\textbackslash{}b" in body
    assert r"\textless{}script\textgreater{}" in body
    assert r"\$\textbackslash{}x\textasciicircum{}\textasciitilde{}\{\}{[}1{]}" in body
    escapes = r"\\textbackslash\{\}|\\textasciitilde\{\}|\\textasciicircum\{\}|\\textless\{\}|\\textgreater\{\}" \
              r"|\\[_%&#${}]|\{\[\}|\{\]\}"
    for line in body.splitlines():
        if not line or line.startswith(("[htbp]", "\\begin{", "\\end{", "\\centering", "\\toprule", "\\midrule",
                                        "\\bottomrule")):
            continue
        if line.startswith("\\caption{"):
            line = line[len("\\caption{"):-1]
        line = re.sub(escapes, "", line.removesuffix(" \\\\")).replace(" & ", " ")
        assert not re.search(r"[\\{}_%&#$~^<>\[\]]", line), line


def test_csv_cells_never_start_a_formula(hostile):
    _run, written = hostile
    with written["csv"].open(encoding="utf-8") as f:
        rows = list(csv.reader(f))
    for row in rows:
        for cell in row:
            try:
                float(cell)
                continue  # a number (-0.5 stays -0.5)
            except ValueError:
                assert not cell.startswith(("=", "+", "-", "@", "\t", "\r")), cell
    methods = {r[0] for r in rows[1:]}
    assert {"'=HYPERLINK(\"x\")", "'+1", "'@SUM(A1)", "'\tt", "../evil"} <= methods
    assert {r[1] for r in rows[1:]} == {"vanilla", "'@v"}


def test_figure_files_from_names_stay_in_the_folder_and_apart(hostile):
    run, written = hostile
    plots = {k: v for k, v in written.items() if k.startswith("plot_")}
    assert set(plots) == {f"plot_{m}" for m in HOSTILE_METRICS}
    names = [p.name for p in plots.values()]
    assert len({n.lower() for n in names}) == len(HOSTILE_METRICS)  # a/b and a\b, Foo and foo: two files each
    for p in plots.values():
        assert p.parent == run and p.exists() and re.fullmatch(r"plot_[A-Za-z0-9_-]+\.png", p.name)
        assert ".." not in p.name and len(p.name) < 120
    # a safe name keeps its file name, whatever other names sanitise to
    assert written["plot_Foo"].name == "plot_Foo.png" and written["plot_a_b"].name == "plot_a_b.png"
    assert not (run.parent / "evil.png").exists()


# --- figures -----------------------------------------------------------------------------------------------------


def _captured(monkeypatch, module, name):
    figures = []
    original = getattr(module, name)

    def keep(fig, *paths, **kw):
        figures.append(fig)
        return original(fig, *paths, **kw)

    monkeypatch.setattr(module, name, keep)
    return figures


def test_bars_have_interval_error_bars_and_no_empty_groups(tmp_path, monkeypatch):
    import attrdist.viz

    figures = _captured(monkeypatch, attrdist.viz, "save_figure")
    with ResultStore(tmp_path / "results.sqlite") as s:
        s.bind_config({**CONFIG, "methods": ["gradcam", "lrp", "gradient"]})
        for i, item in enumerate(ITEMS):
            out = _plain_result(item, i)
            # gradient's IoU is never finite (the store holds no NaN: an infinite value stands for one)
            out.maps += [MapCheck(item, "cell", "gradient", v, None) for v in ("vanilla", "var")]
            out.scores += [Score(item, "cell", "gradient", v, "iou", math.inf) for v in ("vanilla", "var")]
            out.scores += [Score(item, "cell", "gradcam", v, "iou", 0.1 * (i % 5)) for v in ("vanilla", "var")]
            s.write_item(item, out, 0.1)
        t = summarize(s, bootstrap=300)
        out = bar_plots(s, t, tmp_path)
    assert set(out) == {"plot_region_attribution", "plot_spearman_abs", "plot_spearman", "plot_iou"}
    by_metric = dict(zip(out, figures, strict=True))
    iou = by_metric["plot_iou"].axes[0]
    assert [x.get_text() for x in iou.get_xticklabels()] == ["Grad-CAM"]  # lrp and gradient have no IoU
    ax = by_metric["plot_region_attribution"].axes[0]
    assert len(ax.get_xticklabels()) == 2
    bars = [c for c in ax.containers if hasattr(c, "errorbar") and c.errorbar is not None]
    assert len(bars) == 2  # vanilla and var, each with error bars
    for bar, variant in zip(bars, ("vanilla", "var"), strict=True):
        segments = bar.errorbar.lines[2][0].get_segments()
        for seg, method in zip(segments, ("gradcam", "lrp"), strict=True):
            lo, hi = t.cells[(method, variant, "region_attribution")].mean_ci
            assert seg[0][1] == pytest.approx(lo) and seg[1][1] == pytest.approx(hi)


def test_sanity_panels_only_for_similarities_with_data(tmp_path, monkeypatch):
    import attrdist.viz

    figures = _captured(monkeypatch, attrdist.viz, "save_figure")
    with ResultStore(tmp_path / "results.sqlite") as s:
        s.bind_config({**CONFIG, "benchmark": "sanity"})
        for i, item in enumerate(ITEMS):
            out = ItemResult()
            for depth, frac in (("depth000", 0.0), ("depth005", 0.5), ("depth010", 1.0)):
                out.attributes.append(UnitAttribute(item, depth, "fraction", frac))
                for v in ("vanilla", "var"):
                    out.maps.append(MapCheck(item, depth, "gradcam", v, None))
                    # ssim is never finite (the store holds no NaN: an infinite value stands for one)
                    out.scores += [Score(item, depth, "gradcam", v, "ssim", math.inf),
                                   Score(item, depth, "gradcam", v, "spearman_abs", 1 - frac * (0.5 + 0.05 * (i % 3)))]
            s.write_item(item, out, 0.1)
        t = summarize(s, unit="depth010", bootstrap=100)
        out = sanity_plot(s, t, tmp_path)
    assert out["sanity"].exists()
    (fig,) = figures
    panels = [ax for ax in fig.axes if ax.axison]
    assert [ax.get_title() for ax in panels] == ["spearman_abs (lower is better)"]  # no empty ssim panel
    bars = [c for c in panels[0].containers if c.has_yerr]
    assert len(bars) == 2
    segments = bars[0].lines[2][0].get_segments()
    assert max(seg[1][1] - seg[0][1] for seg in segments) > 0  # a real interval at the randomised depths


def test_a_mean_outside_its_interval_draws_no_negative_error_bar(tmp_path, monkeypatch):
    # a ratio of sums over few items can put the mean just outside its percentile interval: no error, no bar
    # below zero length
    import attrdist.viz
    from attrdist.bench.report import Table

    figures = _captured(monkeypatch, attrdist.viz, "save_figure")
    cells = {("m", "vanilla", "iou"): Cell(0.5, 0.5, 0.0, (math.nan, math.nan), 3, 2, (0.52, 0.6)),
             ("m", "var", "iou"): Cell(0.7, 0.5, 40.0, (10.0, 50.0), 3, 2, (0.6, 0.69))}
    t = Table(["m"], ["vanilla", "var"], ["iou"], cells, {}, {}, 2)
    out = bar_plots(None, t, tmp_path)
    assert out["plot_iou"].exists()
    bars = [c for c in figures[0].axes[0].containers if hasattr(c, "errorbar")]
    segments = [c.errorbar.lines[2][0].get_segments()[0] for c in bars]
    assert [(s[0][1], s[1][1]) for s in segments] == [pytest.approx((0.5, 0.6)), pytest.approx((0.6, 0.7))]
