"""The main job: explain one image with several methods, vanilla and VAR, from one set of raw maps.

:func:`explain_image` computes; :func:`save_explanation` writes the figure, the JSON record and the
raw arrays. The command ``attrdist explain`` and the web explorer are thin layers over these two.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from . import __version__
from .classes import ClassSet, most_probable, parse_class_set
from .methods import get_method
from .models import LoadedModel
from .var import DEFAULT_PRESET, VARConfig, VAROutput, get_preset, var

__all__ = [
    "Explanation",
    "MethodResult",
    "explain_image",
    "explanation_arrays",
    "grid_classes",
    "save_explanation",
    "with_var",
]


@dataclass
class MethodResult:
    """Vanilla and VAR maps of one method for one image.

    Attributes:
        maps: Raw maps ``[K, H, W]``.
        var: The VAR output for the ``K`` maps.
        seconds: Time of the attribution call (the VAR step excluded).
        vjp: How the K gradients were computed.
    """

    maps: Tensor
    var: VAROutput
    seconds: float
    vjp: str


@dataclass
class Explanation:
    """Everything ``attrdist explain`` shows and saves for one image.

    Attributes:
        image: The RGB image the model saw (after preprocessing, before normalisation).
        classes: The class set, ``K`` indices.
        class_names: Names of the classes of the set.
        probabilities: Softmax probability of each class of the set.
        target: Index of the explained class in the set.
        results: Per method, its :class:`MethodResult`.
        config: The VAR parameters.
        model: Model name and weights.
        class_rule: How the class set was chosen.
        source: Where the image came from.
    """

    image: Image.Image
    classes: list[int]
    class_names: list[str]
    probabilities: list[float]
    target: int
    results: dict[str, MethodResult]
    config: VARConfig
    model: dict[str, str]
    class_rule: str
    source: str = ""
    extra: dict = field(default_factory=dict)

    def record(self) -> dict:
        """The JSON-serialisable record saved beside the figure."""
        return {
            "attrdist": __version__,
            "source": self.source,
            "model": self.model,
            "input_size": list(self.image.size[::-1]),
            "methods": list(self.results),
            "preset": self.config.to_dict(),
            "temperatures": list(self.config.temperatures),
            "class_rule": self.class_rule,
            "classes": [
                {"index": c, "name": n, "probability": p}
                for c, n, p in zip(self.classes, self.class_names, self.probabilities, strict=True)
            ],
            "target": {"index": self.classes[self.target], "name": self.class_names[self.target]},
            "timings_s": {m: r.seconds for m, r in self.results.items()},
            "vjp": {m: r.vjp for m, r in self.results.items()},
            "zeroed_by_var": {m: [bool(not k.any()) for k in r.var.keep] for m, r in self.results.items()},
            **self.extra,
        }


def grid_classes(lm: LoadedModel, cells: Sequence[Image.Image], device: str = "cpu") -> list[int]:
    """The predicted class of each cell image, classified on its own (a grid's class set).

    Args:
        lm: The model.
        cells: The cell images.
        device: Torch device.

    Returns:
        One class per cell; duplicates are replaced by the cell's next most probable class.
    """
    x = torch.stack([lm.preprocess(c) for c in cells]).to(device)
    with torch.no_grad():
        order = lm.model.to(device)(x).argsort(1, descending=True).tolist()
    chosen: list[int] = []
    for ranked in order:
        chosen.append(next(c for c in ranked if c not in chosen))
    return chosen


def explain_image(
    lm: LoadedModel,
    image: Image.Image,
    methods: Sequence[str] = ("gradcam", "guided_backprop"),
    classes: str | ClassSet | Sequence[int] = "top3+worst",
    target: int | None = None,
    preset: str | VARConfig = DEFAULT_PRESET,
    device: str = "cpu",
    resize: bool = True,
    method_options: dict[str, dict] | None = None,
    **var_overrides: object,
) -> Explanation:
    """Explain one image: raw maps of every class of the set per method, then VAR on those maps.

    Args:
        lm: The loaded model.
        image: An RGB image.
        methods: Registered method names.
        classes: Class-set spec, :class:`ClassSet` or list of classes.
        target: The explained class (must be in a predefined set); default: the predicted class.
        preset: VAR preset or config.
        device: Torch device (``"cpu"``, ``"cuda"``).
        resize: Apply the model's resize and centre crop; ``False`` feeds the image at its own size.
        method_options: Options per method name.
        **var_overrides: Fields of :class:`VARConfig` to override.

    Returns:
        The :class:`Explanation`.
    """
    cfg = get_preset(preset, **var_overrides)
    rule = parse_class_set(classes)
    shown = lm.preprocess.crop_image(image) if resize else image
    x = lm.preprocess.normalize(lm.preprocess.to_unit(shown))[None].to(device)
    model = lm.model.to(device)
    with torch.no_grad():
        logits = model(x)
    if rule.fixed and target is None:
        target = int(most_probable(torch.tensor([rule.fixed], device=device), logits)[0])
    cls = rule(logits, target)
    k_target = int((cls[0] == (cls[0, 0] if target is None else target)).nonzero()[0])
    probs = logits.softmax(1)[0, cls[0]].tolist()
    results: dict[str, MethodResult] = {}
    for name in methods:
        method = get_method(name, model, **(method_options or {}).get(name, {}))
        start = time.perf_counter()
        att = method.explain(x, cls)
        seconds = time.perf_counter() - start
        out = var(att.maps, preset=cfg, warn_identical=not method.class_agnostic)
        results[name] = MethodResult(
            maps=att.maps[0].cpu(), var=_first(out), seconds=seconds, vjp=att.vjp
        )
    return Explanation(
        image=shown, classes=cls[0].tolist(), class_names=[lm.class_names[c] for c in cls[0].tolist()],
        probabilities=probs, target=k_target, results=results, config=cfg,
        model={"name": lm.name, "weights": lm.weights}, class_rule=rule.spec,
    )


def _first(out: VAROutput) -> VAROutput:
    return VAROutput(refined=out.refined[0].cpu(), q=out.q[0].cpu(), keep=out.keep[0].cpu(), config=out.config)


def with_var(exp: Explanation, preset: str | VARConfig = DEFAULT_PRESET, **overrides: object) -> Explanation:
    """The same explanation with VAR re-run on its cached raw maps (no model call).

    Args:
        exp: An explanation.
        preset: VAR preset or config.
        **overrides: Fields of :class:`VARConfig` to override.

    Returns:
        A new explanation sharing the raw maps.
    """
    cfg = get_preset(preset, **overrides)
    results = {
        name: MethodResult(maps=r.maps, var=_first(var(r.maps[None], preset=cfg, warn_identical=False)),
                           seconds=r.seconds, vjp=r.vjp)
        for name, r in exp.results.items()
    }
    return dataclasses.replace(exp, results=results, config=cfg)


def explanation_arrays(exp: Explanation) -> dict[str, np.ndarray]:
    """The arrays saved as ``<stem>.npz``: the image, the class set, and per method raw maps, q, refined maps."""
    arrays: dict[str, np.ndarray] = {
        "image": np.asarray(exp.image, dtype=np.uint8),
        "classes": np.asarray(exp.classes, dtype=np.int64),
        "probabilities": np.asarray(exp.probabilities, dtype=np.float64),
    }
    for name, r in exp.results.items():
        arrays[f"maps_{name}"] = r.maps.numpy()
        arrays[f"q_{name}"] = r.var.q.numpy().astype(np.float32)
        arrays[f"refined_{name}"] = r.var.refined.numpy()
    return arrays


def save_explanation(
    exp: Explanation, out_dir: str | Path, stem: str, formats: Sequence[str] = ("png",), **figure_options: object
) -> list[Path]:
    """Write ``<stem>.<format>`` (the figure), ``<stem>.json`` and ``<stem>.npz`` into ``out_dir``.

    Args:
        exp: The explanation.
        out_dir: Output folder (created if missing).
        stem: File name stem.
        formats: Figure formats (``png``, ``pdf``, ``svg``).
        **figure_options: Passed to :func:`attrdist.viz.explanation_figure`.

    Returns:
        The written paths.
    """
    from .viz import explanation_figure

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    fig = explanation_figure(exp, **figure_options)
    try:
        for fmt in formats:
            path = out / f"{stem}.{fmt}"
            fig.savefig(path, dpi=100, format=fmt)
            written.append(path)
    finally:
        import matplotlib.pyplot as plt

        plt.close(fig)
    path = out / f"{stem}.json"
    path.write_text(json.dumps(exp.record(), indent=2))
    written.append(path)
    path = out / f"{stem}.npz"
    np.savez_compressed(path, **explanation_arrays(exp))
    written.append(path)
    return written
