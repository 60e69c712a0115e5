"""The VAR variant study: every candidate refinement on localisation, insertion and the sanity check at once.

``attrdist bench study --out runs/study`` runs the three benchmarks with the same methods and the same VAR
variants (each a resumable run folder under the study's folder, on the same runner), then puts their results side
by side per method and variant, so that a variant cannot look good on one axis while failing another, measured as
the paper measures:

* localisation on 2x2 grids: region attribution (RA), IoU and F1;
* insertion (PIC): AIC and SIC of the target map;
* sanity: the Spearman correlation of ``|H|`` and of the signed map with the original model's map at several
  randomisation depths (lower is better: the map must depend on the weights).

Every comparison goes through the one aggregation (:mod:`attrdist.bench.results`): paired over the maps both
vanilla and the candidate could score, with bootstrap intervals over items, Bonferroni-corrected for the number
of tests per candidate; each metric's direction is the metric registry's. The default VAR is chosen by
:func:`choose_default`, a rule committed before the second study's results (docs/presets.md, "The default VAR").
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .._files import write_text_atomic
from ..options import opt
from .base import Benchmark, RunResult
from .config import RunConfig
from .insertion import Insertion, InsertionConfig
from .localization import Localization, LocalizationConfig
from .ranking import UNSCORABLE_SHARE, Verdict, judge, rank
from .records import FRACTION, MapCheck, Score, unit_values
from .registry import register_benchmark
from .report.figures import frontier_plot
from .results import Cell, aggregate
from .sanity import Sanity, SanityConfig
from .store import ResultStore

__all__ = ["CANDIDATES", "PAPER_RA_GAIN", "SECOND_STUDY", "UNSCORABLE_SHARE", "Study", "StudyConfig", "Verdict",
           "analyse", "choose_default", "markdown", "run_study"]

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
    **{name: {"preset": "normalized", **fields} for name, fields in dict[str, dict[str, object]]({
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
    }).items()},
}

#: The candidates of the second study (2026-11-30): the three presets of the paper's formula and the authors' code,
#: and the four refinements that stayed eligible when the first study's data were re-read with the paper's
#: measures and never zeroed a map there (the `smoothed` preset is ``n+abs+smooth.02+t.1-.3-1+keep.05``). Cut from
#: eleven to seven for compute (about 5 min of insertion per candidate on two cores) before any result was read.
SECOND_STUDY: tuple[str, ...] = (
    "paper", "authors-code", "normalized", "n+keep.05", "n+t.1-.3-1+keep.05", "n+positive+smooth.02+t.1-.3-1+keep.05",
    "n+abs+smooth.02+t.1-.3-1+keep.05")

#: Localisation and insertion metrics of the rule (higher is better), and its sanity similarities (the paper's
#: Spearman correlations; lower is better once weights are randomised).
LOCALIZATION = ("region_attribution", "iou", "f1")
INSERTION = ("aic_auc", "sic_auc")
SANITY = ("spearman_abs", "spearman")


def _candidates(names: tuple[str, ...] = ()) -> dict[str, dict]:
    return {v: CANDIDATES[v] for v in names}


@dataclass(kw_only=True)
class StudyConfig(RunConfig):
    """What the study runs (saved as ``study.yaml`` beside its results).

    The fields of :class:`~attrdist.bench.config.RunConfig` (``variants``: the candidates, any preset or
    ``name=preset+overrides``; :data:`CANDIDATES` names the studied ones; ``max_items``, when set, caps each
    benchmark's items; ``first_item``: images skipped before insertion and sanity take theirs, the first study
    used the first 8 photos), and:

    Attributes:
        grids: Number of 2x2 grids for localisation.
        insertion_images: Number of images for insertion.
        sanity_images: Number of images for the sanity check.
        depths: Randomisation depths of the sanity check, evenly spaced, 0 (the original) included.
        bootstrap: Bootstrap resamples of the intervals.
    """

    dataset: str = field(default="photos", metadata=opt("dataset with grids and images (KIND[:ARG])"))
    methods: list[str] = field(default_factory=lambda: [*PAPER_RA_GAIN, *EXTRA_METHODS],
                               metadata=opt("comma-separated methods (default: the paper's six and three more)"))
    variants: dict[str, dict] = field(default_factory=lambda: _candidates(SECOND_STUDY), metadata=opt(
        "VAR candidates: name=preset[+normalisation],... (the second study's seven by default)"))
    seed: int = field(default=1, metadata=opt("seed of grids, randomisation and bootstrap"))
    first_item: int = field(default=16, metadata=opt("images skipped before insertion and sanity take theirs"))
    grids: int = field(default=48, metadata=opt("2x2 grids for localisation"))
    insertion_images: int = field(default=32, metadata=opt("images for insertion (PIC)"))
    sanity_images: int = field(default=32, metadata=opt("images for the sanity check"))
    depths: int = field(default=4, metadata=opt("randomisation depths of the sanity check, 0 included"))
    bootstrap: int = field(default=20000, metadata=opt("bootstrap resamples"))


@register_benchmark
class Study(Benchmark):
    """The variant study: localisation, insertion and the sanity check of the same candidates, analysed together."""

    name = "study"
    config = StudyConfig
    summary = "the VAR variant study: every candidate on localisation, insertion and sanity, and the default rule"
    examples = ("attrdist bench study --out runs/study",
                "attrdist bench study --dataset photos:/data/photos --variants paper,normalized --out runs/study",
                "torchrun --nproc_per_node 2 -m attrdist bench study --out runs/study")

    @classmethod
    def runs(cls, config: RunConfig) -> dict[str, tuple[type[Benchmark], RunConfig]]:
        """The three benchmarks of the study, each in the subfolder of its name, on the same methods and variants."""
        if not isinstance(config, StudyConfig):
            raise TypeError(f"the study takes a StudyConfig, got {type(config).__name__}")
        common = {f.name: getattr(config, f.name) for f in dataclasses.fields(RunConfig)
                  if f.name not in ("max_items", "first_item")}

        def cap(n: int) -> int:
            return min(n, config.limit) if config.limit else n

        return {
            Localization.name: (Localization, LocalizationConfig(**common, max_items=cap(config.grids),
                                                                 selection="random")),
            Insertion.name: (Insertion, InsertionConfig(**common, max_items=cap(config.insertion_images),
                                                        first_item=config.first_item)),
            Sanity.name: (Sanity, SanityConfig(**common, max_items=cap(config.sanity_images),
                                               first_item=config.first_item, depths=config.depths,
                                               similarities=list(SANITY))),
        }

    @classmethod
    def finish(cls, config: RunConfig, result: RunResult) -> None:
        """Analyse the three runs: ``study.yaml``, ``study.json``, ``study.md`` and ``frontier.png``."""
        assert isinstance(config, StudyConfig)
        out = result.folder
        config.save(out / "study.yaml")
        analysis = analyse(out, bootstrap=config.bootstrap, seed=config.seed)
        write_text_atomic(out / "study.json", json.dumps(analysis, indent=1))
        write_text_atomic(out / "study.md", markdown(analysis))
        frontier_plot([(r["variant"], r["eligible"], r["mean_ra_change"],
                        sum(b[0] for b in analysis["unscorable"].get(r["variant"], {}).values()))
                       for r in analysis["default"]["ranking"]], out / "frontier.png")

    @staticmethod
    def analysis(result: RunResult) -> dict:
        """The analysis :meth:`finish` wrote (``study.json``; empty in a torchrun process but the first)."""
        path = result.folder / "study.json"
        return json.loads(path.read_text()) if path.is_file() else {}

    @classmethod
    def result_text(cls, result: RunResult) -> str:
        """The study's tables and the rule's choice."""
        analysis = cls.analysis(result)
        if not analysis:
            return ""
        d = analysis["default"]
        verdict = "eligible" if d["eligible"] else "none eligible: the fewest harms"
        return f"{markdown(analysis)}\nchosen: {d['chosen']} ({verdict})"


#: Run (or resume) the study: ``run_study(config, out_dir, shard=None, lm=None)``; :meth:`Study.analysis` of what
#: it returns is the analysis.
run_study = Study.run


# -- analysis -----------------------------------------------------------------------------------------------


def _cell(c: Cell) -> dict:
    return {"mean": c.mean, "base": c.base, "change": c.change, "ci": list(c.ci), "n": c.n}


def comparisons(n_methods: int, n_depths: int) -> int:
    """The number of harm (and of benefit) tests per candidate: each method on every metric of the rule."""
    return n_methods * (len(LOCALIZATION) + len(INSERTION) + len(SANITY) * n_depths)


def analyse(study_dir: str | Path, bootstrap: int = 20000, seed: int = 0, alpha: float = 0.05) -> dict:
    """The study's table from its run folders, through the one aggregation (:func:`~attrdist.bench.results.aggregate`).

    Every change is paired (the maps both vanilla and the candidate could score) with a percentile-bootstrap
    interval over items at the Bonferroni-corrected level ``1 - 2 alpha / m`` (one-sided tests at ``alpha / m``,
    ``m`` = :func:`comparisons`): a change whose interval lies entirely on one side is significant at family-wise
    level ``alpha`` per candidate.

    Args:
        study_dir: The folder :func:`run_study` wrote (``localization/``, ``insertion/``, ``sanity/``).
        bootstrap: Resamples of the intervals.
        seed: Seed of the resampling.
        alpha: Family-wise error rate per candidate.

    Returns:
        ``{"methods", "variants", "depths", "level", "cells", "unscorable", "default"}``: ``cells[method][variant]``
        holds, per metric (sanity metrics as ``NAME@FRACTION``), the paired means, the change and its interval;
        ``unscorable[variant]`` the maps it could not score and the maps it refined, per benchmark;
        ``default`` is :func:`choose_default`'s verdict.
    """
    root = Path(study_dir)
    data: dict[str, _Run] = {}
    for bench in (Localization.name, Insertion.name, Sanity.name):
        db = root / bench / "results.sqlite"
        if db.exists():
            with ResultStore(db, read_only=True) as store:
                data[bench] = _Run.read(store)
    fractions = sorted({f for f in data[Sanity.name].fractions.values() if f > 0}) if Sanity.name in data else []
    methods = list(dict.fromkeys(m for run in data.values() for m in run.config.get("methods", [])))
    variants = _variants(root, data)
    m = comparisons(len(methods), len(fractions))
    level = 1 - 2 * alpha / m
    cells: dict[str, dict[str, dict]] = defaultdict(lambda: defaultdict(dict))
    unscorable: dict[str, dict[str, list[int]]] = defaultdict(dict)
    for bench, run in data.items():
        for scores, maps, suffix in run.parts():
            agg = aggregate(scores, maps, bootstrap=bootstrap, seed=seed, level=level)
            for (method, variant, metric), c in agg.cells.items():
                if metric in (*LOCALIZATION, *INSERTION, *SANITY):
                    cells[method][variant][metric + suffix] = _cell(c)
            for (method, variant), (dead, total) in agg.unscorable.items():
                for tally in (unscorable[variant].setdefault(bench, [0, 0]),
                              cells[method][variant].setdefault(f"unscorable_{bench}", [0, 0])):
                    tally[0] += dead
                    tally[1] += total
    result = {"methods": methods, "variants": variants, "depths": fractions, "comparisons": m, "level": level,
              "cells": {k: {v: dict(c) for v, c in by.items()} for k, by in cells.items()},
              "unscorable": {v: dict(b) for v, b in unscorable.items()}}
    result["default"] = choose_default(result)
    return result


@dataclass
class _Run:
    """One benchmark's records of the study."""

    config: dict
    scores: list[Score]
    maps: list[MapCheck]
    fractions: dict[str, float]  # the sanity check's depth unit -> fraction of blocks randomised

    @classmethod
    def read(cls, store: ResultStore) -> _Run:
        return cls(store.config(), store.scores(), store.maps(),
                   unit_values(store.unit_attributes(), FRACTION))

    def parts(self) -> list[tuple[list[Score], list[MapCheck], str]]:
        """What is compared at once: all of it, or the sanity check's randomised depths one by one (``@0.50``)."""
        if not self.fractions:
            return [(self.scores, self.maps, "")]
        return [([s for s in self.scores if s.unit == unit], [m for m in self.maps if m.unit == unit], f"@{f:.2f}")
                for unit, f in sorted(self.fractions.items(), key=lambda u: u[1]) if f > 0]


def _variants(root: Path, data: dict[str, _Run]) -> list[str]:
    """Vanilla and the candidates, in the study's own order (``study.yaml``; the stores keep theirs sorted)."""
    variants = list(dict.fromkeys(["vanilla", *(v for run in data.values() for v in run.config.get("variants", {}))]))
    if (root / "study.yaml").exists():
        import yaml

        saved = yaml.safe_load((root / "study.yaml").read_text())
        order = ["vanilla", *(saved.get("variants") or {} if isinstance(saved, dict) else {})]
        variants = [v for v in order if v in variants] + [v for v in variants if v not in order]
    return variants


# -- the rule (pre-registered: committed before the second study's results) -------------------------------------


def _rule_metrics(result: dict) -> list[str]:
    """Every metric the rule reads: localisation, insertion, and each sanity similarity at every depth."""
    return [*LOCALIZATION, *INSERTION, *(f"{x}@{f:.2f}" for x in SANITY for f in result["depths"])]


def judge_candidate(result: dict, variant: str) -> Verdict:
    """A candidate under the rule of :func:`choose_default` (:func:`~attrdist.bench.ranking.judge` on the study)."""
    changes = {}
    for method in (m for m in result["methods"] if m in result["cells"]):
        c = result["cells"][method].get(variant, {})
        for metric in _rule_metrics(result):
            if metric in c:
                got = c[metric]
                changes[(method, metric)] = Cell(got["mean"], got["base"], got["change"], (got["ci"][0], got["ci"][1]),
                                                 got["n"], 0)
    unscorable = {b: (n[0], n[1]) for b, n in result["unscorable"].get(variant, {}).items()}
    base = {b: (n[0], n[1]) for b, n in result["unscorable"].get("vanilla", {}).items()}
    return judge(variant, changes, unscorable, base)


def choose_default(result: dict) -> dict:
    """The rule, fixed before the second study ran: which candidate becomes the default VAR.

    The paper's own measures, each change against vanilla paired over the maps both could score, with
    Bonferroni-corrected bootstrap intervals (:func:`analyse`): localisation RA, IoU, F1; insertion AIC and SIC;
    the sanity check's Spearman correlation of ``|H|`` and of the signed map with the original model's map at
    every randomisation depth but 0 (lower is better: the map must depend on the weights). No SSIM or HOG
    similarity: they rise whenever sparse maps share zeros, also between maps of unrelated photos.

    Eligible, and ranked, by the one rule (:mod:`~attrdist.bench.ranking`): no method with a significantly worse
    change on any of these metrics, and no benchmark where the candidate leaves more than 1% of the maps it
    refines unscorable beyond those vanilla cannot score; then the most significant improvements (method x
    metric), then the largest mean relative RA change. If no candidate is eligible, the default is the candidate
    with the fewest harms (then the same ranking): there is always a winner, and docs/presets.md says how it fails.

    Returns:
        ``{"chosen": name, "eligible": bool, "ranking": [verdicts, best first]}``.
    """
    ranked = rank(judge_candidate(result, v) for v in result["variants"] if v != "vanilla")
    chosen = ranked[0] if ranked else None
    return {"chosen": chosen.variant if chosen else None, "eligible": bool(chosen and chosen.eligible),
            "ranking": [asdict(v) for v in ranked]}


# -- output -------------------------------------------------------------------------------------------------


def _fmt_change(c: dict, relative: bool) -> str:
    if not c or not math.isfinite(c.get("change", math.nan)):
        return "-"
    lo, hi = c["ci"]
    return (f"{c['change']:+.0f}% [{lo:+.0f}, {hi:+.0f}]" if relative
            else f"{c['mean']:.2f} ({c['change']:+.2f} [{lo:+.2f}, {hi:+.2f}])")


def markdown(result: dict) -> str:
    """The study as Markdown: one table per method (rows: variants), then the rule's ranking."""
    sanity = [f"{x}@{f:.2f}" for x in SANITY for f in result["depths"]]
    lines = [f"Changes against vanilla on the maps both could score; intervals: paired bootstrap over items at "
             f"{result['level'] * 100:.3f}% (Bonferroni over {result['comparisons']} tests per candidate). "
             "Sanity: Spearman correlation with the original model's map at the fraction of blocks randomised "
             "(lower is better).", ""]
    for m in result["methods"]:
        by = result["cells"].get(m)
        if not by:
            continue
        lines += [f"### {m}", "", "| variant | RA | RA | IoU | F1 | AIC | SIC | " + " | ".join(sanity)
                  + " | unscorable (loc/ins/san) |", "|---" * (8 + len(sanity)) + "|"]
        for v in result["variants"]:
            c = by.get(v, {})
            ra = c.get("region_attribution", {}).get("mean", math.nan)
            cols = ([_fmt_change(c.get(x, {}), True) if v != "vanilla" else _mean(c.get(x))
                     for x in (*LOCALIZATION, *INSERTION)]
                    + [_fmt_change(c.get(x, {}), False) if v != "vanilla" else _mean(c.get(x)) for x in sanity])
            dead = "/".join(str(c.get(f"unscorable_{b}", [0])[0]) for b in ("localization", "insertion", "sanity"))
            lines.append(f"| {v} | {ra:.3f} | " + " | ".join(cols) + f" | {dead} |")
        lines.append("")
    d = result.get("default", {})
    lines += ["### The rule's ranking", "", "| variant | eligible | significant improvements | mean RA change | "
              "harms |", "|---|---|---|---|---|"]
    for r in d.get("ranking", []):
        why = "; ".join(r["harms"][:3]) + (f" (+{len(r['harms']) - 3} more)" if len(r["harms"]) > 3 else "")
        lines.append(f"| {r['variant']} | {'yes' if r['eligible'] else 'no'} | {r['benefits']} | "
                     f"{r['mean_ra_change']:+.1f}% | {len(r['harms'])}{': ' + why if why else ''} |")
    verdict = "eligible" if d.get("eligible") else "none eligible: the fewest harms"
    lines += ["", f"Chosen: **{d.get('chosen')}** ({verdict}).", ""]
    return "\n".join(lines)


def _mean(c: dict | None) -> str:
    return "-" if not c or not math.isfinite(c.get("mean", math.nan)) else f"{c['mean']:.3f}"
