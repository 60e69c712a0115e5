"""configs/paper/*.yaml: each loads as its benchmark's configuration, names its weights explicitly, builds its
methods on its architecture, and a run without the weights names the file to fetch."""

from pathlib import Path

import pytest

from attrdist import get_method, load_model
from attrdist.bench import BENCHMARKS
from attrdist.cli import main

pytestmark = pytest.mark.slow  # end-to-end: `pytest -m "not slow"` leaves it out

CONFIGS = sorted((Path(__file__).resolve().parents[1] / "configs" / "paper").glob("*.yaml"))
BENCHMARK_OF = {"quad": "localization", "partquad": "localization", "coco": "coco", "pic": "insertion",
                "sanity": "sanity"}


def test_every_paper_table_has_a_config():
    assert {p.stem.split("-")[0] for p in CONFIGS} == set(BENCHMARK_OF)
    assert {p.stem for p in CONFIGS if p.stem.startswith("quad-")} == {
        "quad-resnet50", "quad-wide_resnet50_2", "quad-densenet121", "quad-convnext_base", "quad-vit_b_16"}
    assert {"pic-resnet50", "pic-vit_b_16", "sanity-resnet50", "sanity-vit_b_16"} <= {p.stem for p in CONFIGS}


@pytest.mark.parametrize("path", CONFIGS, ids=[p.stem for p in CONFIGS])
def test_configs_run_the_authors_settings(path):
    """The VAR authors' code (utils.attr_functions) calls Captum with its defaults: LayerGradCam keeps the signed
    CAM and GuidedGradCam upsamples nearest; their VitGradCam min-max scales each class map; their T-LRP copy does
    not normalise the rollout's rows. Table 2a has all six CNN methods."""
    cfg = BENCHMARKS.get(BENCHMARK_OF[path.stem.split("-")[0]]).config.load(path)
    opts = cfg.method_options
    if "vit" in path.stem:
        assert opts["gradcam"]["minmax"] is True and opts["tlrp"]["row_normalize"] is False
        return
    assert opts["gradcam"]["relu"] is False
    if "guided_gradcam" in cfg.methods:
        assert opts["guided_gradcam"]["upsample"] == "nearest"
    if path.stem.startswith("pic-"):
        assert {"guided_gradcam", "lrp"} <= set(cfg.methods)


@pytest.mark.parametrize("path", CONFIGS, ids=[p.stem for p in CONFIGS])
def test_config_loads_and_its_methods_apply(path):
    cfg = BENCHMARKS.get(BENCHMARK_OF[path.stem.split("-")[0]]).config.load(path)
    assert cfg.weights == "IMAGENET1K_V1" or cfg.model == "timm:vit_base_patch16_224.orig_in21k_ft_in1k"
    assert set(cfg.variant_configs()) == {"paper", "authors-code"}
    if path.stem in ("quad-resnet50", "quad-densenet121", "quad-vit_b_16"):  # build the methods on the architecture
        lm = load_model(cfg.model, weights="random")
        for name in cfg.methods:
            get_method(name, lm, **cfg.method_options.get(name, {}))


def test_missing_weights_name_the_file(tmp_path, capsys):
    config = str(CONFIGS[0].parent / "quad-resnet50.yaml")
    assert main(["bench", "localization", "--config", config, "--dataset", "sample", "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert "ResNet50_Weights.IMAGENET1K_V1" in err
    assert "https://download.pytorch.org/models/resnet50-0676ba61.pth" in err
    config = str(CONFIGS[0].parent / "quad-vit_b_16.yaml")
    assert main(["bench", "localization", "--config", config, "--dataset", "sample", "--out", str(tmp_path / "v")]) == 2
    err = capsys.readouterr().err
    assert "timm/vit_base_patch16_224.orig_in21k_ft_in1k" in err and "jx_vit_base_p16_224-80ecf9dd.pth" in err
