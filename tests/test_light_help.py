"""``import attrdist`` and every subcommand's ``--help`` import no heavy library (torch alone takes ~1.5 s): the
help answers at once. Checked by what is imported, not by timing (machines are noisy); measured times are in the
README (``python -X importtime``).

Laziness lives at the edges only: the package face (``attrdist.__getattr__``) and the command line's dispatch.
Library modules import torch plainly, so the help reads the light modules: the configurations
(``attrdist.presets``, ``attrdist.explain_config``, the benchmarks' configs) and the registries' metadata
(``attrdist.metrics``, ``attrdist.data.kinds``)."""

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

HEAVY = ("torch", "torchvision", "timm", "scipy", "matplotlib", "skimage", "zennit", "captum", "pycocotools")
COMMANDS = [[], ["explain"], ["bench"], ["report"], ["serve"], ["methods"], ["models"], ["classes"],
            *(["bench", name] for name in ("localization", "coco", "insertion", "sanity", "study"))]


def _imported_after(code: str) -> list[str]:
    probe = f"import sys\n{code}\nprint(__import__('json').dumps(sorted({{m.split('.')[0] for m in sys.modules}})))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    return [m for m in json.loads(out.stdout.strip().splitlines()[-1]) if m in HEAVY]


LIGHT = ("attrdist", "attrdist.bench", "attrdist.app", "attrdist.presets", "attrdist.explain_config",
         "attrdist.metrics", "attrdist.metrics.insertion", "attrdist.data.kinds")


def test_import_attrdist_is_light():
    assert _imported_after(f"import {', '.join(LIGHT)}") == []


def test_library_modules_import_torch_plainly():
    """No lazy stand-in for a module (the ``_lazy`` proxies of old): a checker sees torch's types."""
    src = Path(__file__).resolve().parents[1] / "src" / "attrdist"
    assert not (src / "_lazy.py").exists()
    assert [p.name for p in src.rglob("*.py") if re.search(r"^\w+ = lazy\(", p.read_text(), re.M)] == []


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "attrdist")
def test_help_imports_nothing_heavy(command):
    code = ("import contextlib, io\nfrom attrdist.cli import main\n"
            f"with contextlib.redirect_stdout(io.StringIO()) as out, contextlib.suppress(SystemExit):\n"
            f"    main({[*command, '--help']!r})\n"
            "assert 'usage:' in out.getvalue()")
    assert _imported_after(code) == []


def test_a_wrong_image_path_fails_before_torch_loads(tmp_path):
    """Issue 21: ``attrdist explain missing.jpg`` (or a folder) answers at once, naming each path."""
    code = ("import contextlib, io\nfrom attrdist.cli import main\n"
            "with contextlib.redirect_stderr(io.StringIO()) as err:\n"
            f"    rc = main(['explain', {str(tmp_path / 'missing.jpg')!r}, {str(tmp_path)!r}])\n"
            "assert rc == 1, rc\n"
            "assert err.getvalue().count('error: ') == 2 and 'no such file' in err.getvalue() "
            "and 'a folder, not an image' in err.getvalue(), err.getvalue()")
    assert _imported_after(code) == []
