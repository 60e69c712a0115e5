"""The localisation runner's time per grid outside the model, today's path against the path before issue 24.

The model is a null model (one 1x1 convolution, pooling and a linear layer: a negligible forward and backward pass),
so the whole wall time of ``run_localization`` is spent outside the model: preparing the grid, the attribution
engine's own work, the VAR step, the metrics, assembling the rows and the store. The same run is timed for two
paths, each in fresh processes (interleaved, the best of ``--repeats``):

* ``before``: a reference of the path before issue 24, rebuilt here: the VAR step of that time (float64 for every
  call, softmax and ``expm1`` at every temperature, a ``topk`` over every map for ``min_keep``, ``isfinite`` over
  every value), the smoothing (VAR's and the metrics') as a batch of one-channel convolutions, the metrics' counts
  as sums of booleans, once per metric, and the unscorable check through ``isfinite``, one metrics call per method
  and variant, the input check through ``isfinite``, one store transaction per item, and glibc's memory settings;
* ``now``: the library as it is (VAR in float32 where exact enough with a vectorised ``expm1``, the smoothing one
  depthwise convolution, counts shared by the metrics, one metrics call per method, one transaction per batch, and
  the memory settings ``attrdist bench`` makes: :mod:`attrdist._memory`).

Both print their milliseconds per grid, split into the stages the runner spends them in (``model`` is the
attribution call: the engine and the null model), and two ratios: of the whole time, and of the time outside the
attribution call.

    python benchmarks/runner_overhead.py [--items 12] [--batch-size 4] [--variants paper] [--threads 1]
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import math
import subprocess
import sys
import tempfile
import time
from collections import defaultdict

import numpy as np
import torch

import attrdist.bench.localization as loc
import attrdist.methods.base as method_base
import attrdist.metrics.checks as checks
import attrdist.metrics.localization as loc_metrics
import attrdist.var as var_module
from attrdist._memory import reuse_freed_memory
from attrdist.bench import LocalizationConfig, run_localization
from attrdist.bench.records import ItemResult, MapCheck, Score, Skip
from attrdist.bench.store import ResultStore
from attrdist.models import load_model


def null_model() -> torch.nn.Module:
    """A 1x1 convolution, average pooling and a linear layer: a negligible forward and backward pass.

    Its linear layer is scaled by the pooled pixels' count (a sum pooling), so that the maps of gradient methods
    have about the scale of a real model's: a peak ``|H|`` of 0.02-1 here, and of 0.15-0.3 for input x gradient and
    0.6-2 for guided backprop with EfficientNet-Lite0 on the sample photo. With plain weights they would be 1e-5,
    which sends the ``paper`` preset down its float64 path for tiny maps, as only LRP's relevances (1e-7) do.
    """
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 1), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(),
                                torch.nn.Linear(4, 1000)).eval()
    with torch.no_grad():
        model[3].weight.mul_(224 * 224)
    return model


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


def legacy_refine(maps, preset=None, *, ranked=False, warn_identical=True, **overrides):
    """``attrdist.var.refine`` before issue 24 (its checks, float64 throughout, the distribution and margins)."""
    cfg = var_module.get_preset(preset, **overrides)
    if not torch.isfinite(maps).all():
        raise ValueError("maps contain NaN or inf values")
    if warn_identical:
        (maps == maps[:, :1]).flatten(1).all(dim=1).any()
    scale = var_module.joint_scale(maps.detach(), cfg.normalize, cfg.quantile).to(torch.float64)
    h = maps.detach().to(torch.float64)
    h = h.abs() if cfg.magnitude == "abs" else (h.clamp(min=0) if cfg.magnitude == "positive" else h)
    h = h / scale.view(-1, *([1] * (h.dim() - 1)))
    if cfg.smooth > 0:
        sigma = cfg.smooth * max(h.shape[-2:])
        radius = min(math.ceil(3 * sigma), h.shape[-2] - 1, h.shape[-1] - 1)
        h = legacy_smooth(h, 2 * radius + 1, sigma)
    k = h.shape[1]
    q, excess = torch.zeros_like(h), torch.zeros_like(h)
    for t in cfg.temperatures:
        z = h / t if cfg.convention == "divide" else h * t
        z = z - z.amax(1, keepdim=True)
        q += torch.softmax(z, dim=1)
        e = torch.expm1(z)
        excess += (e - e.mean(1, keepdim=True)) / (k + e.sum(1, keepdim=True))
    q /= len(cfg.temperatures)
    excess /= len(cfg.temperatures)
    spread = h.amax(1, keepdim=True) - h.amin(1, keepdim=True)
    tie = spread <= var_module.TIE_ULPS * torch.finfo(maps.dtype).eps * h.abs().amax(1, keepdim=True)
    excess = excess.masked_fill(tie, 0.0)
    keep = excess > cfg.margin(ranked)
    if cfg.min_keep > 0:
        kept, pos = keep.flatten(2), (maps.detach() > 0).flatten(2)
        n = max(1, min(kept.shape[-1], math.ceil(cfg.min_keep * kept.shape[-1])))
        flat = torch.where(pos, excess.flatten(2), -math.inf)
        kth = flat.topk(n, dim=-1).values[..., -1:]
        short = (kept & pos).sum(-1, keepdim=True) < n
        keep = torch.where(short, kept | (pos & (flat >= kth)), kept).view_as(keep)
    weight = q if cfg.power == 1 else q.pow(cfg.power)
    refined = maps * (weight * keep).to(maps.dtype)
    return var_module.VAROutput(refined=refined, q=q, keep=keep, config=cfg)


def legacy_counts(pred, masks):
    """The localisation metrics' counts before issue 24: sums of booleans, once per metric."""
    p, m = pred.flatten(1), masks.flatten(1)
    return (p & m).sum(1).double(), p.sum(1).double(), m.sum(1).double()


def legacy_unscorable(maps):
    """``attrdist.metrics.checks.unscorable`` before issue 24: ``isfinite`` over every value, twice."""
    flat = maps.detach().flatten(1)
    finite = torch.isfinite(flat).all(1)
    safe = torch.where(torch.isfinite(flat), flat, torch.zeros((), dtype=flat.dtype, device=flat.device))
    return ~finite | (safe.amax(1) == safe.amin(1))


def legacy_compute(self, batch):
    """``_Regions.compute`` before issue 24: one metrics call per method and variant."""
    preps = [p if isinstance(p, Skip) else self.with_classes(p) for _, p in batch]
    live = [i for i, p in enumerate(preps) if isinstance(p, loc._Prepared)]
    out = [p if isinstance(p, Skip) else ItemResult() for p in preps]
    ready = [p for p in preps if isinstance(p, loc._Prepared)]
    x = torch.cat([p.x for p in ready])
    classes = torch.tensor([p.classes for p in ready])
    units = [(row, i, u) for row, (i, p) in enumerate(zip(live, ready, strict=True)) for u in p.units]
    masks = torch.from_numpy(np.stack([u.mask for _, _, u in units]))
    rows_of = torch.tensor([row for row, _, _ in units])
    cols_of = torch.tensor([u.column for _, _, u in units])
    for name, result in self.attribute(x, classes):
        for variant, maps in result.variants(self.variants).items():
            scores, why = self._scores(maps.detach().float()[rows_of, cols_of], masks)
            for n, (_, i, u) in enumerate(units):
                item = batch[i][0]
                out[i].maps.append(MapCheck(item, u.name, name, variant, why.get(n)))
                if n not in why:
                    out[i].scores += [Score(item, u.name, name, variant, metric, values[n])
                                      for metric, values in scores.items()]
    return out


def legacy_check_input(x):
    """The attribution engine's input check before issue 24: ``isfinite`` over every value."""
    if not torch.isfinite(x).all():
        raise ValueError("inputs contain NaN or inf values")
    return x.detach()


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
    clock = Clock()
    with contextlib.ExitStack() as stack:
        if legacy:
            stack.enter_context(patched(var_module, "refine", legacy_refine))
            stack.enter_context(patched(loc_metrics, "smooth", legacy_smooth))
            stack.enter_context(patched(loc_metrics, "_counts", legacy_counts))
            stack.enter_context(patched(checks, "unscorable", legacy_unscorable))
            stack.enter_context(patched(ResultStore, "write_items", legacy_write_items))
            stack.enter_context(patched(loc._Regions, "compute", legacy_compute))
            stack.enter_context(patched(method_base, "_check_input", legacy_check_input))
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


def child(args) -> None:
    """One path in a fresh process (``now`` with the command line's memory settings, ``before`` without): a
    warm-up run, then a timed one, printed as JSON."""
    torch.set_num_threads(args.threads)
    if args.path == "now":
        reuse_freed_memory()  # what `attrdist bench` does first
    lm = dataclasses.replace(load_model("efficientnet_lite0"), model=null_model())
    variants = ({"paper": {"preset": "paper"}, "authors-code": {"preset": "authors-code"}}
                if args.variants == "paper" else {"var": {"preset": var_module.DEFAULT_PRESET}})
    config = LocalizationConfig(methods=args.methods.split(","), variants=variants, max_items=args.items,
                                batch_size=args.batch_size, device=args.device)
    legacy = args.path == "before"
    timed_run(dataclasses.replace(config, max_items=args.batch_size), lm, legacy)  # one-time costs (VJP mode, kernels)
    total, per = timed_run(config, lm, legacy)
    print(json.dumps({"total": total, "per": per, "threads": torch.get_num_threads()}))


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--items", type=int, default=12, help="sample grids (at most 12)")
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--methods", default="input_x_gradient,guided_backprop")
    p.add_argument("--variants", default="default", help="'default' (var), 'paper' (the paper configs' two)")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=1, help="torch threads (1: steadier on a shared machine)")
    p.add_argument("--path", choices=("before", "now"), help=argparse.SUPPRESS)  # a child process's path
    args = p.parse_args()
    if args.path:
        return child(args)

    print(f"null model on {args.device}, {args.items} sample grids, batch {args.batch_size}, methods {args.methods}, "
          f"variants vanilla+{args.variants}, {args.threads} thread(s); each path in fresh processes, "
          f"interleaved, best of {args.repeats}")
    results = {"before": (math.inf, {}), "now": (math.inf, {})}
    for _ in range(args.repeats):  # interleaved, so that both paths see the same machine; the best run of each
        for label in results:
            proc = subprocess.run([sys.executable, __file__, *sys.argv[1:], "--path", label], capture_output=True,
                                  text=True, check=True)
            got = json.loads(proc.stdout.strip().splitlines()[-1])
            if got["total"] < results[label][0]:
                results[label] = (got["total"], got["per"])
    stages = ["prepare", "model", "var", "metrics", "other"]
    print(f"| path | ms per grid | {' | '.join(stages)} |")
    print("|---|---|" + "---|" * len(stages))
    for label, (total, per) in results.items():
        print(f"| {label} | {total * 1e3:.1f} | " + " | ".join(f"{per.get(s, 0.0) * 1e3:.1f}" for s in stages) + " |")
    before, now = results["before"][0], results["now"][0]
    print(f"time per grid, all of it (the null model's own forward and backward are negligible): before / now = "
          f"{before / now:.1f}x")
    outside = {label: total - per.get("model", 0.0) for label, (total, per) in results.items()}
    print(f"time per grid outside the attribution call (the runner, VAR and the metrics: all but the 'model' stage, "
          f"the engine of the previous round): before / now = {outside['before'] / outside['now']:.1f}x")


if __name__ == "__main__":
    main()
