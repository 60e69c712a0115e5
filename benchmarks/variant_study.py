"""The VAR variant study: every candidate refinement on localisation, insertion and the sanity check.

Runs (or resumes) the three benchmarks with the same methods and VAR candidates into one folder, then writes
`study.md` (a table per method: RA/IoU/F1, AIC/SIC changes and the Spearman correlations at each randomisation
depth, paired over the maps both sides could score, with Bonferroni-corrected bootstrap intervals; unscorable
maps per benchmark), `study.json` and `frontier.png`, and prints the rule's choice (README, "The default VAR").

    python benchmarks/variant_study.py --out runs/study [--dataset photos[:DIR]] [--grids 48]
        [--insertion-images 16] [--sanity-images 8] [--variants normalized,n+smooth.05,...] [--device cuda]
    torchrun --nproc_per_node 2 benchmarks/variant_study.py ...   (items shared between two processes)
"""

import argparse
import sys
import time
from pathlib import Path

from attrdist.bench.study import CANDIDATES, StudyConfig, frontier_plot, run_study


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="runs/study")
    p.add_argument("--dataset", default="photos")
    p.add_argument("--model", default=None, help="default: the embedded EfficientNet-Lite0")
    p.add_argument("--methods", default=None, help="comma-separated (default: the paper's six + 3)")
    p.add_argument("--variants", default=None, help=f"comma-separated of {', '.join(CANDIDATES)}")
    p.add_argument("--grids", type=int, default=48)
    p.add_argument("--insertion-images", type=int, default=32)
    p.add_argument("--sanity-images", type=int, default=32)
    p.add_argument("--first-image", type=int, default=16)
    p.add_argument("--depths", type=int, default=4)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--bootstrap", type=int, default=20000)
    p.add_argument("--device", default="cpu")
    a = p.parse_args()
    cfg = StudyConfig(dataset=a.dataset, grids=a.grids, insertion_images=a.insertion_images,
                      sanity_images=a.sanity_images, first_image=a.first_image, depths=a.depths, seed=a.seed,
                      bootstrap=a.bootstrap, device=a.device)
    if a.model:
        cfg.model = a.model
    if a.methods:
        cfg.methods = a.methods.split(",")
    if a.variants:
        unknown = [v for v in a.variants.split(",") if v not in CANDIDATES]
        if unknown:
            sys.exit(f"unknown candidate(s) {unknown}; choose from {', '.join(CANDIDATES)}")
        cfg.variants = {v: CANDIDATES[v] for v in a.variants.split(",")}
    t = time.perf_counter()
    result = run_study(cfg, a.out)
    if not result:  # another torchrun process writes the analysis
        return
    frontier_plot(result, Path(a.out) / "frontier.png")
    print((Path(a.out) / "study.md").read_text())
    print(f"{time.perf_counter() - t:.0f} s; chosen: {result['default']['chosen']} "
          f"({'eligible' if result['default']['eligible'] else 'none eligible: the fewest harms'})")


if __name__ == "__main__":
    main()
