"""Requests parsed apart from the logic (typed requests), and what the page reads from the server instead of deriving
it: the margin's range (VAR's tau bounds), the margin each preset applies to the explained class set, zeroed maps."""

import re
from importlib import resources

import pytest

from attrdist.app import AppConfig, ExplainRequest, Explorer, UserError, VarRequest
from attrdist.classes import parse_class_set
from attrdist.var import TAU_BOUNDS, kept_nothing, preset_margins

KEY = "0123456789abcdef01234567"


def test_explain_request_parses_the_query_and_the_upload():
    req = ExplainRequest.parse({"model": "m", "methods": "gradcam,,gradient", "classes": "tabby, 285",
                                "target": " 285 ", "sample": "chelsea"})
    assert (req.model, req.methods, req.classes, req.target, req.image) == ("m", ("gradcam", "gradient"),
                                                                            "tabby, 285", "285", None)
    # an id or a name, read against the model's label set by attrdist.classes.class_id (the one reading)
    assert ExplainRequest.parse({"target": " tiger cat "}, b"png").target == "tiger cat"
    assert ExplainRequest.parse({}, b"png").image == b"png" and ExplainRequest.parse({}, b"png").model is None
    with pytest.raises(UserError, match="at most 2000"):
        ExplainRequest.parse({"classes": "1," * 1001, "sample": "chelsea"})


def test_var_request_parses_and_refuses_what_var_refuses():
    req = VarRequest.parse({"key": KEY, "preset": "paper", "temperatures": "1, 5", "tau": "-0.5",
                            "normalize": "max", "sign": "absolute", "target": "Tiger Cat"})
    assert (req.temperatures, req.tau, dict(req.choices), req.sign, req.target) == (
        (1.0, 5.0), -0.5, {"normalize": "max"}, "absolute", "Tiger Cat")
    assert req.overrides() == {"temperatures": (1.0, 5.0), "tau": -0.5, "tau_ranked": -0.5, "normalize": "max"}
    for tau in ("1", "-1", "nan", "inf"):  # VAR's own bounds, open at both ends
        with pytest.raises(UserError, match=re.escape(f"tau must lie in {TAU_BOUNDS}")):
            VarRequest.parse({"key": KEY, "tau": tau})
    for query, words in (({"key": "x"}, "key must be"), ({"key": KEY, "preset": "nope"}, "unknown preset"),
                         ({"key": KEY, "temperatures": "0"}, "positive"), ({"key": KEY, "sign": "x"}, "unknown sign")):
        with pytest.raises(UserError, match=words):
            VarRequest.parse(query)


def test_the_page_reads_the_margin_rule_and_bounds_from_the_server(lite0):
    """Issue 30, item 3: the page's slider range and each preset's margin come from var.py through the server."""
    explorer = Explorer(AppConfig(port=0), models={"efficientnet_lite0": lite0})
    options = explorer.options()
    assert options["tau"] == TAU_BOUNDS.control() and options["tau"]["min"] < 0 < options["tau"]["max"]
    assert options["margins"] == preset_margins(parse_class_set(options["default_classes"]).ranked)
    page = resources.files("attrdist.app").joinpath("static/index.html").read_text()
    assert "tau_ranked" not in page and 'max="0.5"' not in page  # no second copy of the rule or the bounds
    assert "kept === 0" not in page and "p.zeroed[i]" in page  # zeroed: the server's predicate


def test_an_explained_set_comes_with_its_margins_and_zeroed_maps(lite0):
    explorer = Explorer(AppConfig(port=0), models={"efficientnet_lite0": lite0})
    ranked = explorer.explain(ExplainRequest.parse({"sample": "chelsea", "methods": "gradient", "classes": "top2"}))
    fixed = explorer.explain(ExplainRequest.parse({"sample": "chelsea", "methods": "gradient",
                                                   "classes": "tabby, tiger cat"}))
    assert ranked["margins"] == preset_margins(True) and fixed["margins"] == preset_margins(False)
    assert ranked["margins"]["authors-code"] != fixed["margins"]["authors-code"]
    request = VarRequest.parse({"key": fixed["key"], "preset": "paper", "tau": "0.9"})  # keeps (almost) nothing
    panel = explorer.panels(request)["panels"]["gradient"]
    exp = explorer.refined(request)
    assert panel["zeroed"] == kept_nothing(exp.results["gradient"].keep)[0].tolist()
    assert panel["zeroed"] == [k == 0 for k in panel["kept"]]
