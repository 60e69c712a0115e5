"""On a CUDA device: every built-in method (both VJP modes), VAR and a benchmark run give the CPU's results,
and the automatic VJP choice measures there. Skipped where there is no GPU (CI has none); on a GPU machine:
``python -m pytest tests/test_cuda.py``."""

import copy
import os
import sys

import pytest
import torch
import torchvision

from attrdist import get_method, list_methods
from attrdist import refine as var

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")

FAST = {"integrated_gradients": dict(steps=6), "smoothgrad": dict(samples=4),
        "bi_attn": dict(steps=4, start_layer=1), "t_attn": dict(steps=4)}


def resnet():
    torch.manual_seed(0)
    return torchvision.models.resnet18(num_classes=10).double().eval()


def tiny_vit():
    timm = pytest.importorskip("timm")
    torch.manual_seed(0)
    return timm.create_model("vit_tiny_patch16_224", img_size=32, patch_size=8, depth=3, num_heads=2, embed_dim=16,
                             num_classes=7).double().eval()


def same_on_cuda(name, model, x, classes, **opts):
    cpu = get_method(name, model, **opts)(x, classes)
    gpu_model = copy.deepcopy(model).cuda()
    gpu = get_method(name, gpu_model, **opts)(x.cuda(), classes.cuda())
    assert gpu.is_cuda and gpu.dtype == cpu.dtype
    torch.testing.assert_close(gpu.cpu(), cpu, rtol=1e-6, atol=1e-9)
    return gpu


@pytest.mark.parametrize("vjp", ["batched", "sequential"])
@pytest.mark.parametrize("name", list_methods("cnn"))
def test_cnn_methods_match_cpu(name, vjp):
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    same_on_cuda(name, resnet(), x, torch.tensor([[1, 5, 9], [0, 3, 7]]), vjp=vjp, **FAST.get(name, {}))


@pytest.mark.parametrize("vjp", ["batched", "sequential"])
@pytest.mark.parametrize("name", list_methods("vit"))
def test_vit_methods_match_cpu(name, vjp):
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    same_on_cuda(name, tiny_vit(), x, torch.tensor([[1, 4, 6], [0, 2, 5]]), vjp=vjp, **FAST.get(name, {}))


def test_var_matches_cpu_and_auto_vjp_measures_on_cuda():
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    classes = torch.tensor([[1, 5, 9, 2], [0, 3, 7, 8]])
    method = get_method("gradient", copy.deepcopy(resnet()).cuda(), vjp="auto")
    att = method.attribute(x.cuda(), classes=classes.cuda())
    maps = att.maps
    assert att.vjp in ("batched", "sequential")
    for preset in ("normalized", "paper", "authors-code"):
        gpu, cpu = var(maps, preset=preset), var(maps.cpu(), preset=preset)
        torch.testing.assert_close(gpu.refined.cpu(), cpu.refined, rtol=1e-6, atol=1e-12)
        torch.testing.assert_close(gpu.q.cpu(), cpu.q, rtol=1e-6, atol=1e-12)


def _values(store):
    """Every score of a run by its map and metric; every map's check (``None``: scorable, else the reason)."""
    scores = {(s.item, s.unit, s.method, s.variant, s.metric): s.value for s in store.scores()}
    return scores, {(m.item, m.unit, m.method, m.variant): m.reason for m in store.maps()}


def test_benchmark_run_on_cuda_matches_cpu(tmp_path):
    import subprocess

    from attrdist.bench import ResultStore

    args = ["bench", "localization", "--max-items", "2", "--methods", "gradcam,gradient", "--cell", "64"]
    values = {}
    # TF32 convolutions (cuDNN's default on Ampere and later) alone move scores by ~2e-3; switch them off to
    # compare the computation itself
    env = {**os.environ, "NVIDIA_TF32_OVERRIDE": "0"}
    for device in ("cpu", "cuda"):
        out = tmp_path / device
        proc = subprocess.run([sys.executable, "-m", "attrdist", *args, "--out", str(out), "--device", device],
                              capture_output=True, text=True, timeout=600, env=env)
        assert proc.returncode == 0, proc.stderr
        with ResultStore(out / "results.sqlite", read_only=True) as store:
            values[device] = _values(store)
    (cpu, cpu_maps), (gpu, gpu_maps) = values["cpu"], values["cuda"]
    assert cpu_maps == gpu_maps and cpu.keys() == gpu.keys() and len(cpu) > 0
    for key, v in cpu.items():
        assert gpu[key] == pytest.approx(v, rel=1e-3, abs=1e-4), key


@pytest.fixture
def no_tf32():
    """Full float32 precision: TF32 convolutions (cuDNN's default) pick kernels by batch size and differ at ~1e-3."""
    old = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    yield
    torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = old


def test_memory_budget_picks_a_chunk_and_keeps_the_result(no_tf32):
    from attrdist.methods.gradient import _CHUNK_CHOICE

    model = copy.deepcopy(resnet()).float().cuda()
    x = torch.randn(4, 3, 64, 64, generator=torch.Generator().manual_seed(5)).cuda()
    classes = torch.tensor([[1, 5, 9]] * 4).cuda()
    ref = get_method("integrated_gradients", model, steps=24, chunk_size=24, vjp="sequential")(x, classes)
    for budget, expected in ((torch.cuda.memory_allocated() + 1, 1), (10**15, 24)):  # nothing spare; no limit
        chunked = get_method("integrated_gradients", model, steps=24, max_memory=budget, vjp="sequential")(x, classes)
        assert next(v for k, v in _CHUNK_CHOICE.items() if k[-1] == budget) == expected
        torch.testing.assert_close(chunked, ref, rtol=1e-4, atol=1e-6 * float(ref.abs().max()))


def test_bfloat16_autocast_runs_and_stays_close():
    model = copy.deepcopy(resnet()).float().cuda()
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(6)).cuda()
    classes = torch.tensor([[1, 5], [0, 3]]).cuda()
    for name in ("gradcam", "gradient", "guided_backprop"):
        full = get_method(name, model)(x, classes)
        low = get_method(name, model, autocast="bfloat16")(x, classes)
        assert low.dtype == torch.float32 and torch.isfinite(low).all()
        assert float((low - full).norm() / full.norm()) < 0.5, name


def test_batched_benchmark_items_match_single_on_cuda(tmp_path, no_tf32):
    from attrdist.bench import LocalizationConfig, run_localization

    values = {}
    for batch in (1, 4):
        cfg = LocalizationConfig(methods=["gradcam", "gradient"], max_items=4, cell=64, batch_size=batch,
                                 device="cuda")
        with run_localization(cfg, tmp_path / str(batch)) as run:
            values[batch] = _values(run.store)
    (one, one_maps), (four, four_maps) = values[1], values[4]
    assert one_maps == four_maps and one.keys() == four.keys()
    for key, v in one.items():
        assert four[key] == pytest.approx(v, rel=1e-3, abs=1e-4), key
