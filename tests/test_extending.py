"""docs/extending.md, followed literally: its ``# file:`` code blocks are written to a folder and imported (they
register themselves), its ``# run`` blocks are executed, and the new entries appear in the command line and
work end to end."""

import importlib
import re
import sys
from pathlib import Path

import pytest

from attrdist.bench import BENCHMARKS, ResultStore
from attrdist.cli import main
from attrdist.data.kinds import DATASETS
from attrdist.methods import METHODS
from attrdist.metrics import METRICS

DOC = (Path(__file__).resolve().parents[1] / "docs" / "extending.md").read_text()
BLOCKS = re.findall(r"```python\n(.*?)```", DOC, flags=re.S)
FILES = {m.group(1): block for block in BLOCKS if (m := re.match(r"# file: (\S+)", block))}
RUNS = [block for block in BLOCKS if block.startswith("# run")]


@pytest.fixture(scope="module")
def extended(tmp_path_factory):
    folder = tmp_path_factory.mktemp("plugins")
    for name, code in FILES.items():
        (folder / name).write_text(code)
    sys.path.insert(0, str(folder))
    modules = [importlib.import_module(Path(name).stem) for name in FILES]
    yield modules
    sys.path.remove(str(folder))
    for registry, name in ((METHODS, "abs_gradient"), (METRICS, "peak_inside"), (DATASETS, "squares"),
                           (BENCHMARKS, "drop"), (METRICS, "prob_drop")):
        registry.remove(name)
    for name in FILES:
        sys.modules.pop(Path(name).stem, None)


def test_the_guide_has_the_promised_files():
    assert set(FILES) == {"my_method.py", "my_metric.py", "my_kind.py", "my_bench.py"} and len(RUNS) == 2
    assert len(FILES["my_bench.py"].strip().splitlines()) <= 50  # a benchmark is one short file


def test_run_blocks(extended):
    for block in RUNS:
        exec(compile(block, "docs/extending.md", "exec"), {})


def test_new_method_and_metric_end_to_end(extended, tmp_path, capsys):
    assert main(["methods"]) == 0
    assert "abs_gradient" in capsys.readouterr().out
    assert main(["bench", "localization", "--methods", "abs_gradient,gradcam", "--max-items", "1", "--cell", "32",
                 "--out", str(tmp_path / "loc")]) == 0
    report = capsys.readouterr().out
    assert "| abs_gradient |" in report and "peak_inside (vanilla)" in report


@pytest.mark.slow  # 5-16 s: CI runs it, the fast subset leaves it out
def test_new_dataset_kind_end_to_end(extended, tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["bench", "insertion", "--help"])
    assert "squares:N" in capsys.readouterr().out
    assert main(["bench", "insertion", "--dataset", "squares:2", "--methods", "gradcam", "--min-pred", "0",
                 "--out", str(tmp_path / "ins")]) == 0
    assert "2 items" in capsys.readouterr().out
    assert main(["bench", "localization", "--dataset", "squares:4", "--methods", "gradcam", "--cell", "32",
                 "--out", str(tmp_path / "loc")]) == 0  # labelled images: the authors' grids of 4


def test_new_benchmark_runs_resumes_and_reports(extended, tmp_path, capsys, lite0):
    with pytest.raises(SystemExit):
        main(["bench", "--help"])
    assert "drop" in capsys.readouterr().out
    bench = BENCHMARKS.get("drop")
    cfg = bench.config(methods=["gradcam", "gradient"], max_items=3, fraction=0.2)

    seen = []

    def crash(item):
        seen.append(item)
        if len(seen) == 2:
            raise KeyboardInterrupt  # killed while the second item is being computed

    with pytest.raises(KeyboardInterrupt):
        bench.run(cfg, tmp_path, lm=lite0, on_item=crash)
    with ResultStore(tmp_path / "results.sqlite") as store:
        assert store.done() == {seen[0]}
    bench.run(cfg, tmp_path, lm=lite0).close()  # resumes: the other items, none twice
    with ResultStore(tmp_path / "results.sqlite") as store:
        scores, maps = store.scores(), store.maps()
        assert len(store.done()) == 3
    assert len(maps) == 3 * 2 * 2  # every map refined is checked, scorable or not
    drops = [s for s in scores if s.metric == "prob_drop"]
    keys = {(s.item, s.unit, s.method, s.variant) for s in drops}
    assert len(keys) == len(drops) == sum(m.scorable for m in maps)  # a score for each scorable map, none twice
    assert keys == {(m.item, m.unit, m.method, m.variant) for m in maps if m.scorable}
    assert main(["report", str(tmp_path)]) == 0
    assert "prob_drop" in capsys.readouterr().out
