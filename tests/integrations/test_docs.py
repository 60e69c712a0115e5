"""docs/integrations.md runs as written, and ``import attrdist.integrations`` stays light."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parents[2] / "docs" / "integrations.md"


def _blocks(text):
    return [b.split("```")[0] for b in text.split("```python\n")[1:]]


def test_the_page_has_code_for_both_libraries():
    blocks = _blocks(DOC.read_text())
    assert len(blocks) >= 3
    code = "\n".join(blocks)
    assert "explain_func=explain" in code and "NoiseTunnel(" in code


@pytest.mark.slow
def test_integrations_page_runs():
    """The page's Python blocks, in order, as one script (EfficientNet-Lite0 on two photos)."""
    pytest.importorskip("quantus")
    pytest.importorskip("captum")
    namespace = {}
    for block in _blocks(DOC.read_text()):
        exec(compile(block, str(DOC), "exec"), namespace)
    assert namespace["smoothed"].shape == (2, 1, 224, 224)


def test_import_attrdist_integrations_is_light():
    probe = ("import sys, json\nimport attrdist.integrations\n"
             "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    heavy = {"torch", "torchvision", "numpy", "captum", "quantus", "scipy", "matplotlib"}
    assert not heavy & set(json.loads(out.stdout.strip().splitlines()[-1]))
