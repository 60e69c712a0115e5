"""The explorer's results without HTTP: class names where the page takes a class, and VAR re-renders that redraw
only what a VAR control changes."""

import pytest

from attrdist.app import AppConfig, ExplainRequest, Explorer, UserError, VarRequest
from attrdist.app import render as render_module


def explain(explorer, query):
    """The explorer's answer to an explain request's query string (parsed as the server parses it)."""
    return explorer.explain(ExplainRequest.parse(query))


def panels(explorer, query):
    """The explorer's answer to a VAR request's query string."""
    return explorer.panels(VarRequest.parse(query))


@pytest.fixture(scope="module")
def explorer(lite0):
    return Explorer(AppConfig(port=0, cache_size=4), models={"efficientnet_lite0": lite0})


@pytest.fixture(scope="module")
def named(explorer):
    """Gradient maps (the cheapest method) of classes given by name, the target too."""
    return explain(explorer, {"sample": "chelsea", "methods": "gradcam,gradient",
                                   "classes": "Tabby, tiger cat,285", "target": "egyptian CAT"})


@pytest.mark.slow
def test_class_names_in_the_class_set_and_as_target(explorer, named):
    res = named
    assert [c["index"] for c in res["classes"]] == [281, 282, 285] and res["target"] == 285
    # the same classes by id: the same result (one cache entry, one model call)
    calls = explorer.model_calls
    same = explain(explorer, {"sample": "chelsea", "methods": "gradcam,gradient", "classes": "281,282,285",
                                   "target": "285"})
    assert same["key"] == res["key"] and explorer.model_calls == calls
    # a VAR request may name its target too, among the class set
    assert panels(explorer, {"key": res["key"], "target": "Tiger Cat"})["target"] == 282
    with pytest.raises(UserError, match="not in the class set"):
        panels(explorer, {"key": res["key"], "target": "goldfish"})


@pytest.mark.parametrize("params, message", [
    ({"classes": "tabby, zebrafishcat"}, "did you mean|no class named 'zebrafishcat'"),
    ({"classes": "top3+worst", "target": "tabbby"}, "target must be an integer class id or a class name.*tabby"),
])
def test_unknown_class_names_say_what_was_meant(explorer, params, message):
    with pytest.raises(UserError, match=message):
        explain(explorer, {"sample": "chelsea", "methods": "gradcam", **params})


@pytest.mark.slow
def test_var_change_redraws_only_the_refined_rows(explorer, named, monkeypatch):
    res = named
    first = panels(explorer, {"key": res["key"], "preset": "paper"})
    drawn = []
    real = render_module.png
    monkeypatch.setattr(render_module, "png", lambda a: drawn.append(a.shape) or real(a))
    second = panels(explorer, {"key": res["key"], "preset": "smoothed", "tau": "0.2"})
    # per method: 3 refined maps and the dominance map; the image and the vanilla rows come from the first call
    assert len(drawn) == 2 * (3 + 1)
    assert second["image"] == first["image"]
    for name in ("gradcam", "gradient"):
        assert second["panels"][name]["vanilla"] == first["panels"][name]["vanilla"]
        assert second["panels"][name]["var"]["panels"] != first["panels"][name]["var"]["panels"]
    drawn.clear()
    other_sign = panels(explorer, {"key": res["key"], "preset": "smoothed", "tau": "0.2", "sign": "absolute"})
    assert len(drawn) == 1 + 2 * (3 + 3 + 1)  # another sign draws the vanilla rows anew
    assert other_sign["panels"]["gradient"]["vanilla"] != first["panels"]["gradient"]["vanilla"]


@pytest.mark.slow
def test_new_target_or_sign_reuses_the_refined_maps(explorer, named, monkeypatch):
    from attrdist.explanation import Explanation

    params = {"key": named["key"], "preset": "normalized", "tau": "0.05"}
    panels(explorer, params)
    runs = []
    real = Explanation.refine
    monkeypatch.setattr(Explanation, "refine", lambda self, *a, **k: runs.append(k) or real(self, *a, **k))
    assert panels(explorer, {**params, "target": "281"})["target"] == 281
    panels(explorer, {**params, "sign": "absolute"})
    assert runs == []  # VAR ran once for these parameters
    panels(explorer, {**params, "tau": "0.06"})
    assert len(runs) == 1


@pytest.mark.slow
def test_a_class_keeps_its_colour_across_class_sets(explorer, named):
    """The page colours classes as the figures do (by id): tabby keeps its colour in another set, at another place."""
    from attrdist.viz import class_colors

    other = explain(explorer, {"sample": "chelsea", "methods": "gradcam", "classes": "285,3,281"})
    colour = {c["index"]: c["color"] for c in named["classes"]}
    assert [c["color"] for c in named["classes"]] == class_colors([281, 282, 285])
    assert {c["index"]: c["color"] for c in other["classes"]}[281] == colour[281]
    assert {c["index"]: c["color"] for c in other["classes"]}[285] == colour[285]
