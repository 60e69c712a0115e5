"""Grid benchmark throughput: items/s and the share of time outside model forward/backward.

Runs the localisation scoring of `attrdist bench localization` (sample grids, vanilla + VAR from the same
raw maps, all metrics) for each method on ResNet-50 (random init, CPU), and splits the time into model
forward, the class-gradient backward passes, and everything else (data, VAR, metrics, bookkeeping).

    python benchmarks/grid_throughput.py [--items 6] [--cell 112] [--methods gradcam,integrated_gradients]
"""

import argparse
import time

import torch

import attrdist.methods.base as base
from attrdist.bench.localization import LocalizationBenchmark, LocalizationConfig
from attrdist.methods import get_method
from attrdist.models import load_model


class Clock:
    def __init__(self):
        self.forward = 0.0
        self.backward = 0.0
        self._start = []

    def pre(self, module, args):
        self._start.append(time.perf_counter())

    def post(self, module, args, out):
        self.forward += time.perf_counter() - self._start.pop()


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--model", default="torchvision:resnet50")
    p.add_argument("--items", type=int, default=6)
    p.add_argument("--cell", type=int, default=112)
    p.add_argument("--methods", default="gradcam,integrated_gradients")
    args = p.parse_args()

    lm = load_model(args.model, weights="random")
    clock = Clock()
    lm.model.register_forward_pre_hook(clock.pre)
    lm.model.register_forward_hook(clock.post)
    original = base.class_gradients

    def timed_gradients(*a, **k):
        start = time.perf_counter()
        out = original(*a, **k)
        clock.backward += time.perf_counter() - start
        return out

    base.class_gradients = timed_gradients
    print(f"model {args.model} (random init), sample grids of {2 * args.cell}px, {args.items} items, "
          f"threads {torch.get_num_threads()}")
    print(f"{'method':<22}{'items/s':>9}{'total s':>9}{'forward s':>11}{'backward s':>12}{'outside':>9}")
    for name in args.methods.split(","):
        cfg = LocalizationConfig(methods=[name], cell=args.cell, max_items=args.items)
        bench = LocalizationBenchmark(cfg, lm)
        items = bench.items()
        methods = {name: get_method(name, lm.model)}
        bench.score(items[0], methods)  # warm-up (and the one-time VJP mode measurement)
        clock.forward = clock.backward = 0.0
        start = time.perf_counter()
        for it in items:
            bench.score(it, methods)
        total = time.perf_counter() - start
        outside = total - clock.forward - clock.backward
        print(f"{name:<22}{len(items) / total:>9.2f}{total:>9.2f}{clock.forward:>11.2f}{clock.backward:>12.2f}"
              f"{outside / total:>9.1%}")


if __name__ == "__main__":
    main()
