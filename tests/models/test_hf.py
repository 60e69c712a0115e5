"""Hugging Face transformers models (``hf:``): loading offline, CNN families, and ViT/DeiT attention capture.

Models are built from small configs in Python (no hub access); the HF ViT is checked against a timm ViT
whose weights it carries, in float64.
"""

import json

import pytest
import torch
import torch.nn.functional as F

from attrdist import get_method, list_methods, load_model
from attrdist.models import WeightsUnavailableError, family_of

transformers = pytest.importorskip("transformers")
pytestmark = pytest.mark.slow

CNN_METHODS = ["gradcam", "guided_backprop", "input_x_gradient", "integrated_gradients", "gradient"]


def tiny_resnet(labels=None):
    torch.manual_seed(0)
    kw = dict(id2label=dict(enumerate(labels)), label2id={n: i for i, n in enumerate(labels)}) if labels else {}
    cfg = transformers.ResNetConfig(embedding_size=8, hidden_sizes=[8, 16], depths=[1, 1], num_labels=5, **kw)
    return transformers.ResNetForImageClassification(cfg).double().eval()


def tiny_convnext():
    torch.manual_seed(0)
    cfg = transformers.ConvNextConfig(num_stages=2, hidden_sizes=[8, 16], depths=[1, 1], num_labels=5)
    return transformers.ConvNextForImageClassification(cfg).double().eval()


CNNS = {"resnet": tiny_resnet, "convnext": tiny_convnext}


# --- the model source ---------------------------------------------------------------------------------

def test_hf_source_loads_a_local_folder_with_its_preprocessing_and_class_names(tmp_path):
    tiny_resnet(["cat", "dog", "fox", "owl", "elk"]).save_pretrained(tmp_path)
    (tmp_path / "preprocessor_config.json").write_text(json.dumps(
        {"size": {"shortest_edge": 64}, "crop_pct": 0.875, "image_mean": [0.5, 0.4, 0.3], "image_std": [0.2, 0.2, 0.2],
         "resample": 3}))
    lm = load_model("hf:someone/tiny-resnet", weights=str(tmp_path))
    assert lm.class_names == ["cat", "dog", "fox", "owl", "elk"] and lm.weights == str(tmp_path)
    assert (lm.preprocess.resize, lm.preprocess.crop, lm.preprocess.interpolation) == (73, 64, "bicubic")
    assert lm.preprocess.mean == (0.5, 0.4, 0.3) and lm.architecture == "cnn"
    x = torch.randn(2, 3, 64, 64)
    torch.testing.assert_close(lm.model(x), tiny_resnet().float()(pixel_values=x).logits)
    rnd = load_model(f"hf:{tmp_path}", weights="random")
    assert rnd.weights == "random" and rnd.class_names[0] == "cat"
    from attrdist.classes import class_id

    assert class_id("fox", lm.class_names) == 2


def test_hf_source_without_preprocessor_config_uses_the_image_size_and_imagenet_statistics(tmp_path):
    cfg = transformers.ViTConfig(image_size=32, patch_size=8, num_hidden_layers=1, num_attention_heads=2,
                                 hidden_size=16, intermediate_size=32, num_labels=3)
    transformers.ViTForImageClassification(cfg).save_pretrained(tmp_path)
    lm = load_model("hf:x/vit", weights=str(tmp_path))
    assert (lm.preprocess.crop, lm.preprocess.mean) == (32, (0.485, 0.456, 0.406))
    assert lm.class_names == ["class 0", "class 1", "class 2"]
    assert lm.architecture == "vit" and lm.input_size == (32, 32)


def test_missing_weights_name_the_files_and_the_folder(tmp_path):
    with pytest.raises(WeightsUnavailableError, match=r"missing config.json, model.safetensors.*config.json, "
                       r"model.safetensors and preprocessor_config.json from https://huggingface.co/google/vit-base-"
                       r"patch16-224 .*--weights"):
        load_model("hf:google/vit-base-patch16-224", weights=str(tmp_path))
    with pytest.raises(WeightsUnavailableError, match=r"https://huggingface.co/google/vit-base-patch16-224.*--weights"):
        load_model("hf:google/vit-base-patch16-224-not-cached")
    with pytest.raises(WeightsUnavailableError, match=r"config.json of hf:nobody/nothing"):
        load_model("hf:nobody/nothing", weights="random")


def test_a_transformers_model_in_memory_is_wrapped():
    hf = tiny_resnet(["a", "b", "c", "d", "e"])
    lm = load_model(hf)
    assert lm.class_names == ["a", "b", "c", "d", "e"] and lm.model.hf is hf
    x = torch.randn(1, 3, 32, 32, dtype=torch.float64)
    torch.testing.assert_close(get_method("gradcam", hf)(x, "top2"), get_method("gradcam", lm)(x, "top2"))


# --- CNN families ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", list(CNNS))
def test_cnn_families_cam_layer_and_blocks(kind):
    from attrdist.models.hf import HFClassifier

    model = HFClassifier(CNNS[kind]())
    fam = family_of(model)
    assert fam.name == f"{kind}_hf"
    assert fam.cam_layer_of(model) == f"hf.{kind}.encoder.stages.1"
    blocks = fam.blocks_of(model)
    modules = dict(model.named_modules())
    assert blocks[0] == "hf.classifier" and all(b in modules for b in blocks)
    assert any(".stages.0.layers.0" in b for b in blocks) and blocks[-1].endswith(("embedder", "embeddings"))


@pytest.mark.parametrize("kind", list(CNNS))
@pytest.mark.parametrize("name", CNN_METHODS)
def test_every_cnn_method_runs(kind, name):
    x = torch.randn(2, 3, 32, 32, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    maps = get_method(name, CNNS[kind]())(x, "top3")
    assert maps.shape == (2, 3, 32, 32) and torch.isfinite(maps).all()


@pytest.mark.parametrize("kind", list(CNNS))
def test_gradcam_equals_a_literal_gradcam(kind):
    hf = CNNS[kind]()
    stage = hf.base_model.encoder.stages[-1]
    x = torch.randn(2, 3, 32, 32, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    classes = torch.tensor([[1, 4], [0, 3]])
    ours = get_method("gradcam", hf)(x, classes)
    for b in range(2):
        for k in range(2):
            acts = []
            handle = stage.register_forward_hook(lambda m, a, out, acts=acts: acts.append(out))
            logit = hf(pixel_values=x[b : b + 1]).logits[0, classes[b, k]]
            handle.remove()
            (grad,) = torch.autograd.grad(logit, acts[0])
            cam = torch.relu((grad.mean(dim=(2, 3), keepdim=True) * acts[0]).sum(1, keepdim=True))
            ref = F.interpolate(cam, size=(32, 32), mode="bilinear", align_corners=False)[0, 0]
            torch.testing.assert_close(ours[b, k], ref.detach(), rtol=1e-7, atol=1e-12)


def test_lrp_is_refused_on_resnet_and_runs_on_convnext():
    with pytest.raises(ValueError, match="LRP does not support Hugging Face ResNet"):
        get_method("lrp", tiny_resnet())
    maps = get_method("lrp", tiny_convnext())(torch.randn(1, 3, 32, 32, dtype=torch.float64), "top2")
    assert maps.shape == (1, 2, 32, 32) and torch.isfinite(maps).all()


# --- ViT and DeiT ----------------------------------------------------------------------------------------

VIT_METHODS = [m for m in list_methods("vit") if m not in list_methods("cnn")] + ["gradcam"]
FAST = {"bi_attn": dict(steps=4, chunk_size=3, start_layer=1), "t_attn": dict(steps=4, chunk_size=3, start_layer=1)}


def timm_and_hf_vit():
    """A tiny timm ViT and a transformers ViT carrying its weights (qkv split into q, k, v)."""
    timm = pytest.importorskip("timm")
    torch.manual_seed(0)
    tm = timm.create_model("vit_tiny_patch16_224", img_size=32, patch_size=8, depth=3, num_heads=2, embed_dim=16,
                           num_classes=7).double().eval()
    cfg = transformers.ViTConfig(image_size=32, patch_size=8, num_hidden_layers=3, num_attention_heads=2,
                                 hidden_size=16, intermediate_size=64, num_labels=7, layer_norm_eps=1e-6,
                                 hidden_act="gelu", qkv_bias=True)
    hf = transformers.ViTForImageClassification(cfg).double().eval()
    sd = tm.state_dict()
    new = {"vit.embeddings.cls_token": sd["cls_token"], "vit.embeddings.position_embeddings": sd["pos_embed"],
           "vit.embeddings.patch_embeddings.projection.weight": sd["patch_embed.proj.weight"],
           "vit.embeddings.patch_embeddings.projection.bias": sd["patch_embed.proj.bias"]}
    v5 = hasattr(hf.vit, "layers")  # transformers 5 names the layers differently from 4
    names = ([("norm1", "layernorm_before"), ("norm2", "layernorm_after"), ("attn.proj", "attention.o_proj"),
              ("mlp.fc1", "mlp.fc1"), ("mlp.fc2", "mlp.fc2")] if v5 else
             [("norm1", "layernorm_before"), ("norm2", "layernorm_after"), ("attn.proj", "attention.output.dense"),
              ("mlp.fc1", "intermediate.dense"), ("mlp.fc2", "output.dense")])
    qkv = ["attention.q_proj", "attention.k_proj", "attention.v_proj"] if v5 else \
        ["attention.attention.query", "attention.attention.key", "attention.attention.value"]
    for i in range(3):
        src, dst = f"blocks.{i}.", f"vit.layers.{i}." if v5 else f"vit.encoder.layer.{i}."
        for w in ("weight", "bias"):
            for a, b in names:
                new[f"{dst}{b}.{w}"] = sd[f"{src}{a}.{w}"]
            for j, name in enumerate(qkv):
                new[f"{dst}{name}.{w}"] = sd[f"{src}attn.qkv.{w}"].chunk(3)[j]
    for w in ("weight", "bias"):
        new[f"vit.layernorm.{w}"], new[f"classifier.{w}"] = sd[f"norm.{w}"], sd[f"head.{w}"]
    hf.load_state_dict(new, strict=True)
    return tm, hf


@pytest.fixture(scope="module")
def vit_pair():
    return timm_and_hf_vit()


def test_hf_vit_logits_equal_timm(vit_pair):
    tm, hf = vit_pair
    x = torch.randn(2, 3, 32, 32, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    torch.testing.assert_close(hf(pixel_values=x).logits, tm(x), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("name", VIT_METHODS)
def test_vit_methods_equal_on_timm_and_hf(vit_pair, name):
    tm, hf = vit_pair
    x = torch.randn(2, 3, 32, 32, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    classes = torch.tensor([[1, 4, 6], [0, 2, 5]])
    ref = get_method(name, tm, resolution="native", **FAST.get(name, {}))(x, classes)
    ours = get_method(name, hf, resolution="native", **FAST.get(name, {}))(x, classes)
    assert ours.shape == (2, 3, 4, 4)
    torch.testing.assert_close(ours, ref, rtol=1e-6, atol=1e-6 * float(ref.abs().max()))


def test_capture_restores_the_attention_implementation_and_removes_hooks(vit_pair):
    from attrdist.models.hf import HFClassifier
    from attrdist.models.vit import trace_attention

    _, hf = vit_pair
    model = HFClassifier(hf)
    before = hf.config._attn_implementation
    with pytest.raises(RuntimeError, match="boom"), trace_attention(model) as traces:
        model(torch.randn(1, 3, 32, 32, dtype=torch.float64))
        assert all(t.attn.shape == (1, 2, 17, 17) for t in traces)
        raise RuntimeError("boom")
    assert hf.config._attn_implementation == before
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in model.modules())


def test_deit_has_two_prefix_tokens_and_runs_every_vit_method():
    from attrdist.models.hf import HFClassifier
    from attrdist.models.vit import vit_info

    torch.manual_seed(0)
    cfg = transformers.DeiTConfig(image_size=32, patch_size=8, num_hidden_layers=2, num_attention_heads=2,
                                  hidden_size=16, intermediate_size=32, num_labels=5)
    hf = transformers.DeiTForImageClassification(cfg).double().eval()
    emb = hf.deit.embeddings
    with torch.no_grad():  # transformers starts both tokens and the positions at zero: InFlow's token shares are 0/0
        for p in (emb.cls_token, emb.distillation_token, emb.position_embeddings):
            p.normal_()
    info = vit_info(HFClassifier(hf))
    assert (info.kind, info.prefix, info.patch) == ("hf", 2, (8, 8))
    assert family_of(HFClassifier(hf)).name == "vit_hf"
    x = torch.randn(2, 3, 32, 32, dtype=torch.float64)
    for name in VIT_METHODS:
        maps = get_method(name, hf, resolution="native", **FAST.get(name, {}))(x, "top2")
        assert maps.shape == (2, 2, 4, 4) and torch.isfinite(maps).all(), name


def test_explain_on_the_command_line_by_class_names(tmp_path, capsys):
    """`attrdist explain --model hf:ID --weights FOLDER`, classes by the model's own names (config.id2label)."""
    from attrdist.cli import main

    names = ["cat", "dog", "bird"]
    cfg = transformers.ViTConfig(image_size=32, patch_size=8, hidden_size=32, num_hidden_layers=2,
                                 num_attention_heads=2, intermediate_size=64, num_labels=3,
                                 id2label=dict(enumerate(names)), label2id={n: i for i, n in enumerate(names)})
    torch.manual_seed(0)
    transformers.ViTForImageClassification(cfg).save_pretrained(tmp_path / "vit")
    out = tmp_path / "out"
    assert main(["explain", "--model", "hf:tiny/vit", "--weights", str(tmp_path / "vit"), "--methods", "gae,gradcam",
                 "--classes", "cat,bird", "--target", "bird", "--out", str(out)]) == 0
    record = json.loads((out / "sample_grid.json").read_text())
    assert [c["name"] for c in record["classes"]] == ["cat", "bird"] and record["target"]["name"] == "bird"
    assert (out / "sample_grid.png").stat().st_size > 0
    assert main(["classes", "--model", "hf:tiny/vit", "--weights", str(tmp_path / "vit"), "bir"]) == 0
    assert "bird" in capsys.readouterr().out
