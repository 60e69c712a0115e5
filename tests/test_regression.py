"""The numbers do not move: the sample localisation, insertion and sanity benchmarks and ``attrdist explain``
give the results recorded before the one-pipeline redesign (tests/fixtures/regression_reference.json,
recorded with commit a72ea56 by the same commands, one thread; the redesign reproduced them to 1e-6). They were
re-recorded once since, on purpose: model inputs became contiguous tensors (so that one image and a batch take
the same float32 kernels), which moved the integrated-gradients rows by at most 4.5e-4 relative and no other row;
and when VAR lost its absolute tolerance on ``q - 1/K`` (the excess is computed without cancellation), which moved
the rows of LRP under the ``paper`` variant (maps of ~1e-9) and no other row; and when the default preset became
``smoothed-positive`` (the second variant study), which moved the rows and curves of the default variant ``var`` of
insertion and sanity and no other row; and when the default preset's smoothed distribution moved to float32 for
maps of O(1) scale (issue 24), which moved one sanity row (a near-zero HOG correlation, by 3e-6) and no other.
The sanity check's default blocks no longer count normalisation-only modules; ``--blocks all`` randomises the
blocks of the recording.

Values are compared to 1e-4 relative (float32 kernels round differently on another CPU, and ``vjp="auto"`` may
pick batched or sequential VJPs, whose float32 gradients can differ in the last digits); everything else (items,
units, methods, variants, metrics, skips) exactly. The sample grid of ``explain`` is the one recorded change of
the redesign: its cells are now resized like the benchmarks' (bilinear, one image-preparation module) instead of
bicubically, so only its class set is compared, and its maps are checked against the library in test_cli.py.
"""

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # end-to-end: `pytest -m "not slow"` leaves it out

REFERENCE = json.loads((Path(__file__).parent / "fixtures" / "regression_reference.json").read_text())
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
COMMANDS = {
    "localization": ["--max-items", "3", "--methods",
                     "gradcam,guided_backprop,input_x_gradient,integrated_gradients,lrp",
                     "--variants", "var=normalized,paper=paper,paper-max=paper+max"],
    "insertion": ["--max-items", "2", "--methods", "gradcam,input_x_gradient"],
    # the blocks of the recording: normalisation-only modules (_bn0, _bn1) counted, no longer the default
    "sanity": ["--max-items", "1", "--depths", "2", "--methods", "gradcam,guided_backprop", "--blocks", "all"],
}


def _run(*args):
    proc = subprocess.run([sys.executable, "-m", "attrdist", *args], env=ENV, capture_output=True, text=True,
                          timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]


#: The relative tolerance. 1e-5 held on the AMD EPYC the reference was recorded on; on an Intel Xeon (AVX-512
#: kernels) 5 of the 1440 localisation rows move by 2e-5 to 5.6e-5, the code of the recording (c4ca9d8) included:
#: one pixel at a threshold (VAR's 1/K under `paper`, IoU's binarisation) falls on the other side. One pixel of a
#: 112-px cell changes a share by about 1e-4 of itself at most; any real change of a method moves far more rows.
REL = 1e-4


def _close(a, b):
    return a == b or (a is not None and b is not None and abs(a - b) <= REL * max(abs(a), abs(b), 1e-6))


@pytest.mark.parametrize("benchmark", list(COMMANDS))
def test_benchmark_numbers_do_not_move(benchmark, tmp_path):
    _run("bench", benchmark, "--out", str(tmp_path), *COMMANDS[benchmark])
    con = sqlite3.connect(tmp_path / "results.sqlite")
    # the reference was recorded in the store's first layout (one results table: a ``zeroed`` row per map, the sanity
    # depth's ``fraction`` as a row per map); the same facts are read from the tables of each record kind
    rows = {tuple(r[:5]): r[5] for r in con.execute(
        "SELECT item, unit, method, variant, metric, value FROM scores "
        "UNION ALL SELECT item, unit, method, variant, 'zeroed', reason IS NOT NULL FROM maps "
        "UNION ALL SELECT a.item, a.unit, m.method, m.variant, a.name, a.value FROM unit_attributes a "
        "JOIN maps m ON m.item = a.item AND m.unit = a.unit")}
    ref = REFERENCE[benchmark]
    expected = {tuple(r[:5]): r[5] for r in ref["rows"]}
    assert set(expected) <= set(rows), sorted(set(expected) - set(rows))[:5]
    added = {k[4] for k in set(rows) - set(expected)}
    assert added <= {"zeroed", "no_positive"}, added  # only the counts of unscorable maps are added
    moved = [(k, expected[k], rows[k]) for k in expected if not _close(expected[k], rows[k])]
    assert not moved, moved[:5]
    skipped = con.execute("SELECT item, reason FROM skipped ORDER BY 1").fetchall()
    assert [list(s) for s in skipped] == ref["skipped"]
    curves = {tuple(c[:5]): json.loads(c[5])[::50] for c in
              con.execute("SELECT item, unit, method, variant, name, data FROM curves")}
    for c in ref["curves"]:
        assert all(_close(a, b) for a, b in zip(c[5], curves[tuple(c[:5])], strict=True)), c[:5]


def test_explain_class_set_does_not_move(tmp_path):
    _run("explain", "--methods", "gradcam,guided_backprop", "--out", str(tmp_path))
    rec = json.loads((tmp_path / "sample_grid.json").read_text())
    assert [c["index"] for c in rec["classes"]] == [c["index"] for c in REFERENCE["explain"]["classes"]]
    assert rec["target"]["index"] == REFERENCE["explain"]["target"]["index"]
