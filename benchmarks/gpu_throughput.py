"""VAR throughput and memory against the physical floors and the peers' per-class loops, in one run.

For ResNet-50 and ViT-B/16 (random init, 224x224) at each batch size B and class-set size K it times, on the
same card and the same batch:

* the plain forward pass (inference mode): the floor of CAM methods;
* one forward pass with input gradients, then K backward passes to the input (``autograd.grad``): the floor of
  input-gradient methods;
* ``VAR(method, classes=K classes).attribute(x)`` for each method (maps, VAR refinement, all on the device);
* the peers' per-class loops on the same batch: Captum (Saliency, InputXGradient, GuidedBackprop, LayerGradCam),
  pytorch-grad-cam (GradCAM), Zennit (LRP).

It prints images per second, peak memory and the ratios the issue's targets are stated in, and writes them to
``--out`` as JSON after every section (so a run cut short keeps what it measured). Integrated gradients with
200 steps, K=10, B=32 under a ``--max-memory`` budget is measured against its own floor (the same chunks of
forward + K backward with plain autograd). ``--dtype bfloat16`` runs the methods under autocast and reports
the deviation of the maps from float32. On a CPU, ``--small`` runs the same code at small sizes (CI's smoke test).

    python benchmarks/gpu_throughput.py --device cuda --out gpu.json
    python benchmarks/gpu_throughput.py --small            # CPU smoke test
"""

import argparse
import json
import statistics
import sys
import time

import torch

from attrdist import VAR, get_method
from attrdist.models import default_cam_layer, load_model
from attrdist.models.vit import is_vit


def sync(device):
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn, repeats, device):
    """Median seconds of ``fn()`` over ``repeats`` runs after one warm-up, and the peak memory of one run."""
    fn()
    sync(device)
    cuda = torch.device(device).type == "cuda"
    if cuda:
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
    times = []
    for _ in range(repeats):
        sync(device)
        start = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - start)
    peak = (torch.cuda.max_memory_allocated(device) - base) / 2**30 if cuda else float("nan")
    return statistics.median(times), peak


def build(name, device, channels_last):
    lm = load_model(name, weights="random")
    model = lm.model.to(device).eval()
    if is_vit(model) and hasattr(model, "heads"):  # torchvision starts its ViT head at zero: no gradient at all
        torch.nn.init.normal_(model.heads.head.weight, std=0.02)
    for m in model.modules():
        if hasattr(m, "inplace"):
            m.inplace = False  # Captum's backward hooks refuse in-place activations
    if channels_last and not is_vit(model):
        model = model.to(memory_format=torch.channels_last)
    return lm, model


def floors(model, x, classes):
    def forward():
        with torch.inference_mode():
            model(x)

    def forward_backward():
        xg = x.clone().requires_grad_(True)
        out = model(xg)
        for k in range(classes.shape[1]):
            torch.autograd.grad(out.gather(1, classes[:, k : k + 1]).sum(), xg, retain_graph=k < classes.shape[1] - 1)

    return forward, forward_backward


def peers(model, name):
    """The peer's per-class loop for a method, or None."""
    try:
        if name == "gradcam":
            from pytorch_grad_cam import GradCAM
            from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

            from attrdist.methods.hooks import resolve_module

            layer = resolve_module(model, default_cam_layer(model))

            def run(x, c):
                # its hooks copy activations and gradients to the host; they are removed after each call, so that
                # they cannot slow the methods measured after it
                with GradCAM(model=model, target_layers=[layer]) as cam:
                    return cam(input_tensor=x, targets=[ClassifierOutputTarget(int(t)) for t in c])

            return "pytorch-grad-cam GradCAM", run
        if name == "lrp":
            from zennit.attribution import Gradient
            from zennit.composites import EpsilonPlusFlat

            from attrdist.models import family_of

            def run(x, c):
                with Gradient(model, EpsilonPlusFlat(canonizers=family_of(model).canonizers())) as attributor:
                    return attributor(x, torch.nn.functional.one_hot(c, 1000).to(x.dtype))[1]

            return "Zennit EpsilonPlusFlat", run
        from captum.attr import GuidedBackprop, InputXGradient, Saliency

        captum = {"gradient": (Saliency, {"abs": False}), "input_x_gradient": (InputXGradient, {}),
                  "guided_backprop": (GuidedBackprop, {})}
        if name in captum:
            cls, kwargs = captum[name]
            obj = cls(model)
            return f"Captum {cls.__name__}", lambda x, c: obj.attribute(x.clone().requires_grad_(True), target=c,
                                                                        **kwargs)
    except ImportError as err:
        print(f"  (peer for {name} unavailable: {err})", file=sys.stderr)
    return None


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--models", default="torchvision:resnet50,torchvision:vit_b_16")
    p.add_argument("--batches", default="1,16,64")
    p.add_argument("--ks", default="2,4,10")
    p.add_argument("--cnn-methods", default="gradcam,gradient,input_x_gradient,guided_backprop")
    p.add_argument("--vit-methods", default="gradient,gradcam,grad_rollout,gae,inflow,tlrp,bi_attn,t_attn")
    p.add_argument("--vit-k", type=int, default=4, help="K of the ViT method comparison")
    p.add_argument("--vit-batch", type=int, default=16)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--ig-steps", type=int, default=200)
    p.add_argument("--ig-k", type=int, default=10)
    p.add_argument("--ig-batch", type=int, default=32)
    p.add_argument("--max-memory", default="8GB")
    p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    p.add_argument("--channels-last", action="store_true")
    p.add_argument("--skip", default="", help="sections to skip: cnn,vit,ig,bf16")
    p.add_argument("--small", action="store_true", help="CPU smoke test: small inputs and batches")
    p.add_argument("--out", default=None)
    args = p.parse_args()
    if args.small:
        args.batches, args.ks, args.size, args.repeats = "1,2", "2,4", 64, 1
        args.ig_steps, args.ig_k, args.ig_batch, args.vit_batch = 8, 4, 2, 2
        args.models = "torchvision:resnet18,timm:vit_tiny_patch16_224"
    dev = args.device
    skip = set(filter(None, args.skip.split(",")))
    report = {"device": torch.cuda.get_device_name(dev) if dev.startswith("cuda") else "cpu",
              "torch": torch.__version__, "dtype": args.dtype, "channels_last": args.channels_last, "cnn": [],
              "vit": [], "ig": None, "bf16": None}
    print(f"device {report['device']}, torch {torch.__version__}, threads {torch.get_num_threads()}, "
          f"dtype {args.dtype}, channels_last {args.channels_last}", flush=True)

    def save():
        if args.out:
            with open(args.out, "w") as f:
                json.dump(report, f, indent=1)

    autocast = None if args.dtype == "float32" else args.dtype
    for model_name in args.models.split(","):
        try:
            lm, model = build(model_name, dev, args.channels_last)
        except ImportError as err:  # e.g. timm not installed: say so, measure the rest
            print(f"{model_name}: skipped ({err})", flush=True)
            report.setdefault("skipped", []).append({"model": model_name, "reason": str(err)})
            continue
        vit = is_vit(model)
        if (vit and "vit" in skip) or (not vit and "cnn" in skip):
            continue
        size = (lm.input_size or (args.size, args.size))[0] if vit else args.size
        batches = [args.vit_batch] if vit else [int(b) for b in args.batches.split(",")]
        ks = [args.vit_k] if vit else [int(k) for k in args.ks.split(",")]
        for b in batches:
            x = torch.randn(b, 3, size, size, device=dev)
            if args.channels_last and not vit:
                x = x.contiguous(memory_format=torch.channels_last)
            for k in ks:
                classes = (torch.arange(k, device=dev) * 7)[None].expand(b, -1).contiguous()
                forward, fwd_bwd = floors(model, x, classes)
                t_fwd, m_fwd = timed(forward, args.repeats, dev)
                t_fb, m_fb = timed(fwd_bwd, args.repeats, dev)
                print(f"{model_name} B={b} K={k}: forward {b / t_fwd:.1f} img/s, forward+{k} backward "
                      f"{b / t_fb:.1f} img/s", flush=True)
                methods = (args.vit_methods if vit else args.cnn_methods).split(",")
                for name in methods:
                    opts = {"steps": 20, "chunk_size": 20} if name in ("bi_attn", "t_attn") else {}
                    explainer = VAR(get_method(name, model, autocast=autocast, **opts), classes=classes)
                    t, mem = timed(lambda e=explainer, x=x: e.attribute(x), args.repeats, dev)
                    row = {"model": model_name, "batch": b, "k": k, "method": name, "seconds": t, "img_per_s": b / t,
                           "peak_gib": mem, "forward_s": t_fwd, "floor_s": t_fb, "vs_forward": t_fwd / t,
                           "vs_floor": t / t_fb}
                    peer = None if vit else peers(model, name)
                    if peer is not None:
                        peer_name, fn = peer
                        t_peer, m_peer = timed(lambda fn=fn, x=x, c=classes: [fn(x, c[:, j]) for j in range(len(c[0]))],
                                               args.repeats, dev)
                        row.update(peer=peer_name, peer_s=t_peer, peer_over_ours=t_peer / t, peer_peak_gib=m_peer)
                    print(f"  {name:<18} {b / t:8.1f} img/s  peak {mem:6.2f} GiB  x forward {t_fwd / t:5.2f}  "
                          f"/ floor {t / t_fb:5.2f}" + (f"  peer/ours {row['peer_over_ours']:5.2f} ({row['peer']})"
                                                         if "peer" in row else ""), flush=True)
                    report["vit" if vit else "cnn"].append(row)
                    save()
                if vit:
                    grad = next(r["seconds"] for r in report["vit"] if r["method"] == "gradient" and r["batch"] == b
                                and r["k"] == k and r["model"] == model_name)
                    for r in report["vit"]:
                        if r["batch"] == b and r["k"] == k and r["model"] == model_name:
                            r["vs_gradient"] = r["seconds"] / grad
                    print("  ViT methods / gradient: " + ", ".join(
                        f"{r['method']} {r['vs_gradient']:.2f}" for r in report["vit"]
                        if r["model"] == model_name and r["batch"] == b), flush=True)
                    save()
        if not vit and "ig" not in skip:
            report["ig"] = integrated_gradients(model, args, dev)
            save()
        if not vit and "bf16" not in skip and args.dtype == "float32":
            report["bf16"] = bf16_deviation(model, args, dev)
            save()
        del model
        if dev.startswith("cuda"):
            torch.cuda.empty_cache()
    save()


def integrated_gradients(model, args, dev):
    """IG with many steps under a memory budget, against the same chunks of forward + K backward in autograd."""
    from attrdist.methods.gradient import parse_memory

    b, k, steps = args.ig_batch, args.ig_k, args.ig_steps
    x = torch.randn(b, 3, args.size, args.size, device=dev)
    classes = (torch.arange(k, device=dev) * 7)[None].expand(b, -1).contiguous()
    budget = args.max_memory if dev.startswith("cuda") else None
    method = get_method("integrated_gradients", model, steps=steps, max_memory=budget)
    t_ig, peak = timed(lambda: method.attribute(x, classes=classes), 1, dev)
    from attrdist.methods.gradient import _CHUNK_CHOICE

    chunk = next(iter(_CHUNK_CHOICE.values()), method.chunk_size)

    def floor():
        for lo in range(0, steps, chunk):
            s = min(chunk, steps - lo)
            xs = x.repeat(s, 1, 1, 1).requires_grad_(True)
            out = model(xs)
            seeds = torch.zeros(k, *out.shape, device=dev)
            seeds.scatter_(2, classes.repeat(s, 1).t().unsqueeze(-1), 1.0)
            torch.autograd.grad(out, xs, seeds, is_grads_batched=True)

    t_floor, peak_floor = timed(floor, 1, dev)
    row = {"steps": steps, "k": k, "batch": b, "chunk": chunk, "seconds": t_ig, "peak_gib": peak,
           "budget_gib": (parse_memory(budget) or 0) / 2**30, "floor_s": t_floor, "floor_peak_gib": peak_floor,
           "vs_floor": t_ig / t_floor}
    print(f"integrated_gradients {steps} steps K={k} B={b}: {t_ig:.2f} s, peak {peak:.2f} GiB (budget {budget}), "
          f"chunk {chunk} steps; floor {t_floor:.2f} s -> {t_ig / t_floor:.2f}x", flush=True)
    return row


def bf16_deviation(model, args, dev):
    """How far bfloat16 autocast moves the maps and the refined maps (relative L2 over the batch)."""
    x = torch.randn(4, 3, args.size, args.size, device=dev)
    classes = (torch.arange(4, device=dev) * 7)[None].expand(4, -1).contiguous()
    out = {}
    for name in ("gradcam", "gradient", "input_x_gradient", "guided_backprop"):
        full = VAR(get_method(name, model), classes=classes).attribute(x)
        low = VAR(get_method(name, model, autocast="bfloat16"), classes=classes).attribute(x)
        t_full, _ = timed(lambda n=name: VAR(get_method(n, model), classes=classes).attribute(x), args.repeats, dev)
        t_low, _ = timed(lambda n=name: VAR(get_method(n, model, autocast="bfloat16"), classes=classes).attribute(x),
                         args.repeats, dev)

        def rel(a, b):
            return float((a.float() - b.float()).norm() / b.float().norm().clamp(min=1e-30))

        agree = float((low.refined_target.flatten(1).argmax(1) == full.refined_target.flatten(1).argmax(1))
                      .float().mean())
        out[name] = {"maps_rel_l2": rel(low.maps, full.maps), "refined_rel_l2": rel(low.refined, full.refined),
                     "peak_pixel_agreement": agree, "speedup": t_full / t_low}
        print(f"bf16 {name}: maps rel. L2 {out[name]['maps_rel_l2']:.3g}, refined rel. L2 "
              f"{out[name]['refined_rel_l2']:.3g}, same peak pixel {agree:.0%}, speed-up {t_full / t_low:.2f}x",
              flush=True)
    return out


if __name__ == "__main__":
    main()
