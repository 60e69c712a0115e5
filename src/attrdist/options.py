"""Field metadata for configuration dataclasses: the one-line help and the choices of a command-line option.

Every configuration (``VARConfig``, ``ExplainConfig``, the benchmarks' ``RunConfig`` subclasses, ``AppConfig``)
declares its options once, in its fields; ``attrdist.cli`` builds the parsers from them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

__all__ = ["BENCHMARK_METHODS", "DEFAULT_METHODS", "ModelOptions", "opt", "read_yaml"]

#: The methods ``attrdist explain`` and the web explorer show unless told otherwise.
DEFAULT_METHODS: tuple[str, ...] = ("gradcam", "guided_backprop")
#: The methods the benchmarks run unless told otherwise (the paper's CNN methods of Table 1).
BENCHMARK_METHODS: tuple[str, ...] = ("gradcam", "guided_backprop", "input_x_gradient", "integrated_gradients")


def read_yaml(text: str) -> object:
    """Parse YAML that comes from a file or a command line, refusing anchors and aliases.

    A configuration never needs them, and aliases let a few hundred bytes expand to gigabytes (the "billion
    laughs" attack) before anything is validated.

    Raises:
        yaml.YAMLError: On malformed YAML, or on an anchor or alias.

    Example:
        >>> read_yaml("a: [1, 2]")
        {'a': [1, 2]}
    """
    import yaml

    class _NoAliases(yaml.SafeLoader):
        def compose_node(self, parent: yaml.Node | None, index: int) -> yaml.Node | None:
            event = self.peek_event()
            if self.check_event(yaml.events.AliasEvent) or getattr(event, "anchor", None):
                raise yaml.YAMLError(f"anchors and aliases are not allowed ({event.start_mark})")
            return super().compose_node(parent, index)

    return yaml.load(text, Loader=_NoAliases)  # noqa: S506 (a SafeLoader)


def opt(
    text: str, choices: Sequence[str] | Callable[[], Sequence[str]] | None = None, **extra: object,
) -> dict[str, object]:
    """Field metadata: the option's one-line help, its choices and extras (``flag="--method-opt"``).

    ``choices`` may be a function that lists them from a registry when the parser is built.

    Example:
        >>> opt("VAR preset", ("paper", "normalized"))
        {'help': 'VAR preset', 'choices': ('paper', 'normalized')}
    """
    if choices is not None and not callable(choices):
        choices = tuple(choices)
    return {"help": text, **({"choices": choices} if choices else {}), **extra}


@dataclass(kw_only=True)
class ModelOptions:
    """The model and method options every command shares (``attrdist explain`` and every benchmark).

    Attributes:
        model: Model name (see :func:`attrdist.load_model`).
        weights: Weights path, a torchvision weights name (``IMAGENET1K_V1``), ``random`` or ``None``.
        method_options: Options per method, e.g. ``{"gradcam": {"layer": "features.denseblock4.denselayer16"}}``.
        device: Torch device (not part of a stored benchmark configuration: it does not change results).
        dtype: ``float32`` or ``bfloat16`` (autocast; see :class:`~attrdist.methods.Attributor`).
        trust_checkpoint: Allow a checkpoint that holds pickled code (only ever from the command line or code).
    """

    model: str = field(default="efficientnet_lite0", metadata=opt(
        "efficientnet_lite0 (offline), torchvision:NAME, timm:NAME or a checkpoint path"))
    weights: str | None = field(default=None, metadata=opt(
        "state-dict file, a torchvision weights name (IMAGENET1K_V1: the paper's) or 'random'"))
    method_options: dict[str, dict[str, object]] = field(default_factory=dict, metadata=opt(
        "method options, repeatable: --method-opt gradcam.layer=layer3 --method-opt integrated_gradients.steps=64",
        flag="--method-opt"))
    device: str = field(default="cpu", metadata=opt("torch device: cpu, cuda, cuda:1 (benchmarks: one GPU per "
                                                    "torchrun rank)"))
    dtype: str = field(default="float32", metadata=opt(
        "attribution precision: bfloat16 runs under torch.autocast (faster on GPUs, maps deviate slightly)",
        ("float32", "bfloat16")))
    trust_checkpoint: bool = field(default=False, metadata=opt(
        "allow a --model checkpoint file that holds pickled code (unpickling runs it: only files you trust)"))

    def method_kwargs(self, name: str) -> dict[str, object]:
        """The options of method ``name``: its ``method_options`` and the precision."""
        return {**({"autocast": self.dtype} if self.dtype != "float32" else {}), **self.method_options.get(name, {})}
