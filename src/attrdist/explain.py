"""The main job: explain one image with several methods, vanilla and VAR, from one set of raw maps.

:func:`explain_image` runs :class:`~attrdist.var.VAR` for each method on one class set and returns an
:class:`~attrdist.explanation.Explanation`; ``attrdist explain`` and the web explorer are thin layers over it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import torch
from PIL import Image

from .classes import DEFAULT_CLASSES, ClassSet, class_id, class_rule, class_set, is_ranked, resolve_classes
from .data.grids import grid_classes
from .data.prepare import fit, model_input
from .explain_config import ExplainConfig
from .explanation import Explanation
from .options import DEFAULT_METHODS
from .var import VAR, VARConfig, get_preset

if TYPE_CHECKING:
    from torch import Tensor

    from .models import LoadedModel


__all__ = ["ExplainConfig", "explain_image", "grid_classes"]


def explain_image(
    lm: LoadedModel,
    image: Image.Image,
    *,
    methods: Sequence[str] = DEFAULT_METHODS,
    classes: str | ClassSet | Sequence[int] = DEFAULT_CLASSES,
    target: int | str | None = None,
    preset: str | VARConfig | Sequence[str | VARConfig] | None = None,
    device: str = "cpu",
    crop: bool = True,
    method_options: Mapping[str, Mapping[str, object]] | None = None,
    input_kind: str = "photo",
    **var_overrides: object,
) -> Explanation:
    """Explain one image: per method, the raw maps of every class of one class set, refined by VAR.

    The class set and the target are resolved once, from one forward pass, so every method explains the
    same classes.

    Args:
        lm: The loaded model.
        image: An RGB image.
        methods: Registered method names (each must apply to the model's architecture).
        classes: Class-set spec (``top3+worst``, or a list of class ids or names of the model's label set such as
            ``"tabby, tiger cat, Egyptian cat"``), :class:`~attrdist.classes.ClassSet` or list of class ids.
        target: The explained class, an id or a name (must be in a predefined set); default: the predicted class.
        preset: VAR preset or config (default: :data:`~attrdist.var.DEFAULT_PRESET`, ``smoothed-positive``), or
            a list of them: the same raw maps refined under each, one VAR row each in the figure (one model call).
        device: Torch device (``"cpu"``, ``"cuda"``).
        crop: Apply the model's resize and centre crop; ``False`` feeds the image at its own size (resized
            to the model's input size where the model has a fixed one, as ViTs do).
        method_options: Options per method name.
        input_kind: ``"photo"`` or ``"grid"`` (the words of the figure's footer).
        **var_overrides: Fields of :class:`~attrdist.var.VARConfig` to override.

    Returns:
        The :class:`~attrdist.explanation.Explanation`.

    Raises:
        MethodNotApplicableError: If a method does not apply to the model.
        ValueError: On an invalid class set or target (an unknown name with "did you mean", a name several
            classes share with their ids).
    """
    from .methods import get_method  # the methods import their autograd hooks: not on the help path

    presets = _preset_list(preset)
    cfg = get_preset(presets[0] if presets else None, **var_overrides)
    if not crop and lm.input_size is not None:
        image = fit(image, lm.input_size[::-1])
    shown, x = model_input(image, lm.preprocess, crop=crop)
    x = x.to(device)
    rule, cls, tgt = _class_set_and_target(lm, x, classes, target)
    ranked = is_ranked(rule)
    built = {name: get_method(name, lm, **(method_options or {}).get(name, {})) for name in methods}
    results = {name: VAR(method, classes=cls, preset=cfg, ranked=ranked).attribute(x, target=tgt).to("cpu")
               for name, method in built.items()}
    exp = Explanation(
        image=shown, results=results, class_names=[lm.class_names[c] for c in cls[0].tolist()],
        display_names={name: method.display_name for name, method in built.items()},
        model={"name": lm.name, "weights": lm.weights},
        class_rule=rule.spec if isinstance(rule, ClassSet) else ",".join(map(str, cls[0].tolist())),
        input_kind=input_kind, method_options={m: dict(o) for m, o in (method_options or {}).items() if o},
    )
    return exp.with_presets(presets, **var_overrides) if len(presets) > 1 else exp


def _preset_list(preset: str | VARConfig | Sequence[str | VARConfig] | None) -> list[str | VARConfig]:
    """The presets asked for: none (the default), one, or several (one VAR row each)."""
    if preset is None:
        return []
    return [preset] if isinstance(preset, str | VARConfig) else list(preset)


def _class_set_and_target(lm: LoadedModel, x: Tensor, classes: str | ClassSet | Sequence[int],
                          target: int | str | None) -> tuple[ClassSet | Tensor | None, Tensor, Tensor]:
    """The class-set rule, and the class set ``[1, K]`` and target ``[1]`` it gives for ``x`` (one forward pass).

    Class names (in the set or as the target) are read against the model's label set (:func:`class_set`,
    :func:`class_id`).
    """
    if isinstance(classes, str):  # a spec, or class ids and names: "tiger cat, tabby, 285"
        classes = class_set(classes, lm.class_names)
    if isinstance(target, str):
        target = class_id(target, lm.class_names)
    rule = class_rule(classes, 1, x.device)
    with torch.inference_mode():
        cls, tgt = resolve_classes(rule, lm.model.to(x.device)(x), target)
    return rule, cls, tgt
