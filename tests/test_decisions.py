"""Issue 30, item 3: each decision of the explanation layer has one definition, and everything else reads it.

A class-set spec or names -> a set (:func:`attrdist.classes.class_set`); a target name -> an id
(:func:`attrdist.classes.class_id`, :meth:`attrdist.explanation.Explanation.class_of` within a set); the margin of
a ranked set (:meth:`attrdist.var.VARConfig.margin`, :func:`attrdist.var.preset_margins`); the bounds of tau
(:data:`attrdist.var.TAU_BOUNDS`); "VAR zeroed this map" (:func:`attrdist.var.kept_nothing`); the package's export
list (``attrdist._EXPORTS``). The greps read ``src/`` (the benchmarks' own files are another layer's).
"""

import ast
import re
from pathlib import Path

import pytest
import torch

import attrdist
from attrdist.classes import ClassSet, class_id, class_set, is_ranked, parse_class_set
from attrdist.var import PRESETS, TAU_BOUNDS, VARConfig, kept_nothing, preset_margins, refine

SRC = Path(attrdist.__file__).parent
PAGE = SRC / "app" / "static" / "index.html"
NAMES = ["tabby", "tiger cat", "Persian cat", "tiger"]


def _sources(*, skip_bench: bool = True) -> dict[Path, str]:
    return {p: p.read_text() for p in sorted(SRC.rglob("*.py")) if not (skip_bench and "bench" in p.parts)}


def _where(pattern: str, *, page: bool = False) -> set[str]:
    """The files of ``src/attrdist`` (and the explorer's page) where a regular expression matches."""
    texts = {**_sources(), **({PAGE: PAGE.read_text()} if page else {})}
    return {str(p.relative_to(SRC)) for p, text in texts.items() if re.search(pattern, text)}


# (f) the export list

def test_the_export_list_is_written_once():
    assert attrdist.__all__ == [*attrdist._EXPORTS, "__version__"]
    tree = ast.parse((SRC / "__init__.py").read_text())
    block = next(n for n in tree.body if isinstance(n, ast.If) and "TYPE_CHECKING" in ast.unparse(n.test))
    imported = {alias.name: node.module for node in block.body if isinstance(node, ast.ImportFrom)
                for alias in node.names}
    assert imported == attrdist._EXPORTS  # the names type checkers see are the names the package exports
    for name in attrdist._EXPORTS:
        assert getattr(attrdist, name) is not None


# (a) a class-set spec or names -> a set

def test_a_class_set_is_read_by_one_function():
    assert class_set("top3+worst", NAMES) == parse_class_set("top3+worst")
    assert class_set("Tiger Cat, 0,persian cat", NAMES).fixed == (1, 0, 2)
    assert class_set([3, 1], NAMES).fixed == (3, 1)
    with pytest.raises(ValueError, match="does not fit the model's 4 classes"):
        class_set("1,7", NAMES)
    with pytest.raises(ValueError, match="does not fit"):
        class_set("top4+worst", NAMES)
    with pytest.raises(ValueError, match="did you mean 'tiger cat'"):
        class_set("tiger kat, tabby", NAMES)
    with pytest.raises(ValueError, match="K=1"):  # ids only: the spec's own error, not a name lookup
        class_set("2", NAMES)
    # the names of a set are turned into ids in one place: nothing else in src/ calls named_class_set
    assert _where(r"named_class_set\(") == {"classes.py"}
    assert {"cli.py", "explain.py"} <= _where(r"\bclass_set\(")


# (b) a target name -> an id

def test_a_target_name_is_read_by_one_function():
    assert class_id("TIGER", NAMES) == 3 and class_id("2", NAMES) == 2
    # nothing but classes.class_id and Explanation.class_of reads a class id out of a string
    assert _where(r'lstrip\("[+-]*"\)\.isdigit\(\)') <= {"classes.py", "explanation.py"}
    assert "difflib" not in (SRC / "explanation.py").read_text()


# (c) the margin of a ranked set

def test_the_margin_of_a_ranked_set_is_one_rule():
    assert is_ranked(parse_class_set("best-vs-worst")) and not is_ranked(parse_class_set("3,5"))
    assert not is_ranked(torch.tensor([[1, 2]]))
    for ranked in (True, False):
        assert preset_margins(ranked) == {n: c.margin(ranked) for n, c in PRESETS.items()}
    assert preset_margins(True)["authors-code"] == 0.01 and preset_margins(False)["authors-code"] == 0.1
    # the rule reads tau_ranked in presets.py only; the page gets each preset's margin from the server
    readers = _where(r"\.tau_ranked\b(?!\s*=)", page=True)
    assert readers == {"presets.py"}, readers
    assert "ClassSet) and not" not in "".join(_sources().values())  # is_ranked, not an inline test


# (d) the bounds of tau

def test_the_bounds_of_tau_are_one_constant():
    assert 0.5 in TAU_BOUNDS and -0.99 in TAU_BOUNDS and 1.0 not in TAU_BOUNDS and -1 not in TAU_BOUNDS
    with pytest.raises(ValueError, match=r"tau must lie in \(-1, 1\)"):
        VARConfig(tau=1.0)
    assert TAU_BOUNDS.control(0.01) == {"min": -0.99, "max": 0.99, "step": 0.01}
    # no other file writes the interval (server: [-0.99, 0.99]; the page's slider: 0..0.5, before)
    assert _where(r"-0\.99|-1\.0 < |\(-1, 1\)") <= {"presets.py"}
    slider = re.search(r'<input[^>]*id="tau"[^>]*>', PAGE.read_text())
    assert slider is None or not re.search(r'\b(min|max)="', slider.group(0)), slider


# (e) "VAR zeroed this map"

def test_a_zeroed_map_means_one_thing_everywhere(tmp_path):
    out = refine(torch.tensor([[[[2.0, 0.0]], [[0.0, 0.0]]]]), "paper")
    assert kept_nothing(out.keep).tolist() == [[False, True]]
    # the figure, the JSON record, the warning line and the explorer read the predicate, not the masks
    assert _where(r"\.keep\b") <= {"var.py"}
    assert {"explanation.py", "viz.py"} <= _where(r"kept_nothing")
    assert _where(r"kept_nothing", page=False) & {"app/server.py", "app/explorer.py", "app/render.py"}
    assert "kept === 0" not in PAGE.read_text()


def test_the_figure_json_and_warning_agree_with_kept_nothing(tiny_cnn):
    from PIL import Image

    from attrdist.cli import _zeroed_line
    from attrdist.explain import explain_image
    from attrdist.models import LoadedModel
    from attrdist.models.loading import Preprocess

    lm = LoadedModel(model=tiny_cnn, preprocess=Preprocess(resize=40, crop=32),
                     class_names=[f"class {i}" for i in range(10)], name="tiny", weights="random")
    gen = torch.Generator().manual_seed(0)
    image = Image.fromarray((torch.rand(40, 40, 3, generator=gen) * 255).byte().numpy())
    exp = explain_image(lm, image, methods=["gradient"], classes="top3+worst", preset=["paper", "smoothed-positive"],
                        tau=0.2)
    rows = exp.variant_results()
    expected = {label: [bool(z) for z in results["gradient"].kept_nothing[0]] for label, results in rows.items()}
    assert any(any(z) for z in expected.values()) and not all(all(z) for z in expected.values())
    assert exp.record()["zeroed_by_preset"] == {label: {"gradient": z} for label, z in expected.items()}
    named = {label: [n for n, z in zip(exp.class_names, zs, strict=True) if z] for label, zs in expected.items()}
    assert exp.zeroed() == {label: {"gradient": n} for label, n in named.items() if n}
    marks = [t for ax in exp.figure(caption=False).axes for t in ax.texts if "zeroed" in t.get_text()]
    assert len(marks) == sum(sum(z) for z in expected.values())
    assert _zeroed_line(exp).count(",") + _zeroed_line(exp).count(";") + 1 >= sum(sum(z) for z in expected.values())


def test_a_class_set_of_the_explanation_answers_by_id_and_name(tiny_cnn):
    from PIL import Image

    from attrdist.explain import explain_image
    from attrdist.models import LoadedModel
    from attrdist.models.loading import Preprocess

    lm = LoadedModel(model=tiny_cnn, preprocess=Preprocess(resize=40, crop=32),
                     class_names=[f"class {i}" for i in range(10)], name="tiny", weights="random")
    exp = explain_image(lm, Image.new("RGB", (40, 40), (120, 30, 200)), methods=["gradient"],
                        classes="class 3, class 5, class 7", preset=["paper", "normalized"])
    assert isinstance(parse_class_set(exp.class_rule), ClassSet) and exp.classes == [3, 5, 7]
    assert not exp.ranked and exp.margins() == preset_margins(False)
    assert exp.class_of("CLASS 7") == 7 and exp.class_of("5") == 5
    other = exp.with_target("class 7")
    assert other.target == 7 and all(int(r["gradient"].target[0]) == 7 for r in other.variant_results().values())
    with pytest.raises(ValueError, match="not in the class set"):
        exp.with_target("class 4")


def test_the_configuration_modules_are_light_and_name_the_operators_normalisations():
    """``attrdist.presets`` and ``attrdist.explain_config`` hold what the help paths read: no torch, no matplotlib."""
    import subprocess
    import sys

    from attrdist.presets import NORMALIZATION_NAMES
    from attrdist.var import NORMALIZATIONS

    assert tuple(NORMALIZATIONS) == NORMALIZATION_NAMES == VARConfig.choices()["normalize"]
    code = ("import sys, attrdist.presets, attrdist.explain_config; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'matplotlib', 'numpy')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
