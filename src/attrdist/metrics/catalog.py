"""The built-in metrics: names, tasks, directions and summaries, with their functions imported on first use.

:mod:`attrdist.metrics` registers :data:`BUILT_IN` in :data:`~attrdist.metrics.base.METRICS`, in this order (the
report's). Reading them costs no import of torch: a localisation metric's function is ``score_<name>`` of
:mod:`.localization`, a similarity measure's is ``<name>`` of :mod:`.similarity`, both imported when the function
is first asked for (:attr:`Metric.fn <attrdist.metrics.base.Metric.fn>`); insertion and count metrics are computed
by their benchmark.
"""

from __future__ import annotations

from functools import cache, partial

from .base import Deferred, Metric, MetricFn

__all__ = ["BUILT_IN"]


@cache
def _localization(name: str) -> MetricFn:
    from . import localization

    fn: MetricFn = getattr(localization, f"score_{name}")
    return fn


@cache
def _similarity(name: str) -> MetricFn:
    from . import similarity

    fn: MetricFn = getattr(similarity, name)
    return fn


def _metrics(task: str, rows: tuple[tuple[str, bool, str], ...], *, function: bool = True, default: bool = True,
             relative: bool = True) -> tuple[Metric, ...]:
    """Metrics ``(name, higher_is_better, summary)`` of a task (``function``: the task's module defines them)."""
    loaders = {"localization": _localization, "similarity": _similarity}
    return tuple(
        Metric(name, task, higher, Deferred(partial(loaders[task], name)) if function else None, summary, default,
               relative)
        for name, higher, summary in rows
    )


#: Every built-in metric, in the order reports list them.
BUILT_IN: tuple[Metric, ...] = (
    *_metrics("count", (
        ("zeroed", False, "maps that cannot be scored (all zero after VAR, or constant), counted, never averaged"),
        ("no_positive", False, "maps without positive mass (nothing for region attribution to share), counted"),
    ), function=False),
    *_metrics("localization", (
        ("region_attribution", True, "share of the positive attribution inside the region (energy pointing game)"),
        ("iou", True, "intersection over union of the binarised map and the region"),
        ("precision", True, "share of the binarised map inside the region"),
        ("recall", True, "share of the region covered by the binarised map"),
        ("f1", True, "harmonic mean of precision and recall"),
    )),
    *_metrics("insertion", (
        ("sic_auc", True, "area under the softmax information curve (PIC), per image"),
        ("aic_auc", True, "area under the accuracy information curve (PIC), per image"),
        ("sic_median_curve", True, "area under the median SIC curve over images (the PIC paper's aggregate)"),
        ("aic_median_curve", True, "area under the median AIC curve over images (the PIC paper's aggregate)"),
        ("insertion_auc", True, "RISE insertion: area under the class probability as salient pixels are inserted"),
        ("deletion_auc", False, "RISE deletion: area under the class probability as salient pixels are deleted"),
    ), function=False),
    # in a sanity check the similarity to the original map should fall as weights are randomised: lower is better
    *_metrics("similarity", (
        ("spearman_abs", False, "Spearman rank correlation of |map| (Adebayo et al.)"),
        ("spearman", False, "Spearman rank correlation of the signed maps"),
        ("pearson", False, "Pearson correlation of the signed maps"),
        ("cosine", False, "cosine similarity of the signed maps"),
        ("ssim", False, "SSIM of the maps scaled to [-1, 1], window 5 (the paper)"),
        ("hog_pearson", False, "Pearson correlation of HOG features (the paper)"),
    ), relative=False),
    *_metrics("similarity", (
        ("ssim_notebook", False, "SSIM as in the authors' notebook (min-max [0, 1], Gaussian window)"),
        ("hog_spearman", False, "Spearman correlation of HOG features (the authors' notebook)"),
    ), relative=False, default=False),
)
