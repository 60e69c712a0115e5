"""The GPU check: one prepared script for the day a device is lent, run in under 8 minutes, one JSON, one table.

It runs, each as its own process with a time limit (a step that fails or runs out of time is recorded as such and
the others still run):

1. ``tests/test_cuda.py``: every method (both VJP modes), VAR and a benchmark run give the CPU's results on the GPU;
2. ``gpu_throughput.py``: the gradient family, Grad-CAM and integrated gradients' memory on ResNet-50, and every
   ViT method on ViT-B/16, at K=10, against the floors and the peers (Captum, pytorch-grad-cam, Zennit);
3. ``grid_throughput.py``: the localisation runner's share of wall time outside the model;
4. ``stage_timing.py``: the paper protocol's projected wall time on this GPU, and on 8 of them (the items shared
   out evenly: the runner's torchrun sharding).

Then it checks the targets (issue 32) and writes ``gpu-check.json`` and ``gpu-check.md`` under ``--out``:

* Grad-CAM at K=10: at least 0.8x the throughput of a plain forward pass;
* the gradient family (gradient, input x gradient, guided backprop) at K=10: at most 1.1x its floor (one forward
  with input gradients and K backward passes);
* every ViT method at K=10: at most 2x the time of the gradient;
* the runner: under 10% of its wall time outside the model;
* the paper protocol: under 24 h on 8 GPUs.

``--dry`` runs the same steps at small sizes on the CPU (CI's check that the script runs and writes its files;
its numbers are no GPU figures, and the table says so).

    python benchmarks/gpu_check.py                      # on a lent GPU: benchmarks/results/gpu-check.{json,md}
    python benchmarks/gpu_check.py --dry --out /tmp/gc  # CPU smoke test
"""

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


def steps(device: str, dry: bool, tmp: Path) -> dict[str, tuple[list[str], int, Path | None]]:
    """name -> (command, time limit in seconds, the JSON it writes)."""
    py = sys.executable
    if dry:
        return {
            "cuda_tests": ([py, "-m", "pytest", "-q", "tests/test_cuda.py"], 120, None),
            # the ViT section and IG are left to CI's own smoke test of gpu_throughput.py (--small)
            "throughput": ([py, str(HERE / "gpu_throughput.py"), "--device", device, "--models", "torchvision:resnet18",
                            "--batches", "1", "--ks", "2", "--size", "64", "--repeats", "1", "--skip", "vit,ig,bf16",
                            "--out", str(tmp / "throughput.json")], 300, tmp / "throughput.json"),
            "runner": ([py, str(HERE / "grid_throughput.py"), "--items", "2", "--cell", "32", "--methods", "gradcam",
                        "--model", "torchvision:resnet18", "--device", device, "--json", str(tmp / "runner.json")],
                       240, tmp / "runner.json"),
            "protocol": ([py, str(HERE / "stage_timing.py"), "--configs", "configs/paper/quad-resnet50.yaml",
                          "--items", "1", "--methods", "gradcam", "--device", device, "--json",
                          str(tmp / "protocol.json")], 400, tmp / "protocol.json"),
        }
    return {
        "cuda_tests": ([py, "-m", "pytest", "-q", "tests/test_cuda.py"], 150, None),
        "throughput": ([py, str(HERE / "gpu_throughput.py"), "--device", device, "--ks", "10", "--batches", "16,64",
                        "--vit-k", "10", "--repeats", "3", "--skip", "bf16", "--out", str(tmp / "throughput.json")],
                       150, tmp / "throughput.json"),
        "runner": ([py, str(HERE / "grid_throughput.py"), "--device", device, "--items", "48", "--batch-size", "8",
                    "--workers", "4", "--methods", "gradcam,input_x_gradient", "--json", str(tmp / "runner.json")],
                   60, tmp / "runner.json"),
        "protocol": ([py, str(HERE / "stage_timing.py"), "--device", device, "--items", "2", "--ig-steps", "50",
                      "--json", str(tmp / "protocol.json")], 120, tmp / "protocol.json"),
    }


def run_step(cmd: list[str], limit: int, out: Path | None) -> dict:
    """Run one step; its status, seconds, the tail of its output and what it wrote."""
    start = time.perf_counter()
    try:
        proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=limit)
        status = "passed" if proc.returncode == 0 else f"failed (exit {proc.returncode})"
        tail = (proc.stdout + proc.stderr)[-1500:]
    except subprocess.TimeoutExpired as err:
        status, tail = f"ran past its {limit} s", str(err.stdout or "")[-1500:]
    result = {"status": status, "seconds": round(time.perf_counter() - start, 1), "tail": tail}
    if out is not None and out.is_file():
        result["data"] = json.loads(out.read_text())
    return result


def _rows(data: dict | None, section: str) -> list[dict]:
    return list((data or {}).get(section) or [])


def targets(results: dict) -> list[dict]:
    """Each target: its measure, the limit, the value measured, and whether it is met (None: not measured)."""
    tp = results.get("throughput", {}).get("data")
    k = max((r["k"] for r in _rows(tp, "cnn")), default=10)  # 10 on a GPU (a dry run: 2)
    cnn = [r for r in _rows(tp, "cnn") if r.get("k") == k]
    vit = [r for r in _rows(tp, "vit") if r.get("k") == max((r["k"] for r in _rows(tp, "vit")), default=10)]
    big = max((r["batch"] for r in cnn), default=None)
    at_big = [r for r in cnn if r["batch"] == big]
    gradcam = [r["vs_forward"] for r in at_big if r["method"] == "gradcam"]
    family = [r["vs_floor"] for r in at_big if r["method"] in ("gradient", "input_x_gradient", "guided_backprop")]
    vit_ratio = [r["vs_gradient"] for r in vit if r["method"] != "gradient"]
    runner = [r["outside_share"] for r in _rows(results.get("runner", {}).get("data"), "methods")]
    protocol = (results.get("protocol", {}).get("data") or {}).get("seconds")
    out = [
        ("Grad-CAM K=10 throughput / plain forward", ">=", 0.8, min(gradcam) if gradcam else None),
        ("gradient family K=10 time / its floor (worst)", "<=", 1.1, max(family) if family else None),
        ("ViT methods K=10 time / gradient (worst)", "<=", 2.0, max(vit_ratio) if vit_ratio else None),
        ("runner: share of wall time outside the model (worst)", "<=", 0.10, max(runner) if runner else None),
        ("paper protocol on 8 GPUs (hours)", "<=", 24.0, protocol / 8 / 3600 if protocol else None),
    ]
    return [{"target": name, "op": op, "limit": limit, "value": value,
             "met": None if value is None else (value >= limit if op == ">=" else value <= limit)}
            for name, op, limit, value in out]


def markdown(report: dict) -> str:
    lines = [f"# GPU check: {report['device']}" + (" (dry run on the CPU: no GPU figures)" if report["dry"] else ""),
             "", f"torch {report['torch']}; {report['seconds']:.0f} s in all; `python benchmarks/gpu_check.py"
             + (" --dry" if report["dry"] else "") + "`", "", "| step | status | seconds |", "|---|---|---|"]
    lines += [f"| {name} | {r['status']} | {r['seconds']} |" for name, r in report["steps"].items()]
    lines += ["", "| target | limit | measured | met |", "|---|---|---|---|"]
    for t in report["targets"]:
        value = "-" if t["value"] is None else f"{t['value']:.3g}"
        met = "not measured" if t["met"] is None else ("yes" if t["met"] else "**no**")
        lines.append(f"| {t['target']} | {t['op']} {t['limit']} | {value} | {met} |")
    protocol = report["steps"].get("protocol", {}).get("data") or {}
    if protocol.get("seconds"):
        lines += ["", f"Paper protocol projected: {protocol['seconds'] / 3600:,.1f} h on one {report['device']}, "
                  f"{protocol['seconds'] / 8 / 3600:,.1f} h on 8 (items shared out by torchrun)."]
    return "\n".join(lines) + "\n"


def main() -> int:
    import torch

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dry", action="store_true", help="small sizes on the CPU: check that the script runs")
    p.add_argument("--device", default=None, help="default: cuda (cpu with --dry)")
    p.add_argument("--out", default=str(HERE / "results"), help="folder of gpu-check.json and gpu-check.md")
    args = p.parse_args()
    device = args.device or ("cpu" if args.dry else "cuda")
    if device.startswith("cuda") and not torch.cuda.is_available():
        print("no CUDA device here: run with --dry for the CPU smoke test", file=sys.stderr)
        return 2
    name = torch.cuda.get_device_name(0) if device.startswith("cuda") else "CPU"
    start = time.perf_counter()
    report = {"device": name, "torch": torch.__version__, "dry": args.dry, "steps": {}}
    with tempfile.TemporaryDirectory(prefix="attrdist-gpu-check-") as tmp:
        for step, (cmd, limit, out) in steps(device, args.dry, Path(tmp)).items():
            print(f"{step}: {' '.join(cmd[1:])}", file=sys.stderr, flush=True)
            report["steps"][step] = run_step(cmd, limit, out)
            print(f"  {report['steps'][step]['status']} in {report['steps'][step]['seconds']} s", file=sys.stderr)
    report["seconds"] = time.perf_counter() - start
    report["targets"] = targets(report["steps"])
    folder = Path(args.out)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "gpu-check.json").write_text(json.dumps(report, indent=1))
    (folder / "gpu-check.md").write_text(markdown(report))
    print(markdown(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
