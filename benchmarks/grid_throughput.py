"""Grid benchmark throughput: items/s and the share of wall time outside model forward/backward.

Runs `attrdist bench localization` itself (the runner with its prefetching workers and background writer,
sample grids, vanilla + VAR from the same raw maps, all metrics) for each method on ResNet-50 (random init),
and splits the wall time into model forward passes, the class-gradient backward passes, and everything else
(data, VAR, metrics, bookkeeping). On a GPU the forward and backward clocks wait for the GPU.

    python benchmarks/grid_throughput.py [--items 24] [--cell 112] [--batch-size 8] [--workers 2] [--device cuda]
"""

import argparse
import json
import tempfile
import time

import torch

import attrdist.methods.base as base
from attrdist.bench import LocalizationConfig, run_localization
from attrdist.models import load_model


class Clock:
    def __init__(self, device):
        self.forward = 0.0
        self.backward = 0.0
        self._start = []
        self.cuda = torch.device(device).type == "cuda"

    def sync(self):
        if self.cuda:
            torch.cuda.synchronize()

    def pre(self, module, args):
        self.sync()
        self._start.append(time.perf_counter())

    def post(self, module, args, out):
        self.sync()
        self.forward += time.perf_counter() - self._start.pop()


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="torchvision:resnet50")
    p.add_argument("--items", type=int, default=24)
    p.add_argument("--cell", type=int, default=112)
    p.add_argument("--methods", default="gradcam,integrated_gradients")
    p.add_argument("--batch-size", type=int, default=1)
    p.add_argument("--workers", type=int, default=0)
    p.add_argument("--device", default="cpu")
    p.add_argument("--json", default=None, help="also write the table as JSON to this file")
    args = p.parse_args()
    rows = []

    lm = load_model(args.model, weights="random")
    lm.model.to(args.device)
    clock = Clock(args.device)
    lm.model.register_forward_pre_hook(clock.pre)
    lm.model.register_forward_hook(clock.post)
    original = base.class_gradients

    def timed_gradients(*a, **k):
        clock.sync()
        start = time.perf_counter()
        out = original(*a, **k)
        clock.sync()
        clock.backward += time.perf_counter() - start
        return out

    base.class_gradients = timed_gradients
    print(f"model {args.model} (random init) on {args.device}, sample grids of {2 * args.cell}px, {args.items} items, "
          f"batch {args.batch_size}, workers {args.workers}, threads {torch.get_num_threads()}")
    print(f"{'method':<22}{'items/s':>9}{'total s':>9}{'forward s':>11}{'backward s':>12}{'outside':>9}")
    for name in args.methods.split(","):
        def config(n, name=name):
            return LocalizationConfig(methods=[name], cell=args.cell, max_items=n, batch_size=args.batch_size,
                                      workers=args.workers, device=args.device)

        with tempfile.TemporaryDirectory() as warm:  # warm-up (and the one-time VJP mode measurement)
            run_localization(config(args.batch_size), warm, lm=lm).close()
        clock.forward = clock.backward = 0.0
        with tempfile.TemporaryDirectory() as out:
            start = time.perf_counter()
            run_localization(config(args.items), out, lm=lm).close()
            total = time.perf_counter() - start
        outside = total - clock.forward - clock.backward
        print(f"{name:<22}{args.items / total:>9.2f}{total:>9.2f}{clock.forward:>11.2f}{clock.backward:>12.2f}"
              f"{outside / total:>9.1%}", flush=True)
        rows.append({"method": name, "items_per_s": args.items / total, "seconds": total, "forward_s": clock.forward,
                     "backward_s": clock.backward, "outside_share": outside / total})
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"model": args.model, "device": args.device, "items": args.items, "cell": args.cell,
                       "batch_size": args.batch_size, "methods": rows}, f, indent=1)


if __name__ == "__main__":
    main()
