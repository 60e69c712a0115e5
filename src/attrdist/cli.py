"""Command line: ``attrdist explain``, ``attrdist methods``, ``attrdist models``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

__all__ = ["main"]


def _csv(text: str) -> list[str]:
    return [p.strip() for p in text.split(",") if p.strip()]


def _floats(text: str) -> tuple[float, ...]:
    return tuple(float(p) for p in _csv(text))


def _variants(text: str) -> dict[str, dict]:
    from .bench.localization import ALL_VARIANTS
    from .var import DEFAULT_PRESET

    if text == "all":
        return dict(ALL_VARIANTS)
    out = {}
    for part in _csv(text):
        name, _, spec = part.partition("=")
        preset, _, norm = (spec or DEFAULT_PRESET).partition("+")
        out[name] = {"preset": preset, **({"normalize": norm} if norm else {})}
    return out


def _benchmarks() -> dict:
    from .bench import BENCHMARKS

    return BENCHMARKS


def _config_parser(p: argparse.ArgumentParser, config_cls: type) -> None:
    """Options from the fields of a run-configuration dataclass (the single place they are declared)."""
    import dataclasses

    p.add_argument("--config", default=None, help="YAML configuration (options given here override it)")
    p.add_argument("--out", required=True, help="run folder (results.sqlite, config.yaml); re-run to resume")
    for f in dataclasses.fields(config_cls):
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
        if f.name == "variants":
            typ = _variants
        elif isinstance(default, list):
            typ = _csv
        elif isinstance(default, bool):
            typ = lambda v: v.lower() in ("1", "true", "yes")  # noqa: E731
        elif isinstance(default, int | float):
            typ = type(default)
        else:
            typ = int if "int" in str(f.type) else str
        p.add_argument(f"--{f.name.replace('_', '-')}", dest=f.name, type=typ, default=None,
                       help=f"default: {default!r}")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (choices come from the registries)."""
    from .methods import METHODS
    from .var import DEFAULT_PRESET, NORMALIZATIONS, PRESETS

    parser = argparse.ArgumentParser(prog="attrdist", description="Class-specific attribution maps with VAR.")
    sub = parser.add_subparsers(dest="command", required=True)

    ex = sub.add_parser("explain", help="explain images: per-class vanilla and VAR maps, as a figure, JSON and npz")
    ex.add_argument("images", nargs="*", help="image files; none: a 2x2 grid of sample photos from scikit-image")
    ex.add_argument("--model", default="efficientnet_lite0",
                    help="efficientnet_lite0 (default, offline), torchvision:NAME, timm:NAME or a checkpoint path")
    ex.add_argument("--weights", default=None, help="state-dict file for the model, or 'random'")
    ex.add_argument("--method", default="gradcam,guided_backprop",
                    help=f"comma-separated methods among: {', '.join(METHODS.names())}")
    ex.add_argument("--classes", default=None,
                    help="class set: topN, topN+worst, best-vs-worst or a list like 281,285,287 "
                         "(default: top3+worst; for the sample grid, the classes of its four photos)")
    ex.add_argument("--target", type=int, default=None, help="explained class (default: the predicted one)")
    ex.add_argument("--preset", default=DEFAULT_PRESET, choices=sorted(PRESETS),
                    help=f"VAR preset (default: {DEFAULT_PRESET})")
    ex.add_argument("--temperatures", type=_floats, default=None, help="override, e.g. 1,5,100")
    ex.add_argument("--tau", type=float, default=None, help="override the margin tau")
    ex.add_argument("--magnitude", choices=["signed", "abs"], default=None, help="override the magnitude")
    ex.add_argument("--normalize", choices=sorted(NORMALIZATIONS), default=None,
                    help="joint scale of the K maps before the softmax (override)")
    ex.add_argument("--out", default="attrdist-out", help="output folder (default: attrdist-out)")
    ex.add_argument("--format", default="png", help="figure formats, comma-separated: png, pdf, svg")
    ex.add_argument("--device", default="cpu", help="cpu or cuda")
    ex.add_argument("--multiply-input", action="store_true", help="multiply maps by the image for illustration")

    bench = sub.add_parser("bench", help="run (or resume) a benchmark into a run folder")
    bsub = bench.add_subparsers(dest="benchmark", required=True)
    for name, (config_cls, _run) in _benchmarks().items():
        _config_parser(bsub.add_parser(name, help=(config_cls.__doc__ or "").splitlines()[0]), config_cls)

    rep = sub.add_parser("report", help="tables (Markdown, LaTeX, CSV) and plots of a run folder")
    rep.add_argument("run_dir")

    srv = sub.add_parser("serve", help="the web explorer (local by default)")
    srv.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    srv.add_argument("--port", type=int, default=7860)
    srv.add_argument("--max-upload-mb", type=float, default=10.0, help="largest accepted upload")
    srv.add_argument("--cache-size", type=int, default=16, help="explanations kept for the VAR controls")
    srv.add_argument("--models", type=_csv, default=["efficientnet_lite0"], help="models offered")
    srv.add_argument("--device", default="cpu")

    sub.add_parser("methods", help="list the attribution methods")
    sub.add_parser("models", help="list the model names and architecture families")
    return parser


def _cmd_methods() -> int:
    from .methods import METHODS

    width = max(len(n) for n in METHODS.names())
    for name, cls in METHODS.items():
        flag = " [class-agnostic]" if cls.class_agnostic else ""
        arch = "/".join(sorted(cls.applies_to))
        print(f"{name:<{width}}  {arch:<7}  {cls.summary}{flag}")
    return 0


def _cmd_models() -> int:
    from .models import FAMILIES, MODELS

    print("Model names:")
    for name, fn in MODELS.items():
        print(f"  {name:<22} {(fn.__doc__ or '').strip().splitlines()[0]}")
    print("  torchvision:NAME        any torchvision classifier (weights from the torch hub cache or --weights)")
    print("  timm:NAME               any timm model (weights from the Hugging Face cache or --weights)")
    print("  PATH                    a checkpoint file (whole pickled model or TorchScript)")
    print("Architecture families (default CAM layer, LRP canonizers):")
    for name, fam in FAMILIES.items():
        print(f"  {name:<22} {fam.note}")
    return 0


def _cmd_explain(args: argparse.Namespace) -> int:
    import torch
    from tqdm import tqdm

    from .data import ImageReadError, read_image, sample_grid
    from .data.samples import SAMPLES, sample_image
    from .explain import explain_image, grid_classes, save_explanation
    from .methods import METHODS
    from .models import WeightsUnavailableError, load_model
    from .models.vit import is_vit

    methods = _csv(args.method)
    unknown = [m for m in methods if m not in METHODS]
    if not methods or unknown:
        print(f"error: unknown method(s) {unknown}; choose from {', '.join(METHODS.names())}", file=sys.stderr)
        return 2
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print("error: --device cuda was asked for, but no CUDA device is available", file=sys.stderr)
        return 2
    formats = _csv(args.format)
    bad = [f for f in formats if f not in ("png", "pdf", "svg")]
    if bad or not formats:
        print(f"error: unknown figure format(s) {bad}; use png, pdf or svg", file=sys.stderr)
        return 2
    try:
        lm = load_model(args.model, weights=args.weights)
    except (WeightsUnavailableError, ValueError, ImportError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    overrides = dict(temperatures=args.temperatures, tau=args.tau, magnitude=args.magnitude,
                     normalize=args.normalize)
    jobs = [(p, "file") for p in args.images] or [("sample_grid", "grid")]
    failures = 0
    for source, kind in tqdm(jobs, desc="explain", unit="image", file=sys.stderr, disable=len(jobs) < 2):
        try:
            if kind == "grid":
                names = tuple(SAMPLES)
                # CNNs see the grid at full resolution (one model input per cell); ViTs need their input size
                cell = lm.preprocess.crop // 2 if is_vit(lm.model) else lm.preprocess.crop
                image = sample_grid(names, cell=cell)
                classes = args.classes or grid_classes(lm, [sample_image(n) for n in names], args.device)
                stem, resize = "sample_grid", False
            else:
                image = read_image(source)
                classes, stem, resize = args.classes or "top3+worst", Path(source).stem, True
            exp = explain_image(lm, image, methods, classes, args.target, args.preset, args.device, resize=resize,
                                **overrides)
            exp.source = source
            written = save_explanation(exp, args.out, stem, formats, multiply_input=args.multiply_input)
            tqdm.write(f"{source}: wrote {', '.join(str(p) for p in written)}", file=sys.stderr)
        except (ImageReadError, ValueError) as err:
            failures += 1
            print(f"error: {err}", file=sys.stderr)
        except (RuntimeError, AssertionError) as err:
            failures += 1
            print(f"error: {source}: the model failed on this input ({type(err).__name__}: {err})", file=sys.stderr)
    return 1 if failures else 0


def _cmd_bench(args: argparse.Namespace) -> int:
    import dataclasses

    from .bench.report import markdown, summarize
    from .bench.store import ConfigMismatchError
    from .data.datasets import DatasetLayoutError
    from .models import WeightsUnavailableError

    config_cls, run = _benchmarks()[args.benchmark]
    cfg = config_cls.load(args.config) if args.config else config_cls()
    given = {f.name: getattr(args, f.name) for f in dataclasses.fields(cfg) if getattr(args, f.name, None) is not None}
    cfg = dataclasses.replace(cfg, **given)
    try:
        store = run(cfg, args.out)
    except (ConfigMismatchError, DatasetLayoutError, WeightsUnavailableError, ValueError, KeyError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if int(__import__("os").environ.get("RANK", 0)) == 0:
        print(markdown(summarize(store)))
    store.close()
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    from .bench.report import write_report

    try:
        written = write_report(args.run_dir)
    except FileNotFoundError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(written["markdown"].read_text())
    print("wrote " + ", ".join(str(p) for p in written.values()), file=sys.stderr)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line.

    Args:
        argv: Arguments (default: ``sys.argv[1:]``).

    Returns:
        The exit status.
    """
    args = build_parser().parse_args(argv)
    if args.command == "methods":
        return _cmd_methods()
    if args.command == "models":
        return _cmd_models()
    if args.command == "bench":
        return _cmd_bench(args)
    if args.command == "report":
        return _cmd_report(args)
    if args.command == "serve":
        from .app import AppConfig, serve

        serve(AppConfig(args.host, args.port, args.max_upload_mb, args.cache_size, tuple(args.models), args.device))
        return 0
    return _cmd_explain(args)


if __name__ == "__main__":
    sys.exit(main())
