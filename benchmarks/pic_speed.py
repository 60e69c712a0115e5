"""PIC time per image: attrdist (all thresholds in one batch, SIC and AIC from the same predictions, the
image's shared part computed once) against the `saliency` package's loop (one model call per threshold, one
pass per curve), with the time outside the model's forward passes beside the forward time, in one run.

attrdist's time splits into the image's shared part (:class:`PicBase`: the random mask's fully blurred image,
both WebP sizes, the model on the original and the blurred image; once per image, whatever the number of
maps) and one saliency map's curves (``pic_curves``: the image of each threshold, its WebP size, one batched
forward pass; SIC and AIC come from it together). Outside the model, a map's time is the thresholds'
reconstructions (qhull's triangulation of the kept pixels, then the rasterised linear interpolation) and their
lossless WebP encodings, on ``--workers`` threads; they are timed again apart, on one thread, on the same masks.
The CPU time of the process is printed too: on a shared CPU it moves less with the load than the wall time.
Maps: ``random`` (uniform noise, the reference's worst case for qhull: kept pixels everywhere) and ``smooth``
(blurred noise, like a CAM: solid kept regions). The reference is timed with one BLAS thread, and with
``--as-installed`` also with OpenBLAS's default threads: the same numbers, but scipy's per-triangle LAPACK calls
then dominate (18 minutes for the two curves on a busy 2-core CPU).

    python benchmarks/pic_speed.py [--repeats 3] [--maps random,smooth] [--workers N] [--reference-repeats 1]
        [--as-installed] [--no-reference] [--model efficientnet_lite0]
"""

import argparse
import os
import statistics
import time

import numpy as np
import torch
from scipy.ndimage import gaussian_filter
from scipy.spatial import Delaunay
from threadpoolctl import threadpool_limits

from attrdist.data import sample_image
from attrdist.metrics.insertion import (
    PIC_THRESHOLDS,
    PicBase,
    blur_from_mask,
    pic_curves_many,
    random_mask,
    webp_size,
)
from attrdist.models import load_model


class Timed:
    """The prediction function, with the time (wall and this process's CPU) spent in it."""

    def __init__(self, fn):
        self.fn, self.seconds, self.cpu, self.calls = fn, 0.0, 0.0, 0

    def __call__(self, batch):
        start, cpu = time.perf_counter(), time.process_time()
        try:
            return self.fn(batch)
        finally:
            self.seconds += time.perf_counter() - start
            self.cpu += time.process_time() - cpu
            self.calls += 1


def med(xs):
    return statistics.median(xs)


def saliency_map(kind, shape):
    noise = np.random.default_rng(0).random(shape)
    return noise if kind == "random" else gaussian_filter(noise, 16)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="efficientnet_lite0")
    p.add_argument("--repeats", type=int, default=3, help="runs of attrdist (the median is printed)")
    p.add_argument("--maps", default="random,smooth", help="saliency maps to time: random, smooth")
    p.add_argument("--workers", type=int, default=None, help="threads for the reconstructions (default: CPUs)")
    p.add_argument("--reference-repeats", type=int, default=1, help="runs of each reference setting")
    p.add_argument("--as-installed", action="store_true",
                   help="also time the reference with OpenBLAS's default threads (minutes)")
    p.add_argument("--no-reference", action="store_true", help="time attrdist only")
    args = p.parse_args()

    lm = load_model(args.model, weights=None if args.model == "efficientnet_lite0" else "random")
    pre = lm.preprocess

    def probs(batch):
        x = pre.normalize(torch.from_numpy(np.array(batch)).permute(0, 3, 1, 2).float().div(255.0))  # a writable copy
        with torch.no_grad():
            return lm.model(x).softmax(1).double().numpy()

    img = np.asarray(pre.crop_image(sample_image("coffee")), dtype=np.uint8)
    mask = random_mask(*img.shape[:2], seed=0)
    top = int(probs(img[None])[0].argmax())  # also warms the model up
    workers = args.workers or len(os.sched_getaffinity(0))
    print(f"PIC (SIC + AIC) of one 224x224 image, {len(PIC_THRESHOLDS)} thresholds, model {args.model}, "
          f"torch threads {torch.get_num_threads()}, {workers} worker threads, CPUs {os.cpu_count()}, "
          f"load average {os.getloadavg()[0]:.1f}, median of {args.repeats}")

    for kind in args.maps.split(","):
        sal = saliency_map(kind, img.shape[:2])
        t = {k: [] for k in ("base", "base_model", "map", "map_model", "map_cpu", "map_model_cpu", "qhull", "interp",
                             "webp")}
        for _ in range(args.repeats):
            model = Timed(probs)
            start = time.perf_counter()
            base = PicBase.of(img, mask, model)  # fresh: nothing of an earlier repeat is reused
            t["base"].append(time.perf_counter() - start)
            t["base_model"].append(model.seconds)
            model = Timed(probs)
            start, cpu = time.perf_counter(), time.process_time()
            pic_curves_many(base, [sal], model, workers=workers)
            t["map"].append(time.perf_counter() - start)
            t["map_cpu"].append(time.process_time() - cpu)
            t["map_model"].append(model.seconds)
            t["map_model_cpu"].append(model.cpu)
            assert model.calls == 1
            qhull = interp = webp = 0.0  # the same work apart, on one thread
            for th in PIC_THRESHOLDS:
                keep = (sal >= np.quantile(sal, 1 - th)) | mask
                corners = keep.copy()
                corners[[0, 0, -1, -1], [0, -1, 0, -1]] = True
                start = time.perf_counter()
                Delaunay(np.argwhere(corners))
                mid = time.perf_counter()
                im = blur_from_mask(img, keep)  # triangulation again + interpolation
                end = time.perf_counter()
                webp_size(im)
                qhull, interp, webp = qhull + mid - start, interp + (end - mid) - (mid - start), \
                    webp + time.perf_counter() - end
            t["qhull"].append(qhull)
            t["interp"].append(interp)
            t["webp"].append(webp)
        m = {k: med(v) for k, v in t.items()}
        base_out, map_out = m["base"] - m["base_model"], m["map"] - m["map_model"]
        print(f"[{kind} map] attrdist, per saliency map (SIC + AIC): {m['map']:.3f} s = outside the model "
              f"{map_out:.3f} s + forward pass ({len(PIC_THRESHOLDS)} images, one batch) {m['map_model']:.3f} s; "
              f"outside / forward {map_out / m['map_model']:.2f}x")
        print(f"    CPU time of this process: outside the model {m['map_cpu'] - m['map_model_cpu']:.3f} s, "
              f"forward pass {m['map_model_cpu']:.3f} s")
        print(f"    outside the model, timed apart on one thread: qhull triangulations {m['qhull']:.3f} s, "
              f"interpolation {m['interp']:.3f} s, WebP sizes {m['webp']:.3f} s "
              f"(sum {m['qhull'] + m['interp'] + m['webp']:.3f} s)")
        print(f"    per image, once for all maps (PicBase): {m['base']:.3f} s = outside the model {base_out:.3f} s "
              f"+ forward pass (2 images) {m['base_model']:.3f} s")
    ours = m["base"] + m["map"]
    print(f"attrdist, one image with one map ({kind}): {ours:.3f} s (outside the model {base_out + map_out:.3f} s)")
    if args.no_reference:
        return

    from saliency.metrics import pic as ref

    if not hasattr(np, "trapz"):  # the package calls np.trapz, removed in NumPy 2.4
        np.trapz = np.trapezoid

    def reference(sic_model, aic_model):
        ref.compute_pic_metric(img, sal, mask, lambda b: sic_model(b)[:, top], PIC_THRESHOLDS, min_pred_value=0.8)
        ref.compute_pic_metric(img, sal, mask, lambda b: (aic_model(b).argmax(1) == top).astype(float),
                               PIC_THRESHOLDS, min_pred_value=0.0)

    settings = [("one BLAS thread", 1)] + [("as installed (default BLAS threads)", None)] * args.as_installed
    for label, threads in settings:
        total, inside = [], []
        for _ in range(args.reference_repeats):
            model = Timed(probs)
            with threadpool_limits(limits=threads, user_api="blas"):
                start = time.perf_counter()
                reference(model, model)
                total.append(time.perf_counter() - start)
            inside.append(model.seconds)
        s, s_model = med(total), med(inside)
        print(f"saliency package ({kind} map), {label}: {s:.3f} s = outside the model {s - s_model:.3f} s + "
              f"{model.calls} forward passes {s_model:.3f} s; attrdist is {s / ours:.2f}x faster "
              f"(outside the model {(s - s_model) / (base_out + map_out):.2f}x)")


if __name__ == "__main__":
    main()
