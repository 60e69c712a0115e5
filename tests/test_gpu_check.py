"""benchmarks/gpu_check.py, the prepared GPU check (issue 32): on a CPU its dry mode runs every step at small sizes
and writes its JSON and its Markdown table; the target check reads the steps' numbers as the targets state them."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import gpu_check  # noqa: E402


@pytest.mark.slow
def test_dry_run_writes_its_files(tmp_path):
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu_check.py"), "--dry", "--out", str(tmp_path)],
                          capture_output=True, text=True, timeout=1500, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads((tmp_path / "gpu-check.json").read_text())
    assert report["dry"] and set(report["steps"]) == {"cuda_tests", "throughput", "runner", "protocol"}
    assert all(s["status"] == "passed" for s in report["steps"].values()), {
        k: (s["status"], s["tail"][-500:]) for k, s in report["steps"].items()}
    measured = {t["target"]: t["value"] for t in report["targets"]}
    assert measured["runner: share of wall time outside the model (worst)"] is not None
    assert measured["paper protocol on 8 GPUs (hours)"] > 0
    md = (tmp_path / "gpu-check.md").read_text()
    assert "dry run on the CPU: no GPU figures" in md and "| target | limit | measured | met |" in md


def test_targets_read_the_steps_as_stated():
    steps = {
        "throughput": {"data": {
            "cnn": [{"batch": 64, "k": 10, "method": "gradcam", "vs_forward": 0.85, "vs_floor": 0.2},
                    {"batch": 64, "k": 10, "method": "gradient", "vs_floor": 1.05, "vs_forward": 0.1},
                    {"batch": 64, "k": 10, "method": "guided_backprop", "vs_floor": 1.3, "vs_forward": 0.1},
                    {"batch": 16, "k": 10, "method": "gradcam", "vs_forward": 0.1, "vs_floor": 0.1}],
            "vit": [{"k": 10, "method": "gradient", "vs_gradient": 1.0},
                    {"k": 10, "method": "tlrp", "vs_gradient": 2.5}],
        }},
        "runner": {"data": {"methods": [{"outside_share": 0.05}, {"outside_share": 0.08}]}},
        "protocol": {"data": {"seconds": 8 * 3600 * 20.0}},
    }
    got = {t["target"]: (t["value"], t["met"]) for t in gpu_check.targets(steps)}
    assert got["Grad-CAM K=10 throughput / plain forward"] == (0.85, True)  # the largest batch only
    assert got["gradient family K=10 time / its floor (worst)"] == (1.3, False)
    assert got["ViT methods K=10 time / gradient (worst)"] == (2.5, False)
    assert got["runner: share of wall time outside the model (worst)"] == (0.08, True)
    assert got["paper protocol on 8 GPUs (hours)"] == (20.0, True)
    assert all(t["met"] is None for t in gpu_check.targets({}))  # nothing measured: nothing claimed
