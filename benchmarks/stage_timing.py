"""Stage timing of the benchmarks, and the projected wall time of the paper's full protocol on this machine.

For localisation (Quad grids), insertion (PIC) and the sanity check, the benchmark's own pipeline runs on a few items
of the bundled sample data with random weights (nothing is downloaded), and each item's time is split into:

* ``prepare``: decoding and composing the input (``Benchmark.prepare``; with ``--workers`` this runs beside the model);
* ``model``: the attribution methods' forward and backward passes (``Attributor.attribute``) and every other model
  call of the benchmark (PIC's forward passes, COCO's class-set forward);
* ``randomise``: the sanity check's randomised models (built once per run, moved from depth to depth);
* ``var``: the VAR step (``attrdist.var.refine``: every variant from the same raw maps);
* ``metrics``: everything else of ``Benchmark.compute`` (the metrics, PIC's curves, the rows);
* ``store``: the item's transaction in the SQLite store.

Then every configuration of ``configs/paper/`` is projected: per-item time of its benchmark and model, times the
items of the paper's protocol (``PROTOCOL_ITEMS``; the sanity check's time per depth times its depths). Models that
are not measured in full (``--models``) take the measured model's non-model stages and its model stage scaled by the
ratio of one forward and backward pass of each model (measured here). ``--ig-steps`` runs integrated gradients with
fewer steps and scales its model time linearly back to the configuration's steps.

    python benchmarks/stage_timing.py                       # every paper model, on this CPU (long)
    python benchmarks/stage_timing.py --models resnet50 --items 1 --ig-steps 8 --sanity-depths 2
    python benchmarks/stage_timing.py --device cuda --items 4
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import glob
import json
import math
import os
import platform
import subprocess
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import torch

import attrdist.methods.base as method_base
import attrdist.var as var_module
from attrdist._memory import reuse_freed_memory
from attrdist.bench import BENCHMARKS
from attrdist.bench.config import open_run
from attrdist.bench.records import Skip
from attrdist.bench.runner import Shard
from attrdist.bench.sanity import depths_of
from attrdist.bench.store import ResultStore
from attrdist.models import load_model

#: Items of the paper's protocol per configuration prefix (the file name's first part).
PROTOCOL_ITEMS = {
    "quad": (12_500, "ImageNet val: 50,000 images in fours"),
    "partquad": (739, "PartImageNet val: 2,957 images in fours (assumed split)"),
    "coco": (5_000, "COCO val2017"),
    "pic": (1_000, "the paper: the first 1k ImageNet val images"),
    "sanity": (10_000, "the paper: 10,000 ImageNet val images"),
}
#: The benchmark a configuration prefix runs (COCO and Part-Quad are timed as localisation: one 224-px input, a
#: class set of a few classes, one map per region; COCO adds one forward pass for its class set).
BENCHMARK_OF = {"quad": "localization", "partquad": "localization", "coco": "localization", "pic": "insertion",
                "sanity": "sanity"}
#: The sanity depths of each configuration file (the timing runs fewer).
FULL_DEPTHS: dict[str, int | None] = {}
STAGES = ("prepare", "model", "randomise", "var", "metrics", "store")


class Stages:
    """Seconds per stage, from wrappers around the pipeline's functions (nested calls count once)."""

    def __init__(self, device: str) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self.active: str | None = None
        self.cuda = torch.device(device).type == "cuda"
        self.patches: list[tuple[object, str, object]] = []

    def sync(self) -> None:
        if self.cuda:
            torch.cuda.synchronize()

    @contextlib.contextmanager
    def stage(self, name: str):
        if self.active is not None:  # inside another timed stage: counted there
            yield
            return
        self.sync()
        self.active, start = name, time.perf_counter()
        try:
            yield
        finally:
            self.sync()
            self.seconds[name] += time.perf_counter() - start
            self.active = None

    def wrap(self, owner: object, attr: str, name: str) -> None:
        original = getattr(owner, attr, None)
        if original is None:  # the pipeline changed: that stage is counted under "metrics"
            return
        stages = self

        def timed(*args, **kwargs):
            with stages.stage(name):
                return original(*args, **kwargs)

        self.patches.append((owner, attr, original))
        setattr(owner, attr, timed)

    def restore(self) -> None:
        for owner, attr, original in reversed(self.patches):
            setattr(owner, attr, original)
        self.patches.clear()


def cpu_name() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        name = next(line.split(":", 1)[1].strip() for line in out.splitlines() if line.startswith("Model name"))
    except (OSError, subprocess.CalledProcessError, StopIteration):
        name = platform.processor() or platform.machine()
    return f"{name}, {os.cpu_count()} cores, {torch.get_num_threads()} torch threads"


def device_name(device: str) -> str:
    if torch.device(device).type == "cuda":
        return torch.cuda.get_device_name(torch.device(device))
    return cpu_name()


def load_config(path: str, ig_steps: int | None, sanity_depths: int | None, methods: list[str] | None = None):
    """The configuration of a paper file, on the bundled sample data (and the factor its IG time is scaled by)."""
    prefix = Path(path).stem.split("-")[0]
    bench = BENCHMARKS.get(BENCHMARK_OF[prefix])
    own = BENCHMARKS.get("coco") if prefix == "coco" else bench
    cfg = own.config.load(path)
    if own is not bench:  # COCO's configuration, timed on grids: the fields localisation shares
        shared = {f.name for f in dataclasses.fields(bench.config)}
        cfg = bench.config(**{f.name: getattr(cfg, f.name) for f in dataclasses.fields(cfg) if f.name in shared})
    changes: dict = {"dataset": "sample"}
    if methods:  # a smoke test: only these of the configuration's methods (the projection is then partial)
        changes["methods"] = [m for m in cfg.methods if m in methods] or cfg.methods[:1]
    if prefix in ("coco", "partquad"):  # Quad grids stand in for them
        changes.update({k: v for k, v in {"grid": 2, "cell": 112, "selection": "authors"}.items()
                        if hasattr(cfg, k)})
    if bench.name == "insertion":
        changes["min_pred"] = 0.0  # random weights: no image reaches the SIC threshold, every curve is computed
    if bench.name == "sanity" and sanity_depths:
        changes["depths"] = sanity_depths
        FULL_DEPTHS[path] = cfg.depths
    ig_scale = 1.0
    options = {k: dict(v) for k, v in cfg.method_options.items()}
    if ig_steps and "integrated_gradients" in cfg.methods:
        steps = options.get("integrated_gradients", {}).get("steps", 50)
        if ig_steps < steps:
            options.setdefault("integrated_gradients", {})["steps"] = ig_steps
            ig_scale = steps / ig_steps
    changes["method_options"] = options
    return prefix, bench, dataclasses.replace(cfg, **changes), ig_scale


def write(store: ResultStore, item: str, out: object, seconds: float) -> None:
    if isinstance(out, Skip):
        store.skip_item(item, out.reason)
    else:
        store.write_item(item, out, seconds, 0)


def time_items(bench_cls, cfg, lm, items: int, device: str, ig_scale: float) -> tuple[dict[str, float], int, int]:
    """Seconds per item and stage of one benchmark (after one warm-up item), its items and its sanity depths."""
    cfg = dataclasses.replace(cfg, device=device)
    stages = Stages(device)
    with tempfile.TemporaryDirectory() as out:
        bench = bench_cls.build(cfg, lm)
        opened = open_run(bench_cls.resolve(bench.cfg, bench.lm), out, Shard(), bench.methods)
        store, bench.cfg = opened.store, opened.config
        bench.store = store
        bench.lm.model.to(device)
        todo = bench.items()[: items + 1]
        ig = {"seconds": 0.0}
        attribute = method_base.Attributor.attribute

        def attribute_timed(self, *args, **kwargs):  # the model stage, and IG's share of it (to scale it)
            outer = stages.active is None
            start = time.perf_counter()
            with stages.stage("model"):
                out = attribute(self, *args, **kwargs)
            if outer and self.name == "integrated_gradients":
                ig["seconds"] += time.perf_counter() - start
            return out

        method_base.Attributor.attribute = attribute_timed
        stages.wrap(var_module, "refine", "var")
        stages.wrap(bench_cls, "predict", "model")
        stages.wrap(bench_cls, "with_classes", "model")
        import attrdist.models.randomize as randomize

        for name in ("randomized_copy", "RandomizedDepths"):
            stages.wrap(randomize, name, "randomise")
        try:
            for n, item in enumerate(todo):
                if n == 1:  # the first item warms up (VJP mode measurement, allocations)
                    stages.seconds.clear()
                    ig["seconds"] = 0.0
                with stages.stage("prepare"):
                    prepared = bench.prepare(item)
                before = sum(stages.seconds[k] for k in ("model", "randomise", "var"))
                stages.sync()
                start = time.perf_counter()
                out = bench.compute([(item, prepared)])[0]
                stages.sync()
                total = time.perf_counter() - start
                inner = sum(stages.seconds[k] for k in ("model", "randomise", "var")) - before
                stages.seconds["metrics"] += total - inner
                with stages.stage("store"):
                    write(store, item, out, total)
        finally:
            stages.restore()
            method_base.Attributor.attribute = attribute
            store.close()
        measured = max(1, len(todo) - 1)
        per_item = {k: stages.seconds.get(k, 0.0) / measured for k in STAGES}
        per_item["model"] += ig["seconds"] / measured * (ig_scale - 1)
        depths = len(depths_of(len(bench.cfg.blocks), bench.cfg.depths)) if bench_cls.name == "sanity" else 1
        return per_item, measured, depths


def model_cost(model: str, device: str) -> float:
    """Seconds of one forward and backward pass of a 224-px image (random weights): the model scaling factor."""
    lm = load_model(model, weights="random")
    net = lm.model.to(device)
    x = torch.randn(1, 3, *(lm.input_size or (224, 224)), device=device, requires_grad=True)
    best = math.inf
    for _ in range(5):
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        start = time.perf_counter()
        net(x)[0, 0].backward()
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - start)
    return best


def hours(seconds: float) -> str:
    return f"{seconds / 3600:,.1f} h" if seconds < 86400 * 3 else f"{seconds / 86400:,.1f} d"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--configs", default="configs/paper/*.yaml", help="paper configurations to project (a glob)")
    p.add_argument("--models", default="", help="measure only configurations of these models (comma-separated "
                                                "names without the source, e.g. resnet50); the others are scaled")
    p.add_argument("--items", type=int, default=2, help="items measured per benchmark (after one warm-up item)")
    p.add_argument("--ig-steps", type=int, default=None, help="run integrated gradients with this many steps and "
                                                                "scale its model time to the configuration's")
    p.add_argument("--sanity-depths", type=int, default=3, help="sanity depths measured (the time per depth is "
                                                                 "projected to every depth of the configuration)")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--json", default=None, help="also write the projection as JSON to this file")
    p.add_argument("--methods", default="", help="time only these methods of each configuration (a smoke test: "
                                                 "the projection leaves the others out)")
    args = p.parse_args()
    reuse_freed_memory()  # what `attrdist bench` does first (attrdist._memory)

    paths = sorted(glob.glob(args.configs))
    wanted = [m for m in args.models.split(",") if m]
    print(f"device: {device_name(args.device)}; torch {torch.__version__}; {args.items} item(s) per benchmark after "
          f"one warm-up; IG steps {args.ig_steps or 'as configured'}; sanity depths measured {args.sanity_depths}")
    measured: dict[tuple[str, str], tuple[dict[str, float], int, int]] = {}
    costs: dict[str, float] = {}
    only = [m for m in args.methods.split(",") if m]
    configs = [(path, *load_config(path, args.ig_steps, args.sanity_depths, only)) for path in paths]
    for _path, _prefix, bench, cfg, ig_scale in configs:
        key = (bench.name, cfg.model)
        if key in measured or (wanted and cfg.model.split(":")[-1] not in wanted):
            continue
        lm = load_model(cfg.model, weights="random")
        start = time.perf_counter()
        measured[key] = time_items(bench, cfg, lm, args.items, args.device, ig_scale)
        print(f"  measured {bench.name} / {cfg.model} ({len(cfg.methods)} methods, "
              f"{len(cfg.variants) + 1} variants) in {time.perf_counter() - start:.0f} s", flush=True)

    for _path, _prefix, _bench, cfg, _scale in configs:  # after the runs: the models' relative cost
        costs.setdefault(cfg.model, model_cost(cfg.model, args.device))
    print("one forward and backward pass (s): " + ", ".join(f"{m.split(':')[-1]} {c:.3f}" for m, c in costs.items()))
    print(f"\nseconds per item and stage ({args.device}; sanity: per image and depth)")
    head = f"| benchmark | model | {' | '.join(STAGES)} | total | outside model |"
    print(head)
    print("|" + "---|" * (head.count("|") - 1))
    for (name, model), (per, _, depths) in measured.items():
        total = sum(per.values())
        row = " | ".join(f"{per[s] / depths:.3f}" for s in STAGES)
        print(f"| {name} | {model} | {row} | {total / depths:.3f} | {1 - per['model'] / total:.0%} |")

    print(f"\nprojected wall time of the paper's protocol ({len(configs)} configurations, one process on "
          f"{args.device})")
    print("| configuration | items | per item (s) | projected | how |")
    print("|---|---|---|---|---|")
    grand = 0.0
    projected: list[dict] = []
    for path, prefix, bench, cfg, _ in configs:
        items, source = PROTOCOL_ITEMS[prefix]
        key = (bench.name, cfg.model)
        how = "measured"
        if key not in measured:
            ref = next(((b, m) for b, m in measured if b == bench.name), None)
            if ref is None:
                print(f"| {Path(path).name} | {items} | - | - | {bench.name} not measured |")
                continue
            per, _, depths = measured[ref]
            per = {**per, "model": per["model"] * costs[cfg.model] / costs[ref[1]]}
            how = f"scaled from {ref[1]} (x{costs[cfg.model] / costs[ref[1]]:.2f} model cost)"
        else:
            per, _, depths = measured[key]
        per_item = sum(per.values())
        if bench.name == "sanity":
            full = len(depths_of(len(_blocks(cfg)), FULL_DEPTHS.get(path, cfg.depths)))
            per_item = per_item / depths * full
            how += f", {full} depths"
        if prefix == "coco":
            per_item += costs[cfg.model] / 3  # the class set's forward pass (about a third of forward+backward)
        grand += per_item * items
        projected.append({"config": Path(path).name, "items": items, "seconds_per_item": per_item,
                          "seconds": per_item * items, "how": how})
        print(f"| {Path(path).name} | {items:,} ({source}) | {per_item:.2f} | {hours(per_item * items)} | {how} |")
    print(f"| **all** | | | **{hours(grand)}** | |")
    if args.json:
        Path(args.json).write_text(json.dumps({"device": device_name(args.device), "configs": projected,
                                               "seconds": grand}, indent=1))


def _blocks(cfg) -> list[str]:
    from attrdist.models.randomize import randomization_blocks

    lm = load_model(cfg.model, weights="random")
    return randomization_blocks(lm.model, cfg.blocks)


if __name__ == "__main__":
    main()
