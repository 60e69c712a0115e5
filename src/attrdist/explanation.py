"""An explanation of one image: per method, the raw and VAR-refined maps of one class set, and its files.

:func:`attrdist.explain.explain_image` computes an :class:`Explanation`; ``attrdist explain`` and the web
explorer show and save it (figure, JSON record, npz arrays); :meth:`Explanation.refine` re-applies VAR with
other parameters to the same raw maps (what the explorer's controls do).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image

from ._lazy import lazy
from .var import VARConfig, VARResult
from .version import __version__

if TYPE_CHECKING:
    from matplotlib.figure import Figure

torch = lazy("torch")

__all__ = ["Explanation"]


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
    """

    image: Image.Image
    results: dict[str, VARResult]
    class_names: list[str]
    display_names: dict[str, str] = field(default_factory=dict)
    model: dict[str, str] = field(default_factory=dict)
    class_rule: str = ""
    source: str = ""
    settings: dict = field(default_factory=dict)

    @property
    def _first(self) -> VARResult:
        return next(iter(self.results.values()))

    @property
    def classes(self) -> list[int]:
        """The class set (class ids)."""
        return self._first.classes[0].tolist()

    @property
    def target(self) -> int:
        """The explained class (a class id in :attr:`classes`)."""
        return int(self._first.target[0])

    @property
    def probabilities(self) -> list[float]:
        """Softmax probability of each class of the set."""
        return self._first.probabilities[0].tolist()

    @property
    def config(self) -> VARConfig:
        """The VAR parameters of the refined maps."""
        return self._first.config

    def refine(self, preset: str | VARConfig | None = None, **overrides: object) -> Explanation:
        """The same explanation with VAR re-applied to its raw maps under other parameters (no model call)."""
        return dataclasses.replace(self, results={m: r.refine(preset, **overrides) for m, r in self.results.items()})

    def with_target(self, class_id: int) -> Explanation:
        """The same explanation explaining another class of its set (no model call: every class has its maps).

        Raises:
            ValueError: If the class is not in the set.
        """
        if class_id not in self.classes:
            raise ValueError(f"class {class_id} is not in the class set {self.classes}")
        results = {m: dataclasses.replace(r, target=torch.full_like(r.target, class_id))
                   for m, r in self.results.items()}
        return dataclasses.replace(self, results=results)

    def caption(self) -> str:
        """One line under the figure: what the probabilities are, and what the rows show."""
        low = max(self.probabilities) < 0.5
        why = (" The probabilities are the model's for the whole image: in a grid each class fills part of it, so "
               "they are low." if low else "")
        return (f"{self.model.get('name', '')}: class set {self.class_rule}; vanilla rows show each class's raw map, "
                f"VAR rows the refined maps; one colour scale per row.{why}")

    def record(self) -> dict:
        """The JSON-serialisable record saved beside the figure."""
        return {
            "attrdist": __version__,
            "source": self.source,
            "model": self.model,
            "input_size": list(self.image.size[::-1]),
            "methods": list(self.results),
            "settings": self.settings,
            "preset": self.config.to_dict(),
            "class_rule": self.class_rule,
            "classes": [
                {"index": c, "name": n, "probability": p}
                for c, n, p in zip(self.classes, self.class_names, self.probabilities, strict=True)
            ],
            "target": {"index": self.target, "name": self.class_names[self.classes.index(self.target)]},
            "timings_s": {m: r.seconds for m, r in self.results.items()},
            "vjp": {m: r.vjp for m, r in self.results.items()},
            "zeroed_by_var": {m: [bool(not k.any()) for k in r.keep[0]] for m, r in self.results.items()},
        }

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
        return arrays

    def figure(self, **options: Any) -> Figure:
        """The paper-style figure (:func:`attrdist.viz.explanation_figure`; ``options``: ``sign``, ...)."""
        from .viz import explanation_figure

        return explanation_figure(self, **options)

    def save(self, out_dir: str | Path, stem: str, formats: Sequence[str] = ("png",), *, dpi: int = 200,
             **figure_options: Any) -> list[Path]:
        """Write ``<stem>.<format>`` (the figure), ``<stem>.json`` and ``<stem>.npz`` into ``out_dir``.

        Args:
            out_dir: Output folder (created if missing).
            stem: File name stem.
            formats: Figure formats (``png``, ``pdf``, ``svg``; PDF and SVG are vector graphics).
            dpi: Resolution of PNG figures.
            **figure_options: Passed to :func:`attrdist.viz.explanation_figure` (``sign``, ``multiply_input``).

        Returns:
            The written paths.
        """
        from .viz import save_figure

        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        figure = self.figure(**figure_options)
        written = save_figure(figure, *(out / f"{stem}.{f}" for f in formats), dpi=dpi)
        path = out / f"{stem}.json"
        path.write_text(json.dumps(self.record(), indent=2))
        written.append(path)
        path = out / f"{stem}.npz"
        np.savez_compressed(path, **self.arrays())
        written.append(path)
        return written
