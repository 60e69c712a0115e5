"""PIC time per image: attrdist (all thresholds in one batch, SIC and AIC from the same predictions)
against the `saliency` package's loop (one model call per threshold, one pass per curve).

    python benchmarks/pic_speed.py [--repeats 3] [--model efficientnet_lite0]
"""

import argparse
import statistics
import time

import numpy as np
import torch

from attrdist.data import sample_image
from attrdist.metrics.insertion import PIC_THRESHOLDS, PicBase, pic_curves, random_mask
from attrdist.models import load_model


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--model", default="efficientnet_lite0")
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args()
    from saliency.metrics import pic as ref

    if not hasattr(np, "trapz"):  # the package calls np.trapz, removed in NumPy 2.4
        np.trapz = np.trapezoid
    lm = load_model(args.model, weights=None if args.model == "efficientnet_lite0" else "random")
    pre = lm.preprocess

    def probs(batch):
        x = pre.normalize(torch.from_numpy(np.ascontiguousarray(batch)).permute(0, 3, 1, 2).float().div(255.0))
        with torch.no_grad():
            return lm.model(x).softmax(1).double().numpy()

    img = np.asarray(pre.crop_image(sample_image("coffee")), dtype=np.uint8)
    sal = np.random.default_rng(0).random(img.shape[:2])
    mask = random_mask(*img.shape[:2], seed=0)
    top = int(probs(img[None])[0].argmax())

    def ours():
        pic_curves(PicBase.of(img, mask, probs), sal, probs)

    def reference():
        ref.compute_pic_metric(img, sal, mask, lambda b: probs(b)[:, top], PIC_THRESHOLDS, min_pred_value=0.8)
        ref.compute_pic_metric(img, sal, mask, lambda b: (probs(b).argmax(1) == top).astype(float), PIC_THRESHOLDS,
                               min_pred_value=0.0)

    times = {"attrdist": [], "saliency": []}
    for _ in range(args.repeats):
        for name, fn in (("attrdist", ours), ("saliency", reference)):
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    a, s = statistics.median(times["attrdist"]), statistics.median(times["saliency"])
    print(f"PIC (SIC + AIC) of one 224x224 image, {len(PIC_THRESHOLDS)} thresholds, model {args.model}, "
          f"threads {torch.get_num_threads()}, median of {args.repeats}")
    print(f"attrdist (batched thresholds, shared predictions): {a:.3f} s")
    print(f"saliency package (model call per threshold, per curve): {s:.3f} s")
    print(f"speed-up: {s / a:.2f}x")


if __name__ == "__main__":
    main()
