"""A test per registry: an entry registered here appears in the command line and works end to end (methods,
metrics and dataset kinds: tests/test_extending.py, which follows docs/extending.md)."""

from dataclasses import dataclass, field

import pytest
import torch

from attrdist.bench import BENCHMARKS, Benchmark, ItemResult, Score, register_benchmark
from attrdist.bench.config import RunConfig
from attrdist.cli import main
from attrdist.metrics import METRICS, register_metric
from attrdist.models import (
    MODEL_SOURCES,
    LoadedModel,
    ModelSource,
    Preprocess,
    default_class_names,
    register_model_source,
)
from attrdist.options import opt


@pytest.fixture
def toy_source(tiny_cnn):
    register_model_source(ModelSource("toy", "toy:NAME", "tiny random CNNs (tests)", lambda s: s.startswith("toy:"),
                                      lambda spec, weights, trust: LoadedModel(
                                          model=tiny_cnn, preprocess=Preprocess(crop=32, resize=36), name=spec,
                                          weights="random", class_names=default_class_names(10).names)))
    yield
    MODEL_SOURCES.remove("toy")


def test_model_source(toy_source, tmp_path, capsys):
    assert main(["models"]) == 0
    assert "toy:NAME" in capsys.readouterr().out
    assert main(["explain", "--model", "toy:cnn", "--methods", "gradcam,gradient", "--out", str(tmp_path)]) == 0
    assert (tmp_path / "sample_grid.json").exists()


@dataclass(kw_only=True)
class ToyConfig(RunConfig):
    """A benchmark that stores each image's mean raw gradient."""

    scale: float = field(default=1.0, metadata=opt("a factor"))


class ToyBench(Benchmark):
    """Each image's mean absolute raw gradient, times a factor (only vanilla: no VAR call)."""

    name = "toybench"
    config = ToyConfig
    summary = "a toy benchmark (tests)"

    def score(self, item, prepared):
        from attrdist import get_method

        value = float(get_method("gradient", self.lm).attribute(prepared.x).maps.abs().mean()) * self.cfg.scale
        return ItemResult(scores=[Score(item, "image", "gradient", "vanilla", "toy_mean", value)])


@pytest.fixture
def toy_bench():
    register_benchmark(ToyBench)
    # a task of the benchmark's own ("count" is for counts of maps, reported as n/N)
    register_metric("toy_mean", task="toy", higher_is_better=False)(None)
    yield
    BENCHMARKS.remove("toybench")
    METRICS.remove("toy_mean")


def test_a_benchmark_is_a_registered_subclass():
    with pytest.raises(TypeError, match="Benchmark subclass"):
        register_benchmark(ToyConfig)
    with pytest.raises(TypeError, match="configuration of the toybench benchmark"):
        register_benchmark(ToyBench)  # registered once: its config belongs to it
        register_benchmark(type("Other", (ToyBench,), {"name": "other"}))
    BENCHMARKS.remove("toybench")


def test_builtin_benchmarks_in_the_order_the_help_lists():
    assert BENCHMARKS.names()[:5] == ["localization", "coco", "insertion", "sanity", "study"]


def test_benchmark_and_its_report(toy_bench, tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["bench", "--help"])
    assert "toybench" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["bench", "toybench", "--help"])
    assert "--scale" in capsys.readouterr().out
    assert main(["bench", "toybench", "--max-items", "2", "--scale", "2", "--out", str(tmp_path)]) == 0
    assert main(["report", str(tmp_path)]) == 0
    assert "toy_mean (vanilla, lower is better)" in capsys.readouterr().out


def test_similarity_metric_is_a_sanity_choice(tmp_path, capsys):
    register_metric("toy_sim", task="similarity", higher_is_better=False, default=False)(
        lambda a, b: float(torch.as_tensor(a).sign().eq(torch.as_tensor(b).sign()).double().mean()))
    try:
        with pytest.raises(SystemExit):
            main(["bench", "sanity", "--help"])
        assert "toy_sim" in capsys.readouterr().out
        assert main(["bench", "sanity", "--max-items", "1", "--depths", "2", "--methods", "gradcam",
                     "--similarities", "spearman,toy_sim", "--out", str(tmp_path)]) == 0
        assert "toy_sim (vanilla, lower is better)" in capsys.readouterr().out
    finally:
        METRICS.remove("toy_sim")
