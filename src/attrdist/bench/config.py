"""Run configurations: dataclasses loadable from YAML and saved beside every result."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import yaml

from ..var import DEFAULT_PRESET

__all__ = ["DEFAULT_VARIANTS", "RunConfig", "open_run"]

#: The VAR variants computed by default beside vanilla (name -> preset and overrides).
DEFAULT_VARIANTS: dict[str, dict] = {"var": {"preset": DEFAULT_PRESET}}

C = TypeVar("C", bound="RunConfig")


@dataclass
class RunConfig:
    """Fields every benchmark shares.

    Attributes:
        dataset: What to run on (``sample`` needs no download; see each benchmark).
        model: Model name (see :func:`attrdist.load_model`).
        weights: Weights path, ``random`` or ``None``.
        methods: Method names.
        variants: VAR variants computed from the same raw maps: name -> ``{"preset": ..., overrides}``.
        seed: Seed of every random choice.
        max_items: Maximal number of items; ``None`` or 0: all.
        device: ``cpu`` or ``cuda`` (not part of the stored configuration: it does not change results).
    """

    dataset: str = "sample"
    model: str = "efficientnet_lite0"
    weights: str | None = None
    methods: list[str] = field(default_factory=lambda: ["gradcam", "guided_backprop", "input_x_gradient",
                                                        "integrated_gradients"])
    variants: dict[str, dict] = field(default_factory=lambda: dict(DEFAULT_VARIANTS))
    seed: int = 0
    max_items: int | None = None
    device: str = "cpu"

    #: Name stored with the results (``localization``, ``insertion``, ``sanity``).
    benchmark = "benchmark"

    def to_dict(self) -> dict:
        """The stored configuration (without ``device``)."""
        d = dataclasses.asdict(self)
        d.pop("device")
        return {"benchmark": self.benchmark, **d}

    def save(self, path: str | Path) -> None:
        """Write the configuration as YAML."""
        Path(path).write_text(yaml.safe_dump(dataclasses.asdict(self), sort_keys=False))

    @classmethod
    def load(cls: type[C], path: str | Path) -> C:
        """Read a YAML configuration."""
        return cls(**yaml.safe_load(Path(path).read_text()))

    @property
    def limit(self) -> int | None:
        """``max_items`` with 0 read as no limit."""
        return self.max_items if self.max_items and self.max_items > 0 else None


def open_run(config: C, out_dir: str | Path, shard: object) -> tuple[object, C]:
    """Open (or resume) a run folder: the store bound to the configuration, and the config on this rank's device.

    Raises:
        ConfigMismatchError: If the folder holds a run of another configuration.
    """
    from .store import ResultStore

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    store = ResultStore(out / "results.sqlite")
    store.bind_config(config.to_dict())
    if shard.rank == 0:  # type: ignore[attr-defined]
        config.save(out / "config.yaml")
    return store, dataclasses.replace(config, device=shard.device(config.device))  # type: ignore[attr-defined]
