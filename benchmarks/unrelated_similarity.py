"""Similarity between maps of *unrelated* photos (no randomisation): what a sanity-check measure reads as shared
structure when nothing is shared. Spearman of |H| should stay near 0 with and without VAR; SSIM and HOG-Pearson
of sparse refined maps rise because the maps share their zeros (the reason the second variant study's rule reads
Spearman, not SSIM).

    python benchmarks/unrelated_similarity.py [--pairs 12] [--dataset photos[:DIR]] [--preset normalized]
"""

import argparse
import itertools
import warnings

import numpy as np

from attrdist import VAR, get_method, load_model
from attrdist.data import model_input
from attrdist.data.kinds import open_dataset
from attrdist.metrics.similarity import SIMILARITIES


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", default="sample")
    p.add_argument("--pairs", type=int, default=12)
    p.add_argument("--methods", default="gradient,input_x_gradient")
    p.add_argument("--presets", default="normalized,n+abs+smooth.02+t.1-.3-1+keep.05")
    a = p.parse_args()
    from attrdist.bench.study import CANDIDATES

    warnings.simplefilter("ignore")
    lm = load_model()
    images = open_dataset(a.dataset, needs="images").images()
    pairs = list(itertools.combinations(range(len(images)), 2))[: a.pairs]
    needed = sorted({i for pair in pairs for i in pair})
    xs = {i: model_input(images[i].load(), lm.preprocess)[1] for i in needed}
    measures = ("spearman_abs", "spearman", "ssim", "hog_pearson")
    print(f"{len(pairs)} pairs of unrelated photos ({a.dataset}), EfficientNet-Lite0: mean similarity of the target "
          "maps")
    print(f"| method | maps | {' | '.join(measures)} |\n|---|---|" + "---|" * len(measures))
    for name in a.methods.split(","):
        results = {i: VAR(get_method(name, lm), classes="top3+worst").attribute(x) for i, x in xs.items()}
        for label in ["vanilla", *a.presets.split(",")]:
            def target(i, label=label, results=results):
                r = results[i]
                if label == "vanilla":
                    return r.raw_target[0].double().numpy()
                spec = CANDIDATES.get(label, {"preset": label})
                return r.refine(spec.get("preset"), **{k: v for k, v in spec.items() if k != "preset"}) \
                    .refined_target[0].double().numpy()
            maps = {i: target(i) for i in needed}
            row = [np.mean([SIMILARITIES[m](maps[i], maps[j]) for i, j in pairs]) for m in measures]
            print(f"| {name} | {label} | " + " | ".join(f"{v:.2f}" for v in row) + " |")


if __name__ == "__main__":
    main()
