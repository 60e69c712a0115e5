"""Command line: ``attrdist explain | bench | report | serve | methods | models``.

Options come from the fields of the configuration dataclasses (their one-line help and choices are field
metadata), so each option is declared once. ``attrdist --help`` imports nothing heavy: a subcommand's parser
is built, with its registries, only when that subcommand runs.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import types
import typing
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .classes import ClassSet
    from .explain_config import ExplainConfig
    from .explanation import Explanation
    from .models import LoadedModel

__all__ = ["build_parser", "main"]

#: The subcommands and their one-line help (static, so that ``attrdist --help`` is instant).
COMMANDS = {
    "explain": "explain images: per-class vanilla and VAR maps of several methods, as a figure, JSON and npz",
    "bench": "run (or resume) a benchmark into a run folder: localization, coco, insertion, sanity, study",
    "report": "tables (Markdown, LaTeX, CSV) and figures of a benchmark run folder",
    "serve": "the web explorer (local by default)",
    "methods": "list the attribution methods (--model NAME: those that apply to it)",
    "models": "list the model sources and architecture families",
    "classes": "list or search a model's class names and ids (what --target and --classes accept)",
}

EXAMPLES = {
    "explain": """examples:
  attrdist explain                                   # the bundled sample grid, EfficientNet-Lite0, offline
  attrdist explain cat.jpg dog.png --methods gradcam,integrated_gradients --classes top3+worst
  attrdist explain scan.png --model torchvision:resnet50 --weights IMAGENET1K_V1 --classes 281,285,287 --target 285
  attrdist explain cat.jpg --preset authors-code --format png,pdf --sign positive
  attrdist explain cat.jpg --preset smoothed-positive,paper --width 6.9 --format pdf   # 2 presets, 1 model call
  attrdist explain cat.jpg --method-opt gradcam.layer=layer3 --method-opt integrated_gradients.steps=64""",
    "report": """examples:
  attrdist report runs/quad        # report.md, report.tex, report.csv and the benchmark's figures""",
    "serve": """examples:
  attrdist serve                                         # http://127.0.0.1:7860/
  attrdist serve --models efficientnet_lite0,timm:vit_base_patch16_224 --port 8080""",
    "methods": """examples:
  attrdist methods
  attrdist methods --model timm:vit_base_patch16_224""",
    "classes": """examples:
  attrdist classes                 # the 1000 ImageNet classes of the default model
  attrdist classes cat             # the classes whose name contains "cat"
  attrdist explain cat.jpg --target "tiger cat" --classes "tabby,tiger cat,Egyptian cat\"""",
}


def _csv(text: str) -> list[str]:
    return [p.strip() for p in text.split(",") if p.strip()]


def _floats(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(p) for p in _csv(text))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None


def _did_you_mean(values: Sequence[str], choices: Sequence[str]) -> str:
    """``"; did you mean 'paper'?"`` for the choices closest to the values given, or nothing."""
    import difflib

    close = dict.fromkeys(c for v in values for c in difflib.get_close_matches(v, list(choices), n=2, cutoff=0.6))
    return f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""


def _choice_list(choices: Sequence[str] | None) -> Callable[[str], list[str]]:
    def parse(text: str) -> list[str]:
        values = _csv(text)
        bad = [v for v in values if choices and v not in choices]
        if bad or not values:
            raise argparse.ArgumentTypeError(
                f"invalid choice(s) {bad or text!r}{_did_you_mean(bad, choices or ())}; choose from "
                f"{', '.join(choices or ())}")
        return values

    return parse


def _method_opt(text: str) -> tuple[str, str, object]:
    """``METHOD.OPTION=VALUE`` (the value read as YAML: numbers, booleans, lists)."""
    import yaml

    from .options import read_yaml

    key, sep, value = text.partition("=")
    method, dot, option = key.partition(".")
    if not (sep and dot and method and option):
        raise argparse.ArgumentTypeError(f"expected METHOD.OPTION=VALUE (e.g. gradcam.layer=layer3), got {text!r}")
    try:
        parsed = read_yaml(value)
    except yaml.YAMLError:
        parsed = value
    return method.strip(), option.strip().replace("-", "_"), parsed


def _variants(text: str) -> dict[str, dict[str, str]]:
    """``all`` or ``name=preset[+normalisation],...``."""
    from .bench.config import ALL_VARIANTS
    from .presets import DEFAULT_PRESET, NORMALIZATION_NAMES, PRESETS

    if text == "all":
        return dict(ALL_VARIANTS)
    out = {}
    for part in _csv(text):
        name, _, spec = part.partition("=")
        preset, _, norm = (spec or DEFAULT_PRESET).partition("+")
        if preset not in PRESETS or (norm and norm not in NORMALIZATION_NAMES):
            raise argparse.ArgumentTypeError(
                f"variant {part!r}: use NAME=PRESET[+NORMALISATION] with a preset in {', '.join(PRESETS)} and a "
                f"normalisation in {', '.join(NORMALIZATION_NAMES)}")
        out[name] = {"preset": preset, **({"normalize": norm} if norm else {})}
    return out


def _bool(text: str) -> bool:
    if text.lower() in ("1", "true", "yes", "on"):
        return True
    if text.lower() in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def _unwrap(annotation: object) -> tuple[object, tuple]:
    """``X | None`` -> ``(X's origin or X, X's arguments)``."""
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        annotation = next(a for a in typing.get_args(annotation) if a is not type(None))
    return typing.get_origin(annotation) or annotation, typing.get_args(annotation)


def add_dataclass_options(parser: argparse.ArgumentParser | argparse._ArgumentGroup, cls: type, *,
                          optional_defaults: bool = False, skip: Sequence[str] = (),
                          default_note: str | None = None) -> None:
    """One option per field of a dataclass, typed, with the help and choices of its metadata.

    Args:
        parser: The (sub)parser.
        cls: The dataclass.
        optional_defaults: Options default to ``None`` (a YAML configuration or a preset fills the rest).
        skip: Fields without an option.
        default_note: Shown as every option's default instead of the field's (``"the preset's"``).
    """
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if f.name in skip or not f.init:
            continue
        meta = f.metadata
        factory = f.default_factory
        default = factory() if f.default is dataclasses.MISSING and callable(factory) else f.default
        choices = meta.get("choices")
        choices = tuple(choices()) if callable(choices) else choices  # registries: read when the parser is built
        shown = ",".join(map(str, default)) if isinstance(default, list | tuple) else default
        text = meta.get("help", "") + (f" [choices: {', '.join(map(str, choices))}]" if choices else "")
        if default_note:
            text += f" (default: {default_note})"
        elif "default" not in text and f.name != "method_options":
            text += f" (default: {shown if shown not in (None, '', {}) else 'none'})"
        flag = meta.get("flag", f"--{f.name.replace('_', '-')}")
        kind, elems = _unwrap(hints[f.name])
        kwargs: dict = {"dest": f.name, "help": text.replace("%", "%%")}
        if f.name == "method_options":
            kwargs.update(type=_method_opt, action="append", metavar="METHOD.OPTION=VALUE", default=None)
        elif f.name == "variants":
            kwargs.update(type=_variants, metavar="NAME=PRESET,...|all", default=None)
        elif kind is bool and default is False and not optional_defaults:
            kwargs.update(action="store_true", default=False)
        elif kind is bool:
            kwargs.update(type=_bool, default=None, metavar="true|false")
        elif kind in (list, tuple) and elems and elems[0] is float:
            kwargs.update(type=_floats, default=None, metavar="X,Y,...")
        elif kind in (list, tuple):
            parse = _choice_list(choices)
            kwargs.update(type=(lambda t, parse=parse: tuple(parse(t))) if kind is tuple else parse, default=None,
                          metavar="A,B,...")
        else:
            kwargs.update(type=kind if kind in (int, float) else str, default=None if optional_defaults else default)
            if choices:
                kwargs["choices"] = choices
        # --method is --methods (argparse read it as an ambiguous abbreviation of --methods and --method-opt)
        parser.add_argument(flag, *(["--method"] if f.name == "methods" else []), **kwargs)


def _given(args: argparse.Namespace, cls: type) -> dict:
    """The fields of ``cls`` given on the command line (``None`` means not given)."""
    out = {}
    for f in dataclasses.fields(cls):
        value = getattr(args, f.name, None)
        if value is None:
            continue
        if f.name == "method_options":
            merged: dict[str, dict] = {}
            for method, option, v in value:
                merged.setdefault(method, {})[option] = v
            value = merged
        out[f.name] = value
    return out


class _Formatter(argparse.RawDescriptionHelpFormatter):
    def __init__(self, prog: str) -> None:
        super().__init__(prog, max_help_position=32, width=110)


class _Parser(argparse.ArgumentParser):
    """argparse with a "did you mean" on every choice missed: subcommands, benchmarks, presets, signs, ..."""

    def error(self, message: str) -> typing.NoReturn:
        import re

        miss = re.search(r"invalid choice: '([^']*)' \(choose from (.*)\)", message)
        if miss:
            choices = re.findall(r"'([^']*)'", miss.group(2)) or [c.strip() for c in miss.group(2).split(",")]
            message += _did_you_mean([miss.group(1)], choices)
        super().error(message)


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser; only ``command``'s subparser is filled in (``None``: all of them, as the docs use)."""
    parser = _Parser(prog="attrdist", description="Class-specific attribution maps with VAR.",
                     formatter_class=_Formatter)
    from .version import __version__

    parser.add_argument("--version", action="version", version=f"attrdist {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, text in COMMANDS.items():
        p = sub.add_parser(name, help=text, description=text, epilog=EXAMPLES.get(name), formatter_class=_Formatter)
        if command in (None, name):
            BUILDERS[name](p)
    return parser


def _explain_parser(p: argparse.ArgumentParser) -> None:
    from .explain_config import ExplainConfig
    from .presets import VARConfig

    p.add_argument("images", nargs="*", help="image files; none: a 2x2 grid of the sample photos (scikit-image)")
    add_dataclass_options(p, ExplainConfig)
    group = p.add_argument_group("VAR parameters (override the preset's)")
    add_dataclass_options(group, VARConfig, optional_defaults=True, default_note="the preset's")


def _bench_parser(p: argparse.ArgumentParser) -> None:
    from .bench import BENCHMARKS
    from .data.kinds import dataset_help

    bsub = p.add_subparsers(dest="benchmark", required=True, metavar="BENCHMARK")
    for name, bench in BENCHMARKS.items():
        epilog = "dataset kinds (--dataset):\n" + dataset_help()
        if bench.examples:
            epilog += "\n\nexamples:\n" + "\n".join(f"  {e}" for e in bench.examples)
        bp = bsub.add_parser(name, help=bench.summary, description=bench.summary, epilog=epilog,
                             formatter_class=_Formatter)
        bp.add_argument("--config", default=None, help="YAML configuration (options given here override it)")
        bp.add_argument("--out", required=True, help="run folder (results.sqlite, config.yaml); run again to resume")
        bp.add_argument("--estimate", nargs="?", type=int, const=2, default=None, metavar="N",
                        help="time N items (default 2, after one warm-up) in a temporary folder and print the "
                             "projected time and disk of the whole run; nothing is written to --out")
        add_dataclass_options(bp, bench.config, optional_defaults=True)


def _report_parser(p: argparse.ArgumentParser) -> None:
    p.add_argument("run_dir", help="a run folder written by attrdist bench (a study's folder: a report of each run)")


def _serve_parser(p: argparse.ArgumentParser) -> None:
    from .app import AppConfig

    add_dataclass_options(p, AppConfig)


def _methods_parser(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default=None, help="list only the methods that apply to this model")


def _classes_parser(p: argparse.ArgumentParser) -> None:
    p.add_argument("query", nargs="?", default="", help="part of a class name, or an id (default: list all)")
    p.add_argument("--model", default="efficientnet_lite0", help="the model whose label set is listed")
    p.add_argument("--weights", default=None, help="its weights (a checkpoint's labels come with the model)")


BUILDERS: dict[str, Callable[[argparse.ArgumentParser], None]] = {
    "explain": _explain_parser, "bench": _bench_parser, "report": _report_parser, "serve": _serve_parser,
    "methods": _methods_parser, "models": lambda p: None, "classes": _classes_parser,
}


def _shown(text: str) -> str:
    """``text`` safe for a terminal: control characters (an ANSI escape, BEL, NUL) as their Python escapes."""
    return "".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in text)


def _error(message: object) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 2


def _cmd_methods(args: argparse.Namespace) -> int:
    from .methods import METHODS, list_methods

    names = METHODS.names()
    if args.model:
        from .models import WeightsUnavailableError, load_model

        try:
            lm = load_model(args.model, weights="random" if not Path(args.model).is_file() else None)
        except (WeightsUnavailableError, ValueError, ImportError) as err:
            return _error(err)
        names = list_methods(lm.architecture)
        print(f"methods for {args.model} ({'Vision Transformer' if lm.architecture == 'vit' else 'CNN'}):")
    width = max(len(n) for n in names)
    for name in names:
        cls = METHODS.get(name)
        flag = " [class-agnostic]" if cls.class_agnostic else ""
        arch = "/".join(sorted(cls.applies_to))
        print(f"{name:<{width}}  {arch:<7}  {cls.summary}{flag}")
    return 0


def _cmd_models(args: argparse.Namespace) -> int:
    from .models import FAMILIES, MODEL_SOURCES, MODELS

    print("Model names (--model):")
    for name, fn in MODELS.items():
        print(f"  {name:<24} {(fn.__doc__ or '').strip().splitlines()[0]}")
    for _, src in MODEL_SOURCES.items():
        if src.name != "builtin":
            print(f"  {src.syntax:<24} {src.help}")
    print("Architecture families (default CAM layer, LRP canonizers):")
    for name, fam in FAMILIES.items():
        print(f"  {name:<24} {fam.note}")
    return 0


def _cmd_classes(args: argparse.Namespace) -> int:
    from .models import WeightsUnavailableError, load_model

    try:
        weights = args.weights or ("random" if ":" in args.model else None)  # names need no weights file
        names = load_model(args.model, weights=weights).class_names
    except (WeightsUnavailableError, ValueError, ImportError) as err:
        return _error(err)
    query = args.query.strip().casefold()
    hits = [(i, n) for i, n in enumerate(names) if not query or query in n.casefold() or query == str(i)]
    if not hits:
        from .classes import class_id

        try:
            class_id(args.query, names)
        except ValueError as err:
            return _error(err)
    for i, n in hits:
        print(f"{i:>5}  {_shown(n)}")  # a label from a model folder may hold terminal escapes
    return 0


def _output_places(images: Sequence[str]) -> dict[str, tuple[Path, str]]:
    """Where each input's files go: ``(sub-folder of --out, stem)``; inputs whose names collide keep their path.

    ``a/photo.jpg`` and ``b/photo.jpg`` become ``a/photo.*`` and ``b/photo.*`` (relative to the folder the
    colliding inputs share), never one ``photo.*`` written twice.

    Example:
        >>> {k: (str(f), s) for k, (f, s) in _output_places(["x/a/p.jpg", "x/b/p.png", "q.jpg"]).items()}
        {'x/a/p.jpg': ('a', 'p'), 'x/b/p.png': ('b', 'p'), 'q.jpg': ('.', 'q')}
    """
    import os

    by_stem: dict[str, list[str]] = {}
    for image in dict.fromkeys(images):
        by_stem.setdefault(Path(image).stem, []).append(image)
    places: dict[str, tuple[Path, str]] = {}
    for stem, same in by_stem.items():
        if len(same) == 1:
            places[same[0]] = (Path(), stem)
            continue
        resolved = [Path(p).resolve() for p in same]
        common = Path(os.path.commonpath([p.parent for p in resolved]))
        for image, path in zip(same, resolved, strict=True):
            rel = path.relative_to(common)
            # the same stem in one folder (photo.jpg, photo.png): the suffix tells them apart
            places[image] = (rel.parent, stem if sum(q.parent == path.parent for q in resolved) == 1 else path.name)
    return places


def _zeroed_line(exp: Explanation) -> str:
    """One line naming every map VAR zeroed (the figure marks each), by method and preset; empty if none."""
    target = exp.class_names[exp.classes.index(exp.target)]
    several = len(exp.presets) > 1
    parts = [f"{m}{f' ({label})' if several else ''}: " + ", ".join(f"{n} (the explained class)" if n == target else n
                                                                  for n in names)
             for label, by_method in exp.zeroed().items() for m, names in by_method.items()]
    if not parts:
        return ""
    return ("VAR zeroed these maps (no pixel where the class dominates under these parameters; the figure marks "
            "them): " + "; ".join(parts))


@dataclasses.dataclass(frozen=True)
class _ExplainRun:
    """What every input of one ``attrdist explain`` shares: settings, model, class set, target, output places."""

    cfg: ExplainConfig
    overrides: dict[str, object]
    lm: LoadedModel
    target: int | None
    classes: ClassSet | None
    places: dict[str, tuple[Path, str]]


def _explain_problem(cfg: ExplainConfig) -> str:
    """What makes the run impossible before a model loads (an unknown method, a missing CUDA device), or nothing."""
    import torch

    from .methods import METHODS

    unknown = [m for m in cfg.methods if m not in METHODS]
    if not cfg.methods or unknown:
        return (f"unknown method(s) {unknown}{_did_you_mean(unknown, METHODS.names())}; choose from "
                f"{', '.join(METHODS.names())}")
    if cfg.device.startswith("cuda") and not torch.cuda.is_available():
        return "--device cuda was asked for, but no CUDA device is available"
    return ""


def _explain_run(args: argparse.Namespace) -> _ExplainRun | str:
    """The run's shared state, or why there is none (a one-line error)."""
    from .classes import class_id, class_set
    from .explain_config import ExplainConfig
    from .models import WeightsUnavailableError, load_model
    from .presets import VARConfig

    cfg = ExplainConfig(**_given(args, ExplainConfig))
    problem = _explain_problem(cfg)
    if problem:
        return problem
    try:
        lm = load_model(cfg.model, weights=cfg.weights, trust_checkpoint=cfg.trust_checkpoint)
        # class names (case-insensitive) or ids, against the model's own label set: checked before any image
        target = None if cfg.target is None else class_id(cfg.target, lm.class_names)
        classes = None if cfg.classes is None else class_set(cfg.classes, lm.class_names)
    except (WeightsUnavailableError, ValueError, ImportError) as err:
        return str(err)
    return _ExplainRun(cfg=cfg, overrides=_given(args, VARConfig), lm=lm, target=target, classes=classes,
                       places=_output_places(args.images))


def _explain_one(run: _ExplainRun, source: str, kind: str) -> Explanation:
    """Explain one input (an image file, or the sample grid), save its files and say what was written."""
    from tqdm import tqdm

    from .data import read_image
    from .data.prepare import sample_grid, sample_view
    from .data.samples import SAMPLES
    from .explain import explain_image, grid_classes
    from .presets import DEFAULT_CLASSES

    cfg, lm = run.cfg, run.lm
    classes: ClassSet | Sequence[int] | str = run.classes if run.classes is not None else DEFAULT_CLASSES
    if kind == "grid":
        names = tuple(SAMPLES)
        # CNNs see the grid at full resolution (one model input per cell); ViTs need their input size
        image = sample_grid(names, cell=lm.input_size[0] // 2 if lm.input_size else lm.preprocess.crop)
        if run.classes is None:
            classes = grid_classes(lm, [sample_view(n, squared=True) for n in names], cfg.device)
    else:
        image = read_image(source)
    # several presets refine the same raw maps: one model call, one VAR row per preset
    exp = explain_image(lm, image, methods=cfg.methods, classes=classes, target=run.target, preset=cfg.preset,
                        device=cfg.device, crop=kind != "grid", input_kind="grid" if kind == "grid" else "photo",
                        method_options={m: cfg.method_kwargs(m) for m in cfg.methods}, **run.overrides)
    settings = {k: v for k, v in dataclasses.asdict(cfg).items() if k != "out"}
    exp.source, exp.settings = source, {**settings, "var_overrides": run.overrides}
    folder, stem = run.places.get(source, (Path(), "sample_grid"))
    written = exp.save(Path(cfg.out) / folder, stem, cfg.format, dpi=cfg.dpi, sign=cfg.sign,
                       multiply_input=cfg.multiply_input, width=cfg.width)
    listing = ", ".join(f"{c} {_shown(n)} ({p:.3f}){' *' if c == exp.target else ''}"
                        for c, n, p in zip(exp.classes, exp.class_names, exp.probabilities, strict=True))
    tqdm.write(f"{source}: class set (* the explained class) {listing}\n"
               f"  wrote {', '.join(str(p) for p in written)}", file=sys.stderr)
    zeroed = _zeroed_line(exp)
    if zeroed:
        tqdm.write(f"  warning: {zeroed}", file=sys.stderr)
    return exp


def _cmd_explain(args: argparse.Namespace) -> int:
    from ._paths import file_problem

    problems = [problem for p in args.images if (problem := file_problem(p))]
    if args.images and len(problems) == len(args.images):  # nothing to explain: say so before torch loads
        for problem in problems:
            print(f"error: {problem}", file=sys.stderr)
        return 1
    from tqdm import tqdm

    from .data import ImageReadError
    from .methods import MethodNotApplicableError

    run = _explain_run(args)
    if isinstance(run, str):
        return _error(run)
    jobs = [(p, "file") for p in args.images] or [("sample_grid", "grid")]
    failures = 0
    # a bar for several images on a terminal (None: off when stderr is a log, where the per-image lines say it)
    for source, kind in tqdm(jobs, desc="explain", unit="image", file=sys.stderr, disable=len(jobs) < 2 or None):
        try:
            _explain_one(run, source, kind)
        except MethodNotApplicableError as err:  # the same for every input: said once
            return _error(err)
        except (ImageReadError, ValueError) as err:
            failures += 1
            print(f"error: {err}", file=sys.stderr)
        except (RuntimeError, AssertionError) as err:
            failures += 1
            print(f"error: {source}: the model failed on this input ({type(err).__name__}: {err})", file=sys.stderr)
    return 1 if failures else 0


def _cmd_bench(args: argparse.Namespace) -> int:
    import os

    from .bench import BENCHMARKS
    from .bench.store import ConfigMismatchError
    from .data.datasets import DatasetLayoutError
    from .models import WeightsUnavailableError

    bench = BENCHMARKS.get(args.benchmark)
    try:
        cfg = bench.config.load(args.config) if args.config else bench.config()
        cfg = dataclasses.replace(cfg, **_given(args, bench.config))
        if getattr(args, "estimate", None) is not None:  # each run of a suite, like one run
            if args.out and Path(args.out).exists() and not Path(args.out).is_dir():
                return _error(f"{args.out}: a file, not a run folder (choose another --out)")
            print(bench.estimate(cfg, args.out, items=args.estimate))
            return 0
        result = bench.run(cfg, args.out)
    except (ConfigMismatchError, DatasetLayoutError, WeightsUnavailableError, FileNotFoundError, ValueError,
            KeyError) as err:
        return _error(err.args[0] if isinstance(err, KeyError) and err.args else err)
    with result:
        if int(os.environ.get("RANK", 0)) == 0:
            print(result.text())
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    from .bench import BENCHMARKS
    from .bench.report import report_benchmark, run_folders, write_report

    for folder in run_folders(args.run_dir):  # a suite's folder (attrdist bench study): a report of each run
        try:
            written = write_report(folder, BENCHMARKS.get(report_benchmark(folder)))
        except (FileNotFoundError, ValueError, KeyError) as err:
            return _error(err.args[0] if isinstance(err, KeyError) and err.args else err)
        print(written["markdown"].read_text())
        print("wrote " + ", ".join(str(p) for p in written.values()), file=sys.stderr)
    return 0


def _cmd_serve(args: argparse.Namespace) -> int:
    from .app import AppConfig, serve

    try:
        config = AppConfig(**_given(args, AppConfig))
    except ValueError as err:
        return _error(err)
    return serve(config) or 0


COMMAND_RUNNERS: dict[str, Callable[[argparse.Namespace], int]] = {
    "explain": _cmd_explain, "bench": _cmd_bench, "report": _cmd_report, "serve": _cmd_serve,
    "methods": _cmd_methods, "models": _cmd_models, "classes": _cmd_classes,
}


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line.

    Args:
        argv: Arguments (default: ``sys.argv[1:]``).

    Returns:
        The exit status.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    command = next((a for a in argv if not a.startswith("-")), None)
    args = build_parser(command if command in COMMANDS else "").parse_args(argv)
    import warnings

    # warnings in one line, without the source line that raised them (a user reads the message, not our code)
    warnings.formatwarning = lambda message, category, *_: f"warning: {message}\n"
    if args.command in ("explain", "bench", "serve"):  # the commands that compute: freed tensors' memory reused
        from ._memory import reuse_freed_memory

        reuse_freed_memory()
    try:
        return COMMAND_RUNNERS[args.command](args)
    except BrokenPipeError:  # `attrdist classes | head`: the reader has what it wanted
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except KeyboardInterrupt:
        print("interrupted (a benchmark resumes where it stopped when run again)", file=sys.stderr)
        return 130
    except Exception as err:  # noqa: BLE001 - one line for the user; the traceback on request
        import os

        if os.environ.get("ATTRDIST_DEBUG", "").strip().lower() in ("1", "true", "yes"):  # not "0" or "no"
            raise
        if type(err).__module__ == "sqlite3":  # the run folder's database: name it, and the usual causes
            folder = getattr(args, "out", None) or getattr(args, "run_dir", None)
            return _error(f"{folder}/results.sqlite: {err} (is the disk full or the folder read-only?)")
        return _error(f"{_describe(err)} (ATTRDIST_DEBUG=1 shows the traceback)")


def _describe(err: BaseException) -> str:
    """One line for an exception: its message, or its type when the message alone says nothing."""
    text = " ".join(str(err).split())
    if isinstance(err, OSError) and err.filename is not None:
        text = f"{err.filename}: {err.strerror or text}"
    elif isinstance(err, KeyError) and err.args:
        text = str(err.args[0])
    plain = (ValueError, OSError, KeyError, TypeError)
    first = text.split(". ")[0][:400]
    return first if isinstance(err, plain) and first else f"{type(err).__name__}: {first or 'no message'}"


if __name__ == "__main__":
    sys.exit(main())
