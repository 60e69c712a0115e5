"""The VAR variant study: every candidate refinement on localisation, insertion and the sanity check at once.

One call runs the three benchmarks with the same methods and the same VAR variants (each a resumable run
folder under the study's folder), then puts their results side by side per method and variant, so that a
variant cannot look good on one axis while failing another:

* localisation on 2x2 grids: region attribution (RA), IoU and F1 with maps VAR zeroed counted as 0 *and*
  with them excluded, the counts of zeroed maps and of maps without positive mass;
* insertion (PIC): AIC and SIC of the target map;
* sanity: the similarity of the target map to the original model's once every block is randomised (lower
  is better: the map must depend on the weights).

Intervals are 95% percentile bootstraps, paired: the same resampled grids (or images) for the variant and
vanilla. The default VAR is chosen by :func:`choose_default`, a rule fixed before the study was run
(README, "Choosing the default VAR").
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from ..models import LoadedModel, load_model
from ..options import ModelOptions, opt
from .config import shareable
from .insertion import InsertionConfig
from .localization import LocalizationConfig
from .registry import BENCHMARKS
from .runner import current_shard
from .sanity import SanityConfig
from .store import ResultStore

__all__ = ["CANDIDATES", "PAPER_RA_GAIN", "StudyConfig", "analyse", "choose_default", "markdown", "run_study"]

#: Relative RA gains of VAR in the paper's Table 1 (ResNet-50, Quad-ImageNet), in percent.
PAPER_RA_GAIN: dict[str, float] = {"gradcam": 25.0, "guided_backprop": 144.0, "input_x_gradient": 37.0,
                                   "integrated_gradients": 36.0, "guided_gradcam": 21.0, "lrp": 56.0}

#: Methods beyond the paper's six that the default must also improve.
EXTRA_METHODS: tuple[str, ...] = ("gradient", "smoothgrad", "layercam")

#: The candidates: the named presets and refinements built from :class:`~attrdist.var.VARConfig` fields.
CANDIDATES: dict[str, dict] = {
    "paper": {"preset": "paper"},
    "authors-code": {"preset": "authors-code"},
    "normalized": {"preset": "normalized"},
    **{name: {"preset": "normalized", **fields} for name, fields in {
        "n+abs": {"magnitude": "abs"},
        "n+positive": {"magnitude": "positive"},
        "n+each": {"channels": "each"},
        "n+t.2-1-5": {"temperatures": [0.2, 1.0, 5.0]},
        "n+t.1-.3-1": {"temperatures": [0.1, 0.3, 1.0]},
        "n+smooth.05": {"smooth": 0.05},
        "n+positive+smooth.05": {"magnitude": "positive", "smooth": 0.05},
        "n+abs+smooth.05": {"magnitude": "abs", "smooth": 0.05},
        "n+positive+smooth.05+t.2-1-5": {"magnitude": "positive", "smooth": 0.05, "temperatures": [0.2, 1.0, 5.0]},
        "n+abs+smooth.05+t.2-1-5": {"magnitude": "abs", "smooth": 0.05, "temperatures": [0.2, 1.0, 5.0]},
        "n+positive+smooth.02+t.1-.3-1": {"magnitude": "positive", "smooth": 0.02, "temperatures": [0.1, 0.3, 1.0]},
        "n+abs+smooth.02+t.1-.3-1": {"magnitude": "abs", "smooth": 0.02, "temperatures": [0.1, 0.3, 1.0]},
        "n+tauq.5": {"tau_quantile": 0.5},
        "n+pow2": {"power": 2.0},
        "n+soft2": {"gate": "none", "power": 2.0},
        "n+keep.05": {"min_keep": 0.05},
        "n+t.1-.3-1+keep.05": {"temperatures": [0.1, 0.3, 1.0], "min_keep": 0.05},
        "n+abs+smooth.05+t.2-1-5+keep.05": {"magnitude": "abs", "smooth": 0.05, "temperatures": [0.2, 1.0, 5.0],
                                            "min_keep": 0.05},
        "n+positive+smooth.02+t.1-.3-1+keep.05": {"magnitude": "positive", "smooth": 0.02,
                                                  "temperatures": [0.1, 0.3, 1.0], "min_keep": 0.05},
        "n+abs+smooth.02+t.1-.3-1+keep.05": {"magnitude": "abs", "smooth": 0.02, "temperatures": [0.1, 0.3, 1.0],
                                             "min_keep": 0.05},
    }.items()},
}

#: Localisation metrics of the table (each with zeroed maps counted as 0 and excluded).
LOCALIZATION = ("region_attribution", "iou", "f1")
#: Insertion metrics (higher is better) and sanity similarities (lower is better at full randomisation).
INSERTION = ("aic_auc", "sic_auc")
SANITY = ("ssim", "spearman_abs")


@dataclass(kw_only=True)
class StudyConfig(ModelOptions):
    """What the study runs (saved as ``study.yaml`` beside its results).

    Attributes:
        dataset: Dataset with grids and single images (default: the package photos, ``photos``).
        methods: Methods compared.
        variants: The VAR candidates, name -> ``{"preset": ..., overrides}``.
        grids: Number of 2x2 grids for localisation.
        insertion_images: Number of images for insertion.
        sanity_images: Number of images for the sanity check (original and fully randomised model).
        bootstrap: Bootstrap resamples of the intervals.
        seed: Seed of the grids, the randomisation and the bootstrap.
    """

    dataset: str = field(default="photos", metadata=opt("dataset with grids and images (KIND[:ARG])"))
    methods: list[str] = field(default_factory=lambda: [*PAPER_RA_GAIN, *EXTRA_METHODS],
                               metadata=opt("comma-separated methods"))
    variants: dict[str, dict] = field(default_factory=lambda: dict(CANDIDATES),
                                      metadata=opt("VAR candidates, name=preset,..."))
    grids: int = field(default=48, metadata=opt("2x2 grids for localisation"))
    insertion_images: int = field(default=16, metadata=opt("images for insertion (PIC)"))
    sanity_images: int = field(default=8, metadata=opt("images for the sanity check"))
    bootstrap: int = field(default=2000, metadata=opt("bootstrap resamples"))
    seed: int = field(default=0, metadata=opt("seed of grids, randomisation and bootstrap"))

    def runs(self) -> dict[str, object]:
        """The configuration of each benchmark of the study, by run folder name."""
        common = dict(dataset=self.dataset, methods=list(self.methods), variants=dict(self.variants),
                      seed=self.seed, model=self.model, weights=self.weights, method_options=self.method_options,
                      device=self.device, dtype=self.dtype, trust_checkpoint=self.trust_checkpoint)
        return {
            "localization": LocalizationConfig(**common, max_items=self.grids, selection="random"),
            "insertion": InsertionConfig(**common, max_items=self.insertion_images),
            "sanity": SanityConfig(**common, max_items=self.sanity_images, depths=2,
                                   similarities=list(SANITY)),
        }


def run_study(config: StudyConfig, out_dir: str | Path, lm: LoadedModel | None = None) -> dict:
    """Run (or resume) the three benchmarks of the study into ``out_dir`` and analyse them.

    Returns:
        What :func:`analyse` returns (also written as ``study.json``, ``study.md``).
    """
    import yaml

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "study.yaml").write_text(yaml.safe_dump(shareable(config), sort_keys=False))
    lm = lm or load_model(config.model, config.weights, trust_checkpoint=config.trust_checkpoint)
    for name, cfg in config.runs().items():
        BENCHMARKS.get(name).run(cfg, out / name, lm=lm).close()
    if current_shard().rank != 0:  # under torchrun, the first process writes the analysis
        return {}
    result = analyse(out, bootstrap=config.bootstrap, seed=config.seed)
    (out / "study.json").write_text(json.dumps(result, indent=1))
    (out / "study.md").write_text(markdown(result))
    return result


# -- analysis -----------------------------------------------------------------------------------------------


def _resample_weights(groups: int, n: int, seed: int) -> np.ndarray:
    """``[n, groups]`` multinomial counts: how often each group is drawn in each bootstrap resample."""
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, groups, size=(n, groups))
    w = np.zeros((n, groups))
    np.add.at(w, (np.arange(n)[:, None], idx), 1.0)
    return w


def _interval(samples: np.ndarray) -> list[float]:
    finite = samples[np.isfinite(samples)]
    return [float(np.percentile(finite, 2.5)), float(np.percentile(finite, 97.5))] if finite.size else [math.nan] * 2


@dataclass
class _Grouped:
    """Per group (grid or image): the sum and the count of a metric's values, for one method and variant."""

    sums: np.ndarray
    counts: np.ndarray

    def mean(self, w: np.ndarray | None = None) -> np.ndarray | float:
        if w is None:
            return float(self.sums.sum() / self.counts.sum()) if self.counts.sum() else math.nan
        with np.errstate(invalid="ignore", divide="ignore"):
            return (w @ self.sums) / (w @ self.counts)


def _grouped(rows: list[tuple], groups: list[str], keep: Callable[[tuple], bool]) -> dict[tuple, _Grouped]:
    """``(method, variant, metric) -> _Grouped`` over ``groups`` (item ids) from store rows that ``keep``."""
    index = {g: i for i, g in enumerate(groups)}
    out: dict[tuple, _Grouped] = {}
    for row in rows:
        item, _unit, method, variant, metric, value = row
        if value is None or not math.isfinite(value) or not keep(row):
            continue
        g = out.setdefault((method, variant, metric), _Grouped(np.zeros(len(groups)), np.zeros(len(groups))))
        g.sums[index[item]] += value
        g.counts[index[item]] += 1
    return out


def _compare(g: dict[tuple, _Grouped], method: str, variant: str, metric: str, w: np.ndarray,
             how: str) -> dict:
    """Mean of the variant, and its change against vanilla with a paired interval (``how``: relative or diff)."""
    var, van = g.get((method, variant, metric)), g.get((method, "vanilla", metric))
    if var is None or van is None:
        return {"mean": math.nan, "change": math.nan, "ci": [math.nan, math.nan]}
    a, b = var.mean(w), van.mean(w)
    with np.errstate(invalid="ignore", divide="ignore"):
        boot = (a / b - 1) * 100 if how == "relative" else a - b
    m, base = var.mean(), van.mean()
    point = ((m / base - 1) * 100 if base else math.nan) if how == "relative" else m - base
    return {"mean": m, "change": point, "ci": _interval(boot)}


def analyse(study_dir: str | Path, bootstrap: int = 2000, seed: int = 0) -> dict:
    """The study's table from its run folders: per method and variant, every axis with paired intervals.

    Args:
        study_dir: The folder :func:`run_study` wrote (``localization/``, ``insertion/``, ``sanity/``).
        bootstrap: Resamples of the intervals.
        seed: Seed of the resampling.

    Returns:
        ``{"methods", "variants", "cells", "default"}``: ``cells[method][variant]`` holds, per metric, the
        variant's mean, its change against vanilla (percent for localisation and insertion, difference for
        similarities) and the paired 95% interval of the change; the localisation metrics as
        ``NAME`` (zeroed maps count 0) and ``NAME_excl`` (zeroed maps left out); counts ``zeroed`` (all three
        benchmarks) and ``no_positive``; ``default`` is :func:`choose_default`'s verdict.
    """
    root = Path(study_dir)
    cells: dict[str, dict[str, dict]] = defaultdict(lambda: defaultdict(dict))
    methods: list[str] = []
    variants: list[str] = []
    zeroed: dict[tuple[str, str], int] = defaultdict(int)
    for bench in ("localization", "insertion", "sanity"):
        db = root / bench / "results.sqlite"
        if not db.exists():
            continue
        with ResultStore(db) as store:
            rows = store.rows()
            cfg = store.config()
        methods += [m for m in cfg.get("methods", []) if m not in methods]
        variants += [v for v in ["vanilla", *cfg.get("variants", {})] if v not in variants]
        if bench == "sanity":
            last = max((r[1] for r in rows), default=None)
            rows = [r for r in rows if r[1] == last]
        for r in rows:
            if r[4] == "zeroed":
                zeroed[(r[2], r[3])] += int(round(r[5]))
        groups = sorted({r[0] for r in rows})
        w = _resample_weights(len(groups), bootstrap, seed)
        if bench == "localization":
            dead = {(r[0], r[1], r[2], r[3]) for r in rows if r[4] == "zeroed" and r[5] > 0}
            counted = _grouped(rows, groups, lambda r: True)
            excluded = _grouped(rows, groups, lambda r, dead=dead: r[:4] not in dead)
            for (method, variant, metric), g in counted.items():
                if metric in ("zeroed", "no_positive"):
                    cells[method][variant][f"{metric}_localization"] = int(round(g.sums.sum()))
                    cells[method][variant]["maps_localization"] = int(g.counts.sum())
                elif metric in LOCALIZATION:
                    cells[method][variant][metric] = _compare(counted, method, variant, metric, w, "relative")
                    cells[method][variant][f"{metric}_excl"] = _compare(excluded, method, variant, metric, w,
                                                                       "relative")
        else:
            g = _grouped(rows, groups, lambda r: True)
            names, how = (INSERTION, "relative") if bench == "insertion" else (SANITY, "diff")
            for method, variant, metric in list(g):
                if metric in names:
                    cells[method][variant][metric] = _compare(g, method, variant, metric, w, how)
    for (method, variant), n in zeroed.items():
        cells[method][variant]["zeroed"] = n
    if (root / "study.yaml").exists():  # the stores keep their variants sorted: the study's own order
        import yaml

        saved = yaml.safe_load((root / "study.yaml").read_text())
        order = ["vanilla", *(saved.get("variants") or {} if isinstance(saved, dict) else {})]
        variants = [v for v in order if v in variants] + [v for v in variants if v not in order]
    plain = {m: {v: dict(c) for v, c in by.items()} for m, by in cells.items()}
    result = {"methods": methods, "variants": variants, "cells": plain}
    result["default"] = choose_default(result)
    return result


# -- the rule -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Verdict:
    """One candidate under the rule: eligible or why not, and its score."""

    variant: str
    eligible: bool
    reasons: tuple[str, ...]
    paper_gains_reached: int
    extra_improved: int
    mean_gain: float


def judge(result: dict, variant: str) -> Verdict:
    """A candidate under the rule of :func:`choose_default`."""
    cells, reasons = result["cells"], []
    methods = [m for m in result["methods"] if m in cells]
    for m in methods:
        c = cells[m].get(variant, {})
        if c.get("zeroed", 0):
            reasons.append(f"{m}: {c['zeroed']} maps zeroed")
        for metric in INSERTION:
            hi = c.get(metric, {}).get("ci", [math.nan] * 2)[1]
            if hi < 0:
                reasons.append(f"{m}: {metric} lower than vanilla (95% interval of the change below 0)")
        for metric in SANITY:
            lo = c.get(metric, {}).get("ci", [math.nan] * 2)[0]
            if lo > 0:
                reasons.append(f"{m}: {metric} after randomisation higher than vanilla's (sanity worse)")

    def gain(m: str) -> float:
        return cells[m].get(variant, {}).get("region_attribution", {}).get("change", math.nan)

    reached = sum(1 for m in methods if m in PAPER_RA_GAIN and gain(m) >= PAPER_RA_GAIN[m])
    extra = sum(1 for m in methods if m in EXTRA_METHODS and gain(m) > 0)
    gains = [gain(m) for m in methods if math.isfinite(gain(m))]
    return Verdict(variant, not reasons, tuple(reasons), reached, extra,
                   float(np.mean(gains)) if gains else math.nan)


def choose_default(result: dict) -> dict:
    """The rule fixed before the study: which candidate becomes the default VAR.

    Eligible: no map zeroed in any benchmark; for no method an insertion score (AIC, SIC) significantly lower
    than vanilla's (the paired 95% interval of the change entirely below 0); for no method a sanity
    similarity at full randomisation significantly higher than vanilla's (interval entirely above 0). Among
    the eligible: the most of the six paper methods whose RA gain (zeroed maps counted as 0) reaches the
    paper's; then the most of gradient, SmoothGrad and LayerCAM improved; then the largest mean RA gain.

    Returns:
        ``{"chosen": name or None, "ranking": [verdicts, best first]}``.
    """
    verdicts = [judge(result, v) for v in result["variants"] if v != "vanilla"]
    ranked = sorted(verdicts, key=lambda v: (not v.eligible, -v.paper_gains_reached, -v.extra_improved,
                                             -(v.mean_gain if math.isfinite(v.mean_gain) else -math.inf)))
    chosen = next((v.variant for v in ranked if v.eligible), None)
    return {"chosen": chosen, "ranking": [asdict(v) for v in ranked]}


# -- output -------------------------------------------------------------------------------------------------


def _pct(c: dict) -> str:
    if not c or not math.isfinite(c.get("change", math.nan)):
        return "-"
    lo, hi = c["ci"]
    return f"{c['change']:+.0f}% [{lo:+.0f}, {hi:+.0f}]"


def _diff(c: dict) -> str:
    if not c or not math.isfinite(c.get("mean", math.nan)):
        return "-"
    lo, hi = c["ci"]
    return f"{c['mean']:.2f} ({c['change']:+.2f} [{lo:+.2f}, {hi:+.2f}])"


def markdown(result: dict) -> str:
    """The study as Markdown: one table per method (rows: variants), then the rule's ranking."""
    lines = []
    for m in result["methods"]:
        by = result["cells"].get(m)
        if not by:
            continue
        base = by.get("vanilla", {}).get("region_attribution", {}).get("mean", math.nan)
        ceiling = f"; the most any refinement can gain here: {(1 / base - 1) * 100:+.0f}%" if base > 0 else ""
        paper = f" (paper: +{PAPER_RA_GAIN[m]:.0f}%{ceiling})" if m in PAPER_RA_GAIN else (
            f" ({ceiling[2:]})" if ceiling else "")
        lines += [f"### {m}{paper}", "",
                  "| variant | RA | RA gain, zeroed = 0 | RA gain, zeroed excluded | IoU gain | F1 gain | zeroed | "
                  "no positive mass | AIC gain | SIC gain | SSIM after randomisation | Spearman abs |",
                  "|---|---|---|---|---|---|---|---|---|---|---|---|"]
        for v in result["variants"]:
            c = by.get(v, {})
            ra = c.get("region_attribution", {}).get("mean", math.nan)
            maps = c.get("maps_localization", 0)
            lines.append(
                f"| {v} | {ra:.3f} | {_pct(c.get('region_attribution', {})) if v != 'vanilla' else ''} | "
                f"{_pct(c.get('region_attribution_excl', {})) if v != 'vanilla' else ''} | "
                f"{_pct(c.get('iou', {})) if v != 'vanilla' else ''} | "
                f"{_pct(c.get('f1', {})) if v != 'vanilla' else ''} | "
                f"{c.get('zeroed', 0)} | {c.get('no_positive_localization', 0)}/{maps} | "
                f"{_pct(c.get('aic_auc', {})) if v != 'vanilla' else _mean(c.get('aic_auc'))} | "
                f"{_pct(c.get('sic_auc', {})) if v != 'vanilla' else _mean(c.get('sic_auc'))} | "
                f"{_diff(c.get('ssim', {})) if v != 'vanilla' else _mean(c.get('ssim'))} | "
                f"{_diff(c.get('spearman_abs', {})) if v != 'vanilla' else _mean(c.get('spearman_abs'))} |")
        lines.append("")
    d = result.get("default", {})
    lines += ["### The rule's ranking", "", "| variant | eligible | paper gains reached (of 6) | "
              "gradient/SmoothGrad/LayerCAM improved | mean RA gain | why not eligible |", "|---|---|---|---|---|---|"]
    for r in d.get("ranking", []):
        why = "; ".join(r["reasons"][:3]) + (f" (+{len(r['reasons']) - 3} more)" if len(r["reasons"]) > 3 else "")
        lines.append(f"| {r['variant']} | {'yes' if r['eligible'] else 'no'} | {r['paper_gains_reached']} | "
                     f"{r['extra_improved']} | {r['mean_gain']:+.1f}% | {why} |")
    lines += ["", f"Chosen: **{d.get('chosen') or 'none eligible'}**.", ""]
    return "\n".join(lines)


def _mean(c: dict | None) -> str:
    return "-" if not c or not math.isfinite(c.get("mean", math.nan)) else f"{c['mean']:.3f}"


def frontier_plot(result: dict, path: str | Path) -> Path:
    """Gain against zeroed maps: per candidate, the paper methods' gains reached and the maps it zeroed."""
    from .report import _pyplot, _save

    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    for r in result["default"]["ranking"]:
        z = sum(c.get(r["variant"], {}).get("zeroed", 0) for c in result["cells"].values())
        ax.scatter(z, r["mean_gain"], color="C2" if r["eligible"] else "C3")
        ax.annotate(r["variant"], (z, r["mean_gain"]), fontsize=6, xytext=(3, 2), textcoords="offset points")
    ax.set_xlabel("maps zeroed (all benchmarks)")
    ax.set_ylabel("mean relative RA gain (%), zeroed maps = 0")
    ax.set_xscale("symlog")
    return _save(fig, Path(path))

