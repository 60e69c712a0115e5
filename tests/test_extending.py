"""docs/extending.md, followed literally: its ``# file:`` code blocks are written to a folder and imported (they
register themselves), its ``# run`` blocks are executed, and the new entries appear in the command line and
work end to end."""

import importlib
import re
import sys
from pathlib import Path

import pytest

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
    for registry, name in ((METHODS, "abs_gradient"), (METRICS, "peak_inside"), (DATASETS, "squares")):
        registry.remove(name)
    for name in FILES:
        sys.modules.pop(Path(name).stem, None)


def test_the_guide_has_the_promised_files():
    assert set(FILES) == {"my_method.py", "my_metric.py", "my_kind.py"} and len(RUNS) == 2


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


def test_new_dataset_kind_end_to_end(extended, tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["bench", "insertion", "--help"])
    assert "squares:N" in capsys.readouterr().out
    assert main(["bench", "insertion", "--dataset", "squares:2", "--methods", "gradcam", "--min-pred", "0",
                 "--out", str(tmp_path / "ins")]) == 0
    assert "2 items" in capsys.readouterr().out
    assert main(["bench", "localization", "--dataset", "squares:4", "--methods", "gradcam", "--cell", "32",
                 "--out", str(tmp_path / "loc")]) == 0  # labelled images: the authors' grids of 4
