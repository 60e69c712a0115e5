"""Architecture families: what attribution needs to know about each kind of model.

One entry per family: how to recognise it, its default CAM layer and the Zennit canonizers LRP needs.
Adding a family is one :func:`register_family` call.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol, cast

from torch import nn

from ..registry import Registry
from .hf import hf_model
from .vit import vit_info

if TYPE_CHECKING:  # zennit (and with it torchvision's models) is imported when LRP needs a canonizer
    from zennit.canonizers import Canonizer

__all__ = ["BLOCK_KINDS", "FAMILIES", "Family", "default_cam_layer", "family_of", "generic_blocks", "holds_weights",
           "register_family"]

#: Which of a family's blocks the sanity check randomises: ``"weights"`` (the blocks that hold a weight
#: other than a normalisation layer's) or ``"all"`` (also normalisation-only modules such as ResNet's ``bn1``).
BLOCK_KINDS = ("weights", "all")


def _no_canonizers() -> list[Canonizer]:
    return []


@dataclass(frozen=True)
class Family:
    """What attribution needs to know about one architecture family.

    Attributes:
        name: Family name.
        blocks: ``model -> block names`` from the output towards the input (cascading randomisation);
            default :func:`generic_blocks`.
        matches: ``model -> bool``.
        cam_layer: Default CAM layer: a dotted module name, or ``model -> name``.
        canonizers: Factory of the Zennit canonizers LRP needs (fresh instances per call).
        note: One line shown by ``attrdist models``.
    """

    name: str
    matches: Callable[[nn.Module], bool]
    cam_layer: str | Callable[[nn.Module], str]
    canonizers: Callable[[], list[Canonizer]] = field(default=_no_canonizers)
    note: str = ""
    blocks: Callable[[nn.Module], list[str]] | None = None

    def cam_layer_of(self, model: nn.Module) -> str:
        """The default CAM layer's dotted name for ``model``."""
        return self.cam_layer(model) if callable(self.cam_layer) else self.cam_layer

    def blocks_of(self, model: nn.Module, kind: str = "weights") -> list[str]:
        """The model's blocks for cascading randomisation, from the output towards the input.

        Args:
            model: The model.
            kind: ``"weights"`` (default): only the blocks that :func:`holds_weights` (the family's list
                without normalisation-only modules such as ResNet's ``bn1`` or EfficientNet's ``_bn0``/``_bn1``,
                which re-initialisation would only reset to a unit scale and zero shift, running statistics
                kept); ``"all"``: the family's whole list.

        Raises:
            ValueError: If ``kind`` is not one of :data:`BLOCK_KINDS`.
        """
        if kind not in BLOCK_KINDS:
            raise ValueError(f"kind must be one of {', '.join(BLOCK_KINDS)}, got {kind!r}")
        names = (self.blocks or generic_blocks)(model)
        if kind == "all":
            return names
        modules = dict(model.named_modules())
        return [n for n in names if holds_weights(modules[n])]


def _is_norm(module: nn.Module) -> bool:
    """Whether ``module`` is a normalisation layer (BatchNorm, InstanceNorm, LayerNorm, GroupNorm, RMSNorm...)."""
    norms = nn.modules.batchnorm._NormBase | nn.LayerNorm | nn.GroupNorm | nn.LocalResponseNorm
    return isinstance(module, norms) or "Norm" in type(module).__name__


def holds_weights(module: nn.Module) -> bool:
    """Whether re-initialising ``module`` changes more than normalisation layers.

    True if ``module`` or one of its submodules is not a normalisation layer, holds parameters of its own and
    has its own initialiser (``reset_parameters``; ``nn.MultiheadAttention``'s ``_reset_parameters``): a conv,
    linear or attention layer, for instance.
    """
    for m in module.modules():
        if _is_norm(m) or not any(True for _ in m.parameters(recurse=False)):
            continue
        if callable(getattr(m, "reset_parameters", None)) or isinstance(m, nn.MultiheadAttention):
            return True
    return False


def generic_blocks(model: nn.Module) -> list[str]:
    """Blocks with parameters in forward order, reversed.

    Containers (Sequential, ModuleList, ModuleDict) are opened; every other module with parameters is one
    block (a ResNet bottleneck, a DenseNet layer, fc).
    """
    out: list[str] = []

    def walk(module: nn.Module, prefix: str) -> None:
        for name, child in module.named_children():
            full = f"{prefix}{name}"
            if isinstance(child, nn.Sequential | nn.ModuleList | nn.ModuleDict):
                walk(child, full + ".")
            elif any(True for _ in child.parameters()):
                out.append(full)

    walk(model, "")
    return out[::-1]


#: Families in lookup order; the generic fallback comes last.
FAMILIES: Registry[Family] = Registry("architecture family")


def register_family(family: Family) -> Family:
    """Add a family to :data:`FAMILIES`.

    Args:
        family: The family.

    Returns:
        The family.
    """
    return FAMILIES.register(family.name)(family)


def family_of(model: nn.Module) -> Family:
    """The first registered family that matches ``model`` (the generic family if none does)."""
    for _, fam in FAMILIES.items():
        if fam.name != "generic" and fam.matches(model):
            return fam
    return FAMILIES.get("generic")


def default_cam_layer(model: nn.Module) -> str:
    """The dotted name of the default CAM layer of ``model``'s family."""
    return family_of(model).cam_layer_of(model)


def _last_of(kind: type[nn.Module] | tuple[type[nn.Module], ...], under: str = "") -> Callable[[nn.Module], str]:
    def pick(model: nn.Module) -> str:
        names: list[str] = [n for n, m in model.named_modules() if isinstance(m, kind) and n.startswith(under)]
        if not names:
            raise ValueError(f"cannot find a default CAM layer in {type(model).__name__}; pass layer=...")
        return names[-1]

    return pick


def _is(cls_path: str) -> Callable[[nn.Module], bool]:
    module_name, cls_name = cls_path.rsplit(".", 1)

    def match(model: nn.Module) -> bool:
        try:
            cls = getattr(importlib.import_module(module_name), cls_name)
        except (ImportError, AttributeError):
            return False
        return isinstance(model, cls)

    return match


def _canonizers(module: str, name: str, *args: object) -> Callable[[], list[Canonizer]]:
    """A factory of one zennit canonizer, imported when it is built (zennit imports torchvision's models)."""

    def build() -> list[Canonizer]:
        return [getattr(importlib.import_module(module), name)(*args)]

    return build


def _efficientnet_lite_canonizers() -> list[Canonizer]:
    from .efficientnet_lrp import EfficientNetLiteCanonizer

    return [EfficientNetLiteCanonizer()]


register_family(Family(
    "resnet", _is("torchvision.models.resnet.ResNet"), "layer4", _canonizers("zennit.torchvision", "ResNetCanonizer"),
    "torchvision ResNet / Wide-ResNet; CAM: layer4; LRP: BN merged, residual Sum",
))
register_family(Family(
    "densenet", _is("torchvision.models.densenet.DenseNet"), "features",
    _canonizers("zennit.canonizers", "NamedMergeBatchNorm", [(("features.conv0",), "features.norm0")]),
    "torchvision DenseNet; CAM: features (norm5); LRP: stem BN merged (pre-activation BNs pass gradients)",
))
register_family(Family(
    "convnext", _is("torchvision.models.convnext.ConvNeXt"), "features.7", _no_canonizers,
    "torchvision ConvNeXt; CAM: last stage (features.7); LRP: no canonizer (LayerNorm passes gradient)",
))
register_family(Family(
    "vgg", _is("torchvision.models.vgg.VGG"), _last_of(nn.ReLU, "features"),
    _canonizers("zennit.torchvision", "VGGCanonizer"),
    "torchvision VGG; CAM: last ReLU of features; LRP: BN merged",
))
register_family(Family(
    "efficientnet_lite", _is("efficientnet_lite_pytorch.model.EfficientNet"), "_bn1",
    _efficientnet_lite_canonizers,
    "EfficientNet-Lite (efficientnet-lite-pytorch); CAM: head BN output before ReLU6 (_bn1); "
    "LRP: BN folded, residual Sum, one ReLU6 per use",
))


def _hf(*class_names: str) -> Callable[[nn.Module], bool]:
    """Match an :class:`~attrdist.models.hf.HFClassifier` whose ``transformers`` model has one of these bases."""

    def match(model: nn.Module) -> bool:
        inner = hf_model(model)
        return inner is not None and any(c.__name__ in class_names for c in type(inner).__mro__)

    return match


class _HFPretrained(Protocol):
    """The parts of a ``transformers`` ``PreTrainedModel`` read here."""

    base_model_prefix: str
    base_model: nn.Module


def _hf_inner(model: nn.Module) -> _HFPretrained:
    """The ``transformers`` model inside an :class:`~attrdist.models.hf.HFClassifier`."""
    return cast(_HFPretrained, model.get_submodule("hf"))


def _hf_base(model: nn.Module) -> str:
    """``hf.<base>``: the backbone attribute of a wrapped ``transformers`` classifier (``hf.resnet``, ...)."""
    return f"hf.{_hf_inner(model).base_model_prefix}"


def _count(module: nn.Module) -> int:
    """The number of children of a container (``len`` of a ``Sequential`` or ``ModuleList``)."""
    return sum(1 for _ in module.children())


def _hf_cnn_cam_layer(model: nn.Module) -> str:
    stages = _hf_inner(model).base_model.get_submodule("encoder.stages")
    return f"{_hf_base(model)}.encoder.stages.{_count(stages) - 1}"


def _hf_cnn_blocks(model: nn.Module) -> list[str]:
    """Classifier, final norm, every stage's layers (and downsampling) from the output, then the stem."""
    base = _hf_base(model)
    backbone = _hf_inner(model).base_model
    out = ["hf.classifier"] + ([f"{base}.layernorm"] if getattr(backbone, "layernorm", None) is not None else [])
    stages = backbone.get_submodule("encoder.stages")
    for i in reversed(range(_count(stages))):
        stage = stages.get_submodule(str(i))
        out += [f"{base}.encoder.stages.{i}.layers.{j}" for j in reversed(range(_count(stage.get_submodule("layers"))))]
        down = getattr(stage, "downsampling_layer", None)
        if isinstance(down, nn.Module) and any(True for _ in down.parameters()):
            out.append(f"{base}.encoder.stages.{i}.downsampling_layer")
    stem = "embedder" if hasattr(backbone, "embedder") else "embeddings"
    return [*out, f"{base}.{stem}"]


def _no_lrp(what: str) -> Callable[[], list[Canonizer]]:
    def refuse() -> list[Canonizer]:
        raise ValueError(f"LRP does not support {what}; use another method (gradcam, gradient, ...) or the "
                         "torchvision model of the same architecture")

    return refuse


register_family(Family(
    "resnet_hf", _hf("ResNetPreTrainedModel"), _hf_cnn_cam_layer,
    _no_lrp("Hugging Face ResNet: its BatchNorms sit outside any Sequential and its residual sum is in place, "
            "which no Zennit canonizer covers"),
    "Hugging Face transformers ResNet (hf:); CAM: last stage; LRP: refused (no canonizer)", _hf_cnn_blocks,
))
register_family(Family(
    "convnext_hf", _hf("ConvNextPreTrainedModel"), _hf_cnn_cam_layer, _no_canonizers,
    "Hugging Face transformers ConvNeXt (hf:); CAM: last stage; LRP: no canonizer (LayerNorm passes gradient)",
    _hf_cnn_blocks,
))


def _last_child(model: nn.Module, path: str) -> str:
    """The dotted name of the last child of the container at ``path``."""
    return f"{path}.{list(dict(model.get_submodule(path).named_children()))[-1]}"


def _tv_vit_blocks(model: nn.Module) -> list[str]:
    layers = [f"encoder.layers.{n}" for n, _ in model.get_submodule("encoder.layers").named_children()]
    return ["heads", "encoder.ln", *layers[::-1], "conv_proj"]


def _timm_vit_blocks(model: nn.Module) -> list[str]:
    blocks = [f"blocks.{n}" for n, _ in model.get_submodule("blocks").named_children()]
    return ["head", "norm", *blocks[::-1], "patch_embed"]


register_family(Family(
    "vit_torchvision", _is("torchvision.models.vision_transformer.VisionTransformer"),
    lambda m: f"{_last_child(m, 'encoder.layers')}.ln_1", _no_canonizers,
    "torchvision ViT; CAM: last block's ln_1 (tokens on the patch grid)", _tv_vit_blocks,
))
register_family(Family(
    "vit_timm", _is("timm.models.vision_transformer.VisionTransformer"),
    lambda m: f"blocks.{_count(m.get_submodule('blocks')) - 1}.norm1", _no_canonizers,
    "timm ViT; CAM: last block's norm1 (tokens on the patch grid)", _timm_vit_blocks,
))


def _hf_vit_blocks(model: nn.Module) -> list[str]:
    names = {id(m): n for n, m in model.named_modules()}
    layers = [names[id(b)] for b in vit_info(model).blocks]
    return ["hf.classifier", f"{_hf_base(model)}.layernorm", *layers[::-1], f"{_hf_base(model)}.embeddings"]


register_family(Family(
    "vit_hf", _hf("ViTPreTrainedModel", "DeiTPreTrainedModel"), lambda m: f"{_hf_vit_blocks(m)[2]}.layernorm_before",
    _no_canonizers, "Hugging Face transformers ViT / DeiT (hf:); CAM: last block's layernorm_before", _hf_vit_blocks,
))
register_family(Family(
    "generic", lambda model: True, _last_of(nn.Conv2d), _canonizers("zennit.canonizers", "SequentialMergeBatchNorm"),
    "any other CNN; CAM: last Conv2d; LRP: BN merged where it follows a conv in a Sequential",
))
