"""An ``explain_func`` for Quantus: its metrics score vanilla or VAR-refined maps of any attrdist method.

Quantus calls ``explain_func(model=model, inputs=x [N, C, H, W], targets=y [N], **explain_func_kwargs)`` and
takes attributions as a NumPy array; :func:`explain` gives ``[N, 1, H, W]``, the map of each sample's target
class (Quantus broadcasts the channel axis), raw: Quantus normalises (``normalise=True``) or takes ``|A|``
(``abs=True``) when the metric is told to. Quantus itself is not imported here.

Example:
    >>> import quantus                                                        # doctest: +SKIP
    >>> from attrdist.integrations.quantus import explain
    >>> metric = quantus.RelevanceMassAccuracy(abs=False, normalise=False)    # doctest: +SKIP
    >>> metric(model=model, x_batch=x, y_batch=y, a_batch=None, s_batch=masks, explain_func=explain,
    ...        explain_func_kwargs={"method": "gradcam", "variant": "smoothed-positive"})  # doctest: +SKIP
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch

from ..classes import DEFAULT_CLASSES, ClassesLike
from ..var import VARConfig
from ._target import VANILLA, TargetMap, build_method

if TYPE_CHECKING:
    from torch import nn

    from ..models import LoadedModel

__all__ = ["explain"]


def explain(
    model: nn.Module | LoadedModel, inputs: np.ndarray, targets: np.ndarray | int, *, method: str = "gradcam",
    variant: str | VARConfig = VANILLA, classes: ClassesLike = DEFAULT_CLASSES,
    device: str | torch.device | None = None, **method_options: object,
) -> np.ndarray:
    """Attribution maps of the target classes, in Quantus' ``explain_func`` form.

    Args:
        model: The classifier Quantus evaluates (an ``nn.Module``; a :class:`~attrdist.models.LoadedModel`
            also passes its input normalisation to the methods that use it).
        inputs: Input batch ``[N, C, H, W]`` (NumPy or a tensor), channel first as Quantus hands it over.
        targets: The class to explain per sample ``[N]`` (or one class for all).
        method: A registered method name (``attrdist methods`` lists them).
        variant: ``"vanilla"`` (the method's raw map of the target, the default), or a VAR preset (a key of
            :data:`~attrdist.var.PRESETS`; the default VAR is :data:`~attrdist.var.DEFAULT_PRESET`) or a
            :class:`~attrdist.var.VARConfig`: the target's map refined against the class set.
        classes: The class set VAR explains each target against (``"top3+worst"``: the target, then the two most
            probable other classes and the least probable one).
        device: Where to compute (Quantus passes the metric's ``device``); the model is moved there, as Quantus'
            own ``explain`` does. Default: the model's device.
        **method_options: Options of the method (``relu=False``, ``layer=...``).

    Returns:
        Raw maps ``[N, 1, H, W]`` in the model's floating-point dtype.

    Raises:
        ValueError: On an unknown method or variant (the message lists the names), a method that does not apply
            to the model, or a target outside a predefined class set.

    Example:
        >>> explain(model, x, y, method="gradient", variant="vanilla").shape  # doctest: +SKIP
        (4, 1, 224, 224)
    """
    attributor = build_method(method, model, dict(method_options))
    target_map = TargetMap(attributor, variant, classes)
    net = attributor.model
    if device is not None:
        net.to(device)
    param = next(net.parameters(), None)
    dev = torch.device(device) if device is not None else (param.device if param is not None else torch.device("cpu"))
    dtype = param.dtype if param is not None and param.dtype.is_floating_point else torch.get_default_dtype()
    x = torch.as_tensor(inputs, dtype=dtype, device=dev)
    y = torch.as_tensor(targets, dtype=torch.long, device=dev).flatten()
    maps = target_map(x, y)
    return maps[:, None].detach().cpu().numpy()
