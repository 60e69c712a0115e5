"""Issue 21, items 2 and 6: figures that show in notebooks and scripts and say what they show.

``show()`` returns the figure, shows it once in Jupyter and only opens a window where the backend is interactive;
results and explanations draw themselves (``_repr_png_``); nothing sets a backend at import; results carry class
names; the paper figure keeps every font at 7 pt or more at the width it is laid out for, labels its colour bars,
marks zeroed maps, names its context in the footer and gives each class one colour wherever it appears.
"""

import subprocess
import sys
import types

import matplotlib
import matplotlib.pyplot as plt
import matplotlib.text
import pytest
import torch
from PIL import Image

from attrdist import VAR, get_method
from attrdist.explain import explain_image
from attrdist.models import LoadedModel
from attrdist.models.loading import Preprocess
from attrdist.viz import CLASS_COLORS, MIN_FONT_PT, class_colors, explanation_figure, show

NAMES = ["tench", "goldfish", "great white shark", "tiger shark", "hammerhead", "electric ray", "stingray",
         "cock", "hen", "African hunting dog"]
PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def lm(tiny_cnn):
    return LoadedModel(model=tiny_cnn, preprocess=Preprocess(resize=40, crop=32), class_names=NAMES, name="tiny",
                       weights="random")


@pytest.fixture
def photo():
    gen = torch.Generator().manual_seed(0)
    return Image.fromarray((torch.rand(48, 40, 3, generator=gen) * 255).byte().numpy())


@pytest.fixture
def exp(lm, photo):
    return explain_image(lm, photo, methods=["gradient", "gradcam"], classes="top3+worst",
                         preset=["smoothed-positive", "paper"], method_options={"gradcam": {"relu": False}})


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _texts(fig):
    fig.canvas.draw()
    return [t for t in fig.findobj(matplotlib.text.Text) if t.get_visible() and t.get_text().strip()]


def test_importing_sets_no_backend_and_only_viz_loads_matplotlib():
    code = ("import sys, matplotlib; matplotlib.use('svg'); import attrdist, attrdist.viz, attrdist.explanation, "
            "attrdist.var; import torch; from attrdist.viz import show; show(torch.rand(4, 4)); "
            "print(matplotlib.get_backend())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "svg"  # a notebook's (or a user's) backend stays
    # viz imports matplotlib plainly (issue 30: laziness only at the edges); a result's modules draw through it on
    # demand, so importing them loads no matplotlib
    code = "import sys, attrdist.explanation, attrdist.var; print('matplotlib' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.stdout.strip() == "False", out.stderr


def test_show_returns_the_figure_and_opens_no_window_on_a_non_interactive_backend(lm, photo, monkeypatch):
    from attrdist.data import model_input

    view, x = model_input(photo, lm.preprocess)
    result = VAR(get_method("gradcam", lm), classes="top3+worst").attribute(x)
    monkeypatch.setattr(plt, "show", lambda *a, **k: pytest.fail("plt.show() on a non-interactive backend"))
    fig = show(result, view)
    assert isinstance(fig, matplotlib.figure.Figure)
    assert fig.axes[0].images[0].get_array().shape[:2] == (32, 32)  # drawn over the image the model saw
    name = NAMES[int(result.target[0])]
    assert name in fig.axes[0].get_title()  # the class by name
    assert show(result, view, class_id=NAMES[int(result.classes[0, 1])]).axes[0].get_title().endswith(
        f"({int(result.classes[0, 1])})")


def test_show_opens_a_window_in_a_script_with_an_interactive_backend(monkeypatch):
    import attrdist.viz as viz

    calls = []
    monkeypatch.setattr(viz, "_interactive_backend", lambda name: True)
    monkeypatch.setattr(plt, "show", lambda *a, **k: calls.append(1))
    fig = show(torch.rand(6, 6))
    assert calls == [1] and isinstance(fig, matplotlib.figure.Figure)
    _, ax = plt.subplots()
    show(torch.rand(6, 6), ax=ax)  # a figure of the caller's: the caller shows it
    show(torch.rand(6, 6), display=False)
    assert calls == [1]


def test_interactive_backends_are_told_apart():
    from attrdist.viz import _interactive_backend

    assert _interactive_backend("TkAgg") and _interactive_backend("qtagg")
    assert not _interactive_backend("agg") and not _interactive_backend("pdf")


def test_show_in_jupyter_displays_once(monkeypatch):
    """Shown below the cell when drawn, not again when it is the cell's value; as any figure in a later cell."""
    shown = []
    shell = types.SimpleNamespace(kernel=object(), execution_count=5)
    ipython = types.ModuleType("IPython")
    ipython.get_ipython = lambda: shell
    display = types.ModuleType("IPython.display")
    display.display = lambda obj: shown.append(obj)
    monkeypatch.setitem(sys.modules, "IPython", ipython)
    monkeypatch.setitem(sys.modules, "IPython.display", display)
    monkeypatch.setattr(plt, "show", lambda *a, **k: pytest.fail("no plt.show() in Jupyter"))
    fig = show(torch.rand(6, 6))
    assert shown == [fig]
    assert not plt.fignum_exists(fig.number)  # the inline backend does not show it a second time
    fig._ipython_display_()  # IPython displaying the cell's value: already on screen
    assert shown == [fig]
    fig2 = show(torch.rand(6, 6))
    shell.execution_count = 6
    fig2._ipython_display_()  # shown again from a later cell
    assert shown == [fig, fig2, fig2] and not hasattr(fig2, "_ipython_display_")


def test_results_and_explanations_draw_themselves_for_jupyter(lm, photo, exp):
    from attrdist.data import model_input

    _, x = model_input(photo, lm.preprocess)
    result = VAR(get_method("gradient", lm), classes=[1, 2, 9]).attribute(x)
    png = result._repr_png_()
    assert png.startswith(PNG) and len(png) > 1000
    assert exp._repr_png_().startswith(PNG)
    assert not plt.get_fignums()  # nothing left open for the inline backend to show again


def test_results_carry_class_names(lm, tiny_cnn, photo):
    from attrdist.data import model_input

    _, x = model_input(photo, lm.preprocess)
    x = torch.cat([x, x.flip(-1)])
    result = VAR(get_method("gradient", lm), classes=[9, 1]).attribute(x)
    assert result.class_names == [["African hunting dog", "goldfish"]] * 2
    assert result.target_names == [NAMES[int(t)] for t in result.target]
    assert result[1].class_names == [["African hunting dog", "goldfish"]]
    assert result.refine("paper").class_names == result.class_names
    assert result.to("cpu").class_names == result.class_names
    assert "African hunting dog" not in repr(result)  # the label set is not printed with the result
    bare = VAR(get_method("gradient", tiny_cnn), classes=[9, 1]).attribute(x)
    assert bare.class_names is None and bare.target_names is None


def test_loaded_model_prints_in_one_line(lm):
    import attrdist

    text = repr(attrdist.load_model())
    assert len(text) < 200 and "\n" not in text and "efficientnet_lite0" in text and "classes=1000" in text
    assert "weights='random'" in repr(lm)


def test_a_class_has_one_colour_whatever_the_order_target_or_figure(exp):
    ids = exp.classes
    assert class_colors(ids) == class_colors(ids[::-1])[::-1]
    assert len(set(class_colors(ids))) == len(ids)
    assert len(set(class_colors([0, 8, 16, 24]))) == 4  # same slot: each still its own colour
    assert class_colors([5]) == [CLASS_COLORS[5]] and class_colors([13]) == [CLASS_COLORS[5]]

    def spine_colours(fig):
        titled = {ax.get_title().split("\n")[0].rstrip(" *"): ax for ax in fig.axes}
        return {name: matplotlib.colors.to_hex(titled[name].spines["top"].get_edgecolor()) for name in exp.class_names}

    other = exp.classes[-1]
    first = spine_colours(exp.figure())
    second = spine_colours(exp.with_target(other).figure(width=6.9))
    assert first == second and len(set(first.values())) == len(exp.classes)


@pytest.mark.parametrize("width", [3.3, 6.9])
def test_every_font_is_at_least_7_pt_at_the_printed_width(exp, width):
    fig = exp.figure(width=width)
    assert fig.get_figwidth() == pytest.approx(width, abs=1e-3)
    texts = _texts(fig)
    assert min(t.get_fontsize() for t in texts) >= MIN_FONT_PT
    renderer = fig.canvas.get_renderer()
    page = fig.bbox.expanded(1.0, 1.0)
    for t in texts:  # nothing is cut at the figure's edge
        box = t.get_window_extent(renderer)
        assert page.x0 - 1 <= box.x0 and box.x1 <= page.x1 + 1 and page.y0 - 1 <= box.y0, t.get_text()
    titles = [ax.title for ax in fig.axes if ax.get_title() and ax.title.get_window_extent(renderer).y0 >
              fig.bbox.y1 - 0.8 * fig.dpi]
    boxes = [t.get_window_extent(renderer) for t in titles]
    assert len(boxes) == len(exp.classes) + 1
    for i, a in enumerate(boxes):  # the class names over the columns do not run into each other
        for b in boxes[i + 1:]:
            assert not a.overlaps(b), (titles[boxes.index(a)].get_text(), titles[boxes.index(b)].get_text())


def test_the_default_figure_has_panels_of_2_2_inches(exp):
    fig = exp.figure()
    panels = [ax for ax in fig.axes if ax.images]
    w, h = panels[0].get_position().width * fig.get_figwidth(), panels[0].get_position().height * fig.get_figheight()
    assert w == pytest.approx(2.2) and h == pytest.approx(2.2)


def test_colour_bars_say_what_they_show(exp):
    fig = exp.figure(sign="positive")
    bars = [ax for ax in fig.axes if ax.get_ylabel() and not ax.images]
    labels = [ax.get_ylabel().replace("\n", " ") for ax in bars]
    # per method: the raw row and one VAR row per preset
    assert labels == ["raw map, positive part", "VAR map, positive part", "VAR map, positive part"] * 2
    narrow = [ax.get_ylabel() for ax in exp.figure(sign="absolute", width=3.3).axes if ax.get_ylabel() and
              not ax.images]
    assert narrow and all(label.startswith("|") for label in narrow)


def test_one_vanilla_and_one_var_row_per_preset_from_the_same_raw_maps(exp):
    rows = exp.variant_results()
    assert list(rows) == ["smoothed-positive", "paper"]
    for name, result in exp.results.items():  # the raw maps are shared, the refined maps differ
        assert rows["paper"][name].maps is result.maps
        assert not torch.equal(rows["paper"][name].refined, rows["smoothed-positive"][name].refined)
    fig = exp.figure()
    labels = [ax.get_ylabel() for ax in fig.axes if ax.images and ax.get_ylabel()]
    assert labels == ["vanilla", "VAR smoothed-positive", "VAR paper"] * 2
    record = exp.record()
    assert list(record["presets"]) == ["smoothed-positive", "paper"]
    assert set(record["zeroed_by_preset"]) == {"smoothed-positive", "paper"}
    assert {"refined_gradient@paper", "refined_gradcam@smoothed-positive"} <= set(exp.arrays())


def test_the_footer_names_model_weights_options_presets_and_class_set(exp, lm, photo):
    text = exp.caption()
    for words in ("tiny, random weights", "Grad-CAM: relu=False", "VAR presets smoothed-positive, paper",
                  "class set top3+worst of the photo", "* the explained class"):
        assert words in text, (words, text)
    assert "grid" not in text
    fig_text = " ".join(t.get_text().replace("\n", " ") for t in exp.figure().texts)
    assert "random weights" in fig_text
    grid = explain_image(lm, photo, methods=["gradient"], preset="paper", tau=0.2, input_kind="grid")
    assert "of the grid" in grid.caption() and "VAR preset paper (tau=0.2)" in grid.caption()
    assert "relu" not in grid.caption()


def test_every_zeroed_map_is_marked_on_its_panel(lm, photo):
    exp = explain_image(lm, photo, methods=["gradient"], classes="top3+worst", preset="paper", tau=0.9)
    zeroed = exp.zeroed()
    assert zeroed == {"paper (tau=0.9)": {"gradient": exp.class_names}}  # q - 1/K < 0.9 with K = 4
    for width in (None, 3.3):
        fig = exp.figure(width=width)
        marks = [t for ax in fig.axes for t in ax.texts if "zeroed" in t.get_text()]
        assert len(marks) == len(exp.classes)
        assert min(t.get_fontsize() for t in marks) >= MIN_FONT_PT


def test_the_figure_of_a_result_without_an_image():
    class Result:  # what the figure reads of a result (viz.RefinedMaps)
        maps = torch.rand(1, 3, 8, 8)
        refined = torch.zeros(1, 3, 8, 8)
        q = torch.full((1, 3, 8, 8), 1 / 3, dtype=torch.float64)
        kept_nothing = torch.ones(1, 3, dtype=torch.bool)

    class Exp:  # what the figure reads of an explanation (viz.ExplanationLike)
        image = None
        classes, target, class_names, probabilities = [4, 2, 7], 2, ["a", "b", "c"], [0.5, 0.3, 0.2]
        results, display_names = {"gradient": Result()}, {}

        def variant_results(self):
            return {"": self.results}

        def caption(self):
            return ""

    fig = explanation_figure(Exp(), caption=False)
    assert [ax.get_ylabel() for ax in fig.axes if ax.get_ylabel() in ("vanilla", "VAR")] == ["vanilla", "VAR"]
