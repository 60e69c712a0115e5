"""ViT methods on tiny timm and torchvision ViTs in float64: literal per-sample, per-class references written
from the spec, batching invariances, and attention capture leaving the model as it was."""

import math
import warnings

import pytest
import torch
import torch.nn.functional as F
import torchvision

from attrdist import get_method, list_methods

timm = pytest.importorskip("timm")

VIT_METHODS = [m for m in list_methods("vit") if m not in list_methods("cnn")]
# methods with a literal reference below (token_gradcam is checked against pytorch-grad-cam instead)
REFERENCED = [m for m in VIT_METHODS if m != "token_gradcam"] + ["gradcam"]
FAST = {"bi_attn": dict(steps=4, chunk_size=3, start_layer=1), "t_attn": dict(steps=4, chunk_size=3, start_layer=1),
        "inflow_plain": dict(block_gradient=False)}


def tiny_timm():
    torch.manual_seed(0)
    return timm.create_model("vit_tiny_patch16_224", img_size=32, patch_size=8, depth=3, num_heads=2, embed_dim=16,
                             num_classes=7).double().eval()


def tiny_tv():
    torch.manual_seed(0)
    model = torchvision.models.VisionTransformer(image_size=32, patch_size=8, num_layers=3, num_heads=2, hidden_dim=16,
                                                 mlp_dim=32, num_classes=7)
    torch.nn.init.normal_(model.heads.head.weight)  # torchvision starts the head at zero: no gradient at all
    return model.double().eval()


MODELS = {"timm": tiny_timm, "torchvision": tiny_tv}


def manual_forward(model, x, flows=None, readouts=None):
    """A literal ViT forward (one sample) returning logits and each block's post-softmax attention
    (and, in ``flows``, each block's input, attention output and MLP output; in ``readouts``, the logits
    that the final norm and head give for each block's output class token, as InFlow's model computes)."""
    attns = []
    flows = [] if flows is None else flows
    readouts = [] if readouts is None else readouts
    if isinstance(model, torchvision.models.VisionTransformer):
        t = model._process_input(x)
        t = torch.cat([model.class_token.expand(1, -1, -1), t], 1) + model.encoder.pos_embedding
        for blk in model.encoder.layers:
            h = blk.ln_1(t)
            mha = blk.self_attention
            q, k, v = torch.nn.functional.linear(h, mha.in_proj_weight, mha.in_proj_bias).chunk(3, -1)
            nh, d = mha.num_heads, h.shape[-1] // mha.num_heads
            q, k, v = (z.view(1, -1, nh, d).transpose(1, 2) for z in (q, k, v))
            a = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(d), -1)
            attns.append(a)
            ao = mha.out_proj((a @ v).transpose(1, 2).reshape(1, -1, nh * d))
            mo = blk.mlp(blk.ln_2(t + ao))
            flows.append((t, ao, mo))
            t = t + ao + mo
            readouts.append(model.heads(model.encoder.ln(t)[:, 0]))
        return model.heads(model.encoder.ln(t)[:, 0]), attns
    t = model._pos_embed(model.patch_embed(x))
    for blk in model.blocks:
        h = blk.norm1(t)
        at = blk.attn
        qkv = at.qkv(h).view(1, -1, 3, at.num_heads, at.head_dim).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        a = torch.softmax((q * at.scale) @ k.transpose(-1, -2), -1)
        attns.append(a)
        ao = at.proj((a @ v).transpose(1, 2).reshape(1, -1, at.num_heads * at.head_dim))
        mo = blk.mlp(blk.norm2(t + ao))
        flows.append((t, ao, mo))
        t = t + ao + mo
        readouts.append(model.head(model.norm(t)[:, 0]))
    return model.forward_head(model.norm(t)), attns


def _safe(a, b):
    den = b + 1e-9
    den = den + (den == 0) * 1e-9
    return a / den * (b != 0)


def _leaf(t):
    return t.detach().clone().requires_grad_(True)


def _lrp_linear(weight, x, r):
    """alpha1-beta0 written with autograd: x * d(z)/dx . r / z for the positive and negative parts."""
    px, nx = _leaf(x.clamp(min=0)), _leaf(x.clamp(max=0))
    z1, z2 = F.linear(px, weight.detach().clamp(min=0)), F.linear(nx, weight.detach().clamp(max=0))
    s = _safe(r, z1 + z2)
    return px * torch.autograd.grad(z1, px, s)[0] + nx * torch.autograd.grad(z2, nx, s)[0]


def _lrp_product(equation, a, b, r):
    a, b = _leaf(a), _leaf(b)
    z = torch.einsum(equation, a, b)
    ga, gb = torch.autograd.grad(z, (a, b), _safe(r, z))
    return (a * ga).detach() / 2, (b * gb).detach() / 2


def _lrp_add(r, a, b):
    a, b = _leaf(a), _leaf(b)
    z = a + b
    ga, gb = torch.autograd.grad(z, (a, b), _safe(r, z))
    ra, rb = (a * ga).detach(), (b * gb).detach()
    sa, sb = ra.sum(), rb.sum()
    fa = _safe(sa.abs(), sa.abs() + sb.abs()) * r.sum()
    fb = _safe(sb.abs(), sa.abs() + sb.abs()) * r.sum()
    return ra * _safe(fa, sa), rb * _safe(fb, sb)


def _lrp_clone(x, r1, r2):
    x = _leaf(x)
    (g,) = torch.autograd.grad([x * 1, x * 1], x, [_safe(r1, x), _safe(r2, x)])
    return (x * g).detach()


def tlrp_reference(model, x, c, start_layer=0, row_normalize=True):
    """T-LRP for one sample and class: a literal forward keeping every flow, then relevance rules written
    with autograd (x * grad(z, x, R / z), as the spec's rules read) and the rollout with full matrices."""
    x = x.clone().requires_grad_(True)
    tv = isinstance(model, torchvision.models.VisionTransformer)
    blocks = model.encoder.layers if tv else model.blocks
    if tv:
        t = model._process_input(x)
        t = torch.cat([model.class_token.expand(1, -1, -1), t], 1) + model.encoder.pos_embedding
    else:
        t = model._pos_embed(model.patch_embed(x))
    flows = []
    for blk in blocks:
        f = {"x_in": t}
        if tv:
            mha, nh = blk.self_attention, blk.self_attention.num_heads
            f["h1"] = blk.ln_1(t)
            qkv = F.linear(f["h1"], mha.in_proj_weight, mha.in_proj_bias)
            wp = mha.out_proj
            fc1, fc2, ln2 = blk.mlp[0], blk.mlp[3], blk.ln_2
        else:
            nh = blk.attn.num_heads
            f["h1"] = blk.norm1(t)
            qkv = blk.attn.qkv(f["h1"])
            wp, fc1, fc2, ln2 = blk.attn.proj, blk.mlp.fc1, blk.mlp.fc2, blk.norm2
        q, k, v = qkv.view(1, -1, 3, nh, qkv.shape[-1] // (3 * nh)).permute(2, 0, 3, 1, 4)
        f.update(q=q, k=k, v=v, qkv_w=mha.in_proj_weight if tv else blk.attn.qkv.weight, wp=wp.weight,
                 w1=fc1.weight, w2=fc2.weight)
        f["A"] = torch.softmax(torch.einsum("bhid,bhjd->bhij", q, k) / math.sqrt(q.shape[-1]), -1)
        f["o"] = torch.einsum("bhij,bhjd->bhid", f["A"], v).transpose(1, 2).reshape(1, -1, qkv.shape[-1] // 3)
        f["ao"] = wp(f["o"])
        f["mid"] = t + f["ao"]
        f["h2"] = ln2(f["mid"])
        f["fc2_in"] = F.gelu(fc1(f["h2"]))
        f["mo"] = fc2(f["fc2_in"])
        t = f["mid"] + f["mo"]
        flows.append(f)
    normed = model.encoder.ln(t) if tv else model.norm(t)
    head = [m for m in (model.heads if tv else [model.head])]
    logits = normed[:, 0]
    inputs = []
    for m in head:
        inputs.append(logits)
        logits = m(logits)
    grads = torch.autograd.grad(logits[0, c], [f["A"] for f in flows])
    r = torch.zeros_like(logits)
    r[0, c] = 1.0
    for m, inp in zip(reversed(head), reversed(inputs), strict=True):
        if isinstance(m, torch.nn.Linear):
            r = _lrp_linear(m.weight, inp, r)
    tok = _leaf(normed)
    z = tok[:, 0]
    (g,) = torch.autograd.grad(z, tok, _safe(r, z))
    r = (tok * g).detach()
    r_attn = {}
    for i in reversed(range(len(flows))):
        f = {key: (val.detach() if torch.is_tensor(val) else val) for key, val in flows[i].items()}
        r1, r2 = _lrp_add(r, f["mid"], f["mo"])
        r2 = _lrp_linear(f["w1"], f["h2"], _lrp_linear(f["w2"], f["fc2_in"], r2))
        r = _lrp_clone(f["mid"], r1, r2)
        r1, r2 = _lrp_add(r, f["x_in"], f["ao"])
        r2 = _lrp_linear(f["wp"], f["o"], r2)
        nh = f["q"].shape[1]
        r2 = r2.view(1, -1, nh, r2.shape[-1] // nh).transpose(1, 2)
        ra, rv = _lrp_product("bhij,bhjd->bhid", f["A"], f["v"], r2)
        r_attn[i] = ra
        rq, rk = _lrp_product("bhid,bhjd->bhij", f["q"], f["k"], ra)
        rqkv = torch.stack([rq, rk, rv]).permute(1, 3, 0, 2, 4).reshape(1, rq.shape[2], -1)
        r = _lrp_clone(f["x_in"], r1, _lrp_linear(f["qkv_w"], f["h1"], rqkv))
    n = flows[0]["A"].shape[-1]
    mats = []
    for i in range(start_layer, len(flows)):
        m = (grads[i][0] * r_attn[i][0]).clamp(min=0).mean(0) + torch.eye(n, dtype=x.dtype)
        mats.append(m / m.sum(-1, keepdim=True) if row_normalize else m)
    joint = mats[0]
    for m in mats[1:]:
        joint = m @ joint
    return joint[0, 1:].view(4, 4)


def ig_last_block_weights(model, x, c, steps):
    """Bi-attn's and T-attn's W: the head mean of the positive part of the last block's attention gradient,
    integrated over ``steps`` points of ``linspace(0, 1)`` from the all-zero input."""
    total = 0
    for alpha in torch.linspace(0, 1, steps, dtype=x.dtype):
        xs = (x.detach() * alpha).requires_grad_(True)
        lg, at = manual_forward(model, xs)
        total = total + torch.autograd.grad(lg[0, c], at[-1])[0][0]
    return (total / steps).clamp(min=0).mean(0)


def reference(name, model, x, c, opts):
    """The map of one class for one sample, from the spec, with plain loops."""
    if name == "tlrp":
        return tlrp_reference(model, x, c, **opts)
    x = x.clone().requires_grad_(True)
    flows, readouts = [], []
    logits, attns = manual_forward(model, x, flows, readouts)
    grads = torch.autograd.grad(logits[0, c], attns, retain_graph=True)
    n = attns[0].shape[-1]
    eye = torch.eye(n, dtype=x.dtype)
    A = [a[0].detach() for a in attns]
    G = [g[0] for g in grads]
    if name == "gradcam":  # Chefer's generate_cam_attn: last block, CLS row over the patch keys
        a, g = A[-1], G[-1]
        heads = a.shape[0]
        cam = torch.zeros(n - 1, dtype=x.dtype)
        for h in range(heads):
            w = sum(g[h, 0, j] for j in range(1, n)) / (n - 1)
            cam = cam + w * a[h, 0, 1:]
        return (cam / heads).clamp(min=0).view(4, 4)
    if name == "rollout":
        r = None
        for a in A:
            m = a.mean(0) + eye
            m = m / m.sum(-1, keepdim=True)
            r = m if r is None else m @ r
    elif name == "gae":  # Chefer's avg_heads: (grad * A) clamped per head, then the mean over heads
        r = eye.clone()
        for a, g in zip(A, G, strict=True):
            cam = torch.zeros(n, n, dtype=x.dtype)
            for h in range(a.shape[0]):
                cam = cam + (g[h] * a[h]).clamp(min=0)
            r = r + (cam / a.shape[0]) @ r
    elif name in ("inflow", "inflow_plain"):
        r = None
        for i, (a, g, (xin, ao, mo)) in enumerate(zip(A, G, flows, strict=True)):
            ih = torch.stack([(a[h].T @ g[h]).abs().mean() for h in range(a.shape[0])])
            ih = ih / ih.sum()
            att = torch.stack([ih[h] * a[h] for h in range(a.shape[0])]).max(0).values
            if name == "inflow":  # withgrad: the gradient of block i's own read-out logit w.r.t. its attention
                (gb,) = torch.autograd.grad(readouts[i][0, c], attns[i], retain_graph=True)
                att = (gb[0].mean(0) * att).clamp(min=0)
            n_in, n_a = xin[0].detach().norm(dim=-1), ao[0].detach().norm(dim=-1)
            n_r, n_m = (xin + ao)[0].detach().norm(dim=-1), mo[0].detach().norm(dim=-1)
            a1, b1 = n_in / (n_in + n_a), n_a / (n_in + n_a)
            a2, b2 = n_r / (n_r + n_m), n_m / (n_r + n_m)
            ratio = b2 / a2
            ratio = ratio / ratio.abs().sum()
            m1 = torch.stack([att[:, j] * b1[j] for j in range(n)], 1) + torch.diag(a1)
            m = m1 @ torch.diag(ratio * b2 + a2)
            m = m / m.sum(-1, keepdim=True)
            r = m if r is None else m @ r
    elif name == "grad_rollout":
        r = eye.clone()
        for a, g in zip(A, G, strict=True):
            fused = (a * g).mean(0).clamp(min=0).flatten()
            order = fused.argsort()
            for i in order[: int(n * n * 0.9)].tolist():
                if i != 0:
                    fused[i] = 0.0
            m = (fused.view(n, n) + eye) / 2
            r = (m / m.sum(-1, keepdim=True)) @ r
    else:
        steps, start = opts["steps"], opts["start_layer"]
        w = ig_last_block_weights(model, x, c, steps)
        if name == "bi_attn":
            r = eye.clone()
            for i, (a, g) in enumerate(zip(A, G, strict=True)):
                if i < start - 1:
                    continue
                ih = torch.stack([(a[h].T @ g[h]).abs().mean() for h in range(a.shape[0])])
                ih = ih / ih.sum()
                r = r + sum(ih[h] * a[h] for h in range(a.shape[0])) @ r
            r = w * r
        else:  # t_attn
            s = A[-1].mean(0)[0]
            for i in range(len(A) - 2, start - 1, -1):
                s = s @ A[i].mean(0) + s
            return (w[0] * s)[1:].view(4, 4)
    return r[0, 1:].view(4, 4)


@pytest.mark.parametrize("kind", list(MODELS))
@pytest.mark.parametrize("name", REFERENCED + ["inflow_plain"])
def test_against_literal_reference(name, kind):
    model = MODELS[kind]()
    gen = torch.Generator().manual_seed(2)
    x = torch.randn(2, 3, 32, 32, generator=gen, dtype=torch.float64)
    classes = torch.tensor([[1, 4, 6], [0, 2, 5]])
    ours = get_method(name.replace("_plain", ""), model, resolution="native", **FAST.get(name, {}))(x, classes)
    assert ours.shape == (2, 3, 4, 4)
    for b in range(2):
        for k in range(3):
            ref = reference(name, model, x[b : b + 1], int(classes[b, k]), FAST.get(name, {}))
            torch.testing.assert_close(ours[b, k], ref, rtol=1e-7, atol=1e-10)


TLRP_OPTS = [dict(start_layer=1), dict(row_normalize=False), dict(start_layer=2, row_normalize=False)]


@pytest.mark.parametrize("kind", list(MODELS))
@pytest.mark.parametrize("opts", TLRP_OPTS)
def test_tlrp_options_against_literal_reference(kind, opts):
    model = MODELS[kind]()
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    classes = torch.tensor([[3, 0], [6, 1]])
    ours = get_method("tlrp", model, resolution="native", **opts)(x, classes)
    for b in range(2):
        for k in range(2):
            ref = tlrp_reference(model, x[b : b + 1], int(classes[b, k]), **opts)
            torch.testing.assert_close(ours[b, k], ref, rtol=1e-7, atol=1e-12)


def test_tlrp_torchvision_pre_logits_head_and_unsupported_designs():
    model = torchvision.models.VisionTransformer(image_size=32, patch_size=8, num_layers=2, num_heads=2, hidden_dim=16,
                                                 mlp_dim=32, num_classes=5, representation_size=6).double().eval()
    torch.nn.init.normal_(model.heads.head.weight)
    x = torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(6), dtype=torch.float64)
    ours = get_method("tlrp", model, resolution="native")(x, torch.tensor([[2, 4]]))
    for k, c in enumerate((2, 4)):
        torch.testing.assert_close(ours[0, k], tlrp_reference(model, x, c), rtol=1e-7, atol=1e-12)
    with pytest.raises(TypeError, match="class token"):
        get_method("tlrp", timm.create_model("vit_tiny_patch16_224", img_size=32, patch_size=8, depth=1,
                                             num_heads=2, embed_dim=16, num_classes=3, global_pool="avg"))
    with pytest.raises(ValueError, match="start_layer"):
        get_method("tlrp", tiny_timm(), start_layer=3)


def test_block_flows_reproduce_the_blocks():
    from attrdist.models.vit import block_flows, trace_attention, vit_info

    for make in MODELS.values():
        model = make()
        info = vit_info(model)
        with torch.no_grad(), trace_attention(model) as traces:
            model(torch.randn(2, 3, 32, 32, dtype=torch.float64))
        for i in range(len(traces) - 1):
            f = block_flows(info.blocks[i], info.kind, traces[i].x_in)
            torch.testing.assert_close(f.out, traces[i + 1].x_in)
            torch.testing.assert_close(f.attn, traces[i].attn)


@pytest.mark.parametrize("kind", list(MODELS))
def test_token_gradcam_vit_against_pytorch_grad_cam(kind):
    from pytorch_grad_cam import GradCAM
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    model = MODELS[kind]()
    x = torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    method = get_method("token_gradcam", model, resolution="native")

    def reshape(t):
        return t[:, 1:, :].reshape(t.shape[0], 4, 4, t.shape[-1]).permute(0, 3, 1, 2)

    with GradCAM(model=model, target_layers=[method.layer], reshape_transform=reshape) as cam:
        for c in (1, 5):
            targets = [ClassifierOutputTarget(c)]
            out = cam.activations_and_grads(x.clone().requires_grad_(True))
            model.zero_grad()
            targets[0](out[0]).backward()
            a = cam.activations_and_grads.activations[0].numpy()
            g = cam.activations_and_grads.gradients[0].numpy()
            raw = torch.as_tensor(cam.get_cam_image(x, method.layer, targets, a, g, False)).clamp(min=0)
            torch.testing.assert_close(method(x, torch.tensor([[c]]))[0, 0], raw[0], rtol=1e-7, atol=1e-10)


@pytest.mark.parametrize("kind", list(MODELS))
@pytest.mark.parametrize("name", VIT_METHODS + ["gradient", "gradcam"])
def test_batch_and_class_invariance(name, kind):
    model = MODELS[kind]()
    x = torch.randn(3, 3, 32, 32, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    classes = torch.tensor([[1, 2, 3, 4], [0, 5, 6, 2], [3, 1, 0, 6]])
    method = get_method(name, model, **FAST.get(name, {}))
    whole = method(x, classes)
    for i in range(3):
        torch.testing.assert_close(whole[i : i + 1], method(x[i : i + 1], classes[i : i + 1]))
    for k in range(4):
        torch.testing.assert_close(whole[:, k : k + 1], method(x, classes[:, k : k + 1]))
    seq = get_method(name, model, vjp="sequential", **FAST.get(name, {}))(x, classes)
    torch.testing.assert_close(seq, whole)


@pytest.mark.parametrize("name", VIT_METHODS + ["gradcam"])
def test_non_square_input_register_tokens_and_patch_grid(name):
    model = timm.create_model("vit_tiny_patch16_224", img_size=(32, 48), patch_size=8, depth=2, num_heads=2,
                              embed_dim=16, num_classes=5, reg_tokens=2).eval()
    assert model.num_prefix_tokens == 3
    opts = {**FAST.get(name, {}), "resolution": "native"}
    maps = get_method(name, model, **opts)(torch.randn(2, 3, 32, 48), "top2")
    assert maps.shape == (2, 2, 4, 6) and torch.isfinite(maps).all()


@pytest.mark.parametrize("patch, grid", [(8, 28), (16, 14), (32, 7)])
def test_vit_b_patch_grids(patch, grid):
    model = torchvision.models.VisionTransformer(image_size=224, patch_size=patch, num_layers=1, num_heads=2,
                                                 hidden_dim=16, mlp_dim=16, num_classes=4).eval()
    assert get_method("gae", model, resolution="native")(torch.randn(1, 3, 224, 224), "top2").shape[-2:] == (grid, grid)


@pytest.mark.parametrize("kind", list(MODELS))
def test_capture_leaves_model_unchanged(kind):
    from attrdist.models.vit import trace_attention

    model = MODELS[kind]()
    fused = [getattr(b.attn, "fused_attn", None) for b in getattr(model, "blocks", [])]
    state = {k: v.clone() for k, v in model.state_dict().items()}
    x = torch.randn(1, 3, 32, 32, dtype=torch.float64)
    before = model(x)
    with pytest.raises(RuntimeError, match="boom"), trace_attention(model):
        model(x)
        raise RuntimeError("boom")
    assert [getattr(b.attn, "fused_attn", None) for b in getattr(model, "blocks", [])] == fused
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in model.modules())
    assert all("forward" not in m.__dict__ for m in model.modules())
    for k, v in model.state_dict().items():
        assert torch.equal(v, state[k])
    torch.testing.assert_close(model(x), before)


def test_rollout_is_class_agnostic_and_var_warns():
    from attrdist import VAR
    from attrdist.var import ClassAgnosticWarning

    model = tiny_timm()
    maps = get_method("rollout", model)(torch.randn(1, 3, 32, 32, dtype=torch.float64), "top3")
    assert torch.equal(maps[:, 0], maps[:, 1])
    with pytest.warns(ClassAgnosticWarning):
        VAR(get_method("rollout", model))


def test_method_applicability_is_enforced():
    from attrdist.methods import MethodNotApplicableError

    with pytest.raises(MethodNotApplicableError, match=r"'gae' applies to vit models.*ResNet is a CNN; methods for it: "
                                                       r"gradcam, .*lrp"):
        get_method("gae", torchvision.models.resnet18())
    with pytest.raises(MethodNotApplicableError, match=r"'lrp' applies to cnn models.*Vision Transformer.*rollout"):
        get_method("lrp", tiny_timm())


@pytest.mark.parametrize("name", ["rollout", "gae", "t_attn", "tlrp"])
@pytest.mark.parametrize("start_layer", [-1, 3])
def test_start_layer_outside_the_blocks_is_refused(name, start_layer):
    with pytest.raises(ValueError, match=r"start_layer must be a block index in \[0, 3\), got " + str(start_layer)
                       + r"; pass start_layer=0..2"):
        get_method(name, tiny_timm(), start_layer=start_layer)


@pytest.mark.parametrize("start_layer", [-1, 4])
def test_bi_attn_start_layer_outside_the_reference_range_is_refused(start_layer):
    # generate_ours uses the blocks with index >= start_layer - 1: 0..L all name blocks, L + 1 names none
    with pytest.raises(ValueError, match=r"start_layer must lie in \[0, 3\] for bi_attn .*got " + str(start_layer)
                       + r"; pass start_layer=0..3"):
        get_method("bi_attn", tiny_timm(), start_layer=start_layer)


def test_gradcam_on_a_vit_is_the_attention_gradcam():
    from attrdist.methods import AttentionGradCAM, GradCAM

    assert isinstance(get_method("gradcam", tiny_timm()), AttentionGradCAM)
    assert type(get_method("gradcam", tiny_timm(), layer="blocks.2.norm1")) is GradCAM  # a named layer: token CAM
    assert type(get_method("gradcam", torchvision.models.resnet18())) is GradCAM


def tiny_timm_depth(depth):
    torch.manual_seed(0)
    return timm.create_model("vit_tiny_patch16_224", img_size=32, patch_size=8, depth=depth, num_heads=2,
                             embed_dim=16, num_classes=7).double().eval()


def bi_attn_blocks_reference(model, x, c, blocks, steps):
    """Bi-attn for one sample and class with ``R = I; R += A_tilde_i R`` over exactly the listed blocks."""
    x = x.clone().requires_grad_(True)
    logits, attns = manual_forward(model, x)
    grads = torch.autograd.grad(logits[0, c], attns)
    n = attns[0].shape[-1]
    r = torch.eye(n, dtype=x.dtype)
    for i in blocks:
        a, g = attns[i][0].detach(), grads[i][0]
        ih = [(a[h].T @ g[h]).abs().mean() for h in range(a.shape[0])]
        total = sum(ih)
        a_tilde = sum((ih[h] / total) * a[h] for h in range(a.shape[0]))
        r = r + a_tilde @ r
    return (ig_last_block_weights(model, x, c, steps) * r)[0, 1:].view(4, 4)


@pytest.mark.parametrize("name", ["bi_attn", "t_attn"])
def test_reference_start_layer_default(name):
    deep = timm.create_model("vit_tiny_patch16_224", img_size=32, patch_size=8, depth=6, num_heads=2, embed_dim=16,
                             num_classes=7).eval()
    assert get_method(name, deep).start_layer == 4  # the references' default


def test_bi_attn_default_on_four_blocks_uses_block_3_alone():
    # generate_ours with start_layer=4 skips the blocks with index < 3: on 4 blocks, block 3 alone, no warning
    model = tiny_timm_depth(4)
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(9), dtype=torch.float64)
    classes = torch.tensor([[1, 5], [0, 6]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        method = get_method("bi_attn", model, steps=4, resolution="native")
    assert method.start_layer == 4
    ours = method(x, classes)
    for b in range(2):
        for k in range(2):
            ref = bi_attn_blocks_reference(model, x[b : b + 1], int(classes[b, k]), [3], steps=4)
            torch.testing.assert_close(ours[b, k], ref, rtol=1e-7, atol=1e-10)
            two = bi_attn_blocks_reference(model, x[b : b + 1], int(classes[b, k]), [2, 3], steps=4)
            assert not torch.allclose(ours[b, k], two)  # blocks 2-3 (the old clamp) would be another map


def test_bi_attn_default_on_three_blocks_uses_the_last_block_and_says_why():
    # the reference would skip all 3 blocks (index < 3) and return all-zero maps: the last block is used instead
    model = tiny_timm_depth(3)
    x = torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(10), dtype=torch.float64)
    with pytest.warns(UserWarning, match=r"bi_attn: the reference's default start_layer=4 uses the blocks with index "
                      r">= 3, and this ViT has 3 blocks.*all-zero maps; start_layer=3 is used instead, i\.e\. block "
                      r"2 alone"):
        method = get_method("bi_attn", model, steps=4, resolution="native")
    assert method.start_layer == 3
    ours = method(x, torch.tensor([[2, 4]]))
    explicit = get_method("bi_attn", model, steps=4, start_layer=3, resolution="native")(x, torch.tensor([[2, 4]]))
    torch.testing.assert_close(ours, explicit)
    for k, c in enumerate((2, 4)):
        ref = bi_attn_blocks_reference(model, x, c, [2], steps=4)
        torch.testing.assert_close(ours[0, k], ref, rtol=1e-7, atol=1e-10)


@pytest.mark.parametrize("depth", [3, 4, 5])
def test_t_attn_default_on_shallow_vits_is_the_reference_without_warning(depth):
    # transition_attention_maps iterates the blocks L-2 .. 4: empty for L <= 5, so only the last block's attention
    model = tiny_timm_depth(depth)
    x = torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(11), dtype=torch.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        method = get_method("t_attn", model, steps=4, resolution="native")
    assert method.start_layer == min(4, depth - 1)
    ours = method(x, torch.tensor([[3, 1]]))
    for k, c in enumerate((3, 1)):
        ref = reference("t_attn", model, x, c, {"steps": 4, "start_layer": 4})
        torch.testing.assert_close(ours[0, k], ref, rtol=1e-7, atol=1e-10)


def test_inflow_block_readout_options():
    model, x = tiny_timm(), torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(8), dtype=torch.float64)
    cls_maps = get_method("inflow", model)(x, "top2")
    mean_maps = get_method("inflow", model, block_readout="mean")(x, "top2")
    assert torch.isfinite(mean_maps).all() and not torch.allclose(cls_maps, mean_maps)
    with pytest.raises(ValueError, match="block_readout"):
        get_method("inflow", model, block_readout="max")


def test_attention_gradcam_minmax_is_the_authors_vit_gradcam():
    """``minmax=True``: the VAR authors' VitGradCam (their utils.attr_functions): per head, the class token's
    attention row over the patches times the mean of its gradient over the patches, mean over heads, positive
    part, min-max scaled on the patch grid, then upsampled bilinearly to the input."""
    model = tiny_timm()
    x = torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    classes = [1, 4, 6]
    ours = get_method("gradcam", model, minmax=True, vjp="batched").attribute(x, classes=classes)
    assert ours.vjp == "batched"
    checked = 0
    for k, c in enumerate(classes):
        logits, attns = manual_forward(model, x.clone())
        (g,) = torch.autograd.grad(logits[0, c], attns[-1])
        a, g = attns[-1][0].detach(), g[0]
        heads = []
        for h in range(a.shape[0]):
            row = a[h, 0, 1:]
            weight = sum(float(v) for v in g[h, 0, 1:]) / row.numel()
            heads.append(row * weight)
        cam = (sum(heads) / len(heads)).clamp(min=0).view(4, 4)
        if cam.max() == cam.min():  # the authors divide by zero here (NaN); attrdist gives a zero map
            assert not ours.maps[0, k].any()
            continue
        checked += 1
        cam = (cam - cam.min()) / (cam.max() - cam.min())
        ref = F.interpolate(cam[None, None], size=(32, 32), mode="bilinear", align_corners=False)[0, 0]
        torch.testing.assert_close(ours.maps[0, k], ref, rtol=1e-10, atol=1e-12)
    assert checked >= 2
    raw = get_method("gradcam", model).attribute(x, classes=classes).maps
    assert not torch.allclose(raw, ours.maps)  # the default stays raw
