"""The localisation runner's time per grid outside the model, today's path against the path before issue 24.

The model is a null model (one 1x1 convolution, pooling and a linear layer: a negligible forward and backward pass),
so the whole wall time of ``run_localization`` is spent outside the model: preparing the grid, the VAR step, the
metrics, assembling the rows and the store. The same run is timed twice in one process:

* ``before``: a reference of the path before issue 24, rebuilt here: the VAR step in float64 for every call, the
  smoothing (VAR's and the metrics') as a batch of one-channel convolutions, one store transaction per item;
* ``now``: the library as it is (float32 VAR where exact enough, the smoothing one depthwise convolution, one
  transaction per batch).

Both print their seconds per grid, split into the stages the runner spends them in, and the ratio.

    python benchmarks/runner_overhead.py [--items 12] [--batch-size 4] [--variants paper] [--threads 1]
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import math
import tempfile
import time
from collections import defaultdict

import torch

import attrdist.bench.localization as loc
import attrdist.methods.base as method_base
import attrdist.metrics.localization as loc_metrics
import attrdist.var as var_module
from attrdist.bench import LocalizationConfig, run_localization
from attrdist.bench.store import ResultStore
from attrdist.models import load_model


def null_model() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Conv2d(3, 4, 1), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(),
                               torch.nn.Linear(4, 1000)).eval()


def legacy_smooth(maps, kernel=11, sigma=2.0, kind="gaussian", border="reflect"):
    """``attrdist.smoothing.smooth`` before issue 24: every plane a batch item of a one-channel convolution."""
    import torch.nn.functional as F

    if kind == "none":
        return maps
    r = torch.arange(kernel, dtype=torch.float64) - kernel // 2
    g = torch.exp(-(r**2) / (2 * sigma**2)) if kind == "gaussian" else torch.ones(kernel, dtype=torch.float64)
    g = (g / g.sum()).to(maps.dtype).to(maps.device)
    pad = kernel // 2
    x = maps.reshape(-1, 1, *maps.shape[-2:])
    if border == "reflect":
        x = F.conv2d(F.pad(x, (0, 0, pad, pad), mode="reflect"), g.view(1, 1, -1, 1))
        x = F.conv2d(F.pad(x, (pad, pad, 0, 0), mode="reflect"), g.view(1, 1, 1, -1))
    else:
        x = F.conv2d(x, g.view(1, 1, -1, 1), padding=(pad, 0))
        x = F.conv2d(x, g.view(1, 1, 1, -1), padding=(0, pad))
    return x.view(maps.shape)


WRITE_ITEMS = ResultStore.write_items


def legacy_write_items(self, items, skipped=()):
    """One transaction per item, as before issue 24."""
    for item in items:
        WRITE_ITEMS(self, [item])
    if skipped:
        WRITE_ITEMS(self, [], skipped)


@contextlib.contextmanager
def patched(owner, name, value):
    original = getattr(owner, name)
    setattr(owner, name, value)
    try:
        yield original
    finally:
        setattr(owner, name, original)


class Clock:
    """Seconds inside wrapped functions (the first entered counts; nested calls count once)."""

    def __init__(self):
        self.seconds = defaultdict(float)
        self.active = False

    def wrap(self, fn, stage):
        clock = self

        def timed(*args, **kwargs):
            if clock.active:
                return fn(*args, **kwargs)
            clock.active = True
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                clock.seconds[stage] += time.perf_counter() - start
                clock.active = False

        return timed


def timed_run(config, lm, legacy: bool) -> tuple[float, dict[str, float]]:
    """Seconds per grid of one run, and its stages."""
    if True:
        clock = Clock()
        with contextlib.ExitStack() as stack:
            if legacy:
                stack.enter_context(patched(var_module, "working_dtype", lambda *a: torch.float64))
                stack.enter_context(patched(var_module, "smooth", legacy_smooth))
                stack.enter_context(patched(loc_metrics, "smooth", legacy_smooth))
                stack.enter_context(patched(ResultStore, "write_items", legacy_write_items))
            for owner, name, stage in ((var_module, "refine", "var"), (loc._Regions, "_scores", "metrics"),
                                       (loc.Localization, "prepare", "prepare"),
                                       (method_base.Attributor, "attribute", "model")):
                stack.enter_context(patched(owner, name, clock.wrap(getattr(owner, name), stage)))
            with tempfile.TemporaryDirectory() as out:
                start = time.perf_counter()
                run_localization(config, out, lm=lm).close()
                total = (time.perf_counter() - start) / config.max_items
        per = {k: v / config.max_items for k, v in clock.seconds.items()}
        per["other"] = total - sum(per.values())
    return total, per


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--items", type=int, default=12, help="sample grids (at most 12)")
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--methods", default="input_x_gradient,guided_backprop")
    p.add_argument("--variants", default="default", help="'default' (var), 'paper' (the paper configs' two)")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=1, help="torch threads (1: steadier on a shared machine)")
    args = p.parse_args()
    torch.set_num_threads(args.threads)

    lm = dataclasses.replace(load_model("efficientnet_lite0"), model=null_model())
    variants = ({"paper": {"preset": "paper"}, "authors-code": {"preset": "authors-code"}}
                if args.variants == "paper" else {"var": {"preset": var_module.DEFAULT_PRESET}})
    config = LocalizationConfig(methods=args.methods.split(","), variants=variants, max_items=args.items,
                                batch_size=args.batch_size, device=args.device)
    with tempfile.TemporaryDirectory() as warm:  # one-time costs (VJP mode measurement, kernels)
        run_localization(dataclasses.replace(config, max_items=args.batch_size), warm, lm=lm).close()
    print(f"null model on {args.device}, {args.items} sample grids, batch {args.batch_size}, methods {args.methods}, "
          f"variants vanilla+{','.join(variants)}, {torch.get_num_threads()} threads; best of {args.repeats}")
    results = {"before": (math.inf, {}), "now": (math.inf, {})}
    for _ in range(args.repeats):  # interleaved, so that both paths see the same machine; the best run of each
        for label, legacy in (("before", True), ("now", False)):
            total, per = timed_run(config, lm, legacy)
            if total < results[label][0]:
                results[label] = (total, per)
    stages = ["prepare", "model", "var", "metrics", "other"]
    print(f"| path | ms per grid | {' | '.join(stages)} |")
    print("|---|---|" + "---|" * len(stages))
    for label, (total, per) in results.items():
        print(f"| {label} | {total * 1e3:.1f} | " + " | ".join(f"{per.get(s, 0.0) * 1e3:.1f}" for s in stages) + " |")
    before, now = results["before"][0], results["now"][0]
    print(f"time per grid outside the model: before / now = {before / now:.1f}x")


if __name__ == "__main__":
    main()
