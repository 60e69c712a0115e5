"""K classes at once vs one class, and vs the peer's per-class loop (ResNet-50, 224x224, random init).

Prints, per method: the time of the K-class call divided by a one-class call, the time of the peer called
once per class divided by the K-class call, and batched vs sequential VJP times. All numbers of one
table are measured in the same run, interleaved, median of --repeats.

    python benchmarks/multiclass_speed.py [--k 4] [--repeats 3] [--model torchvision:resnet50]
    python benchmarks/multiclass_speed.py --model torchvision:vit_b_16 \
        --methods gradient,gradcam,grad_rollout,gae,bi_attn,t_attn,inflow,rollout
"""

import argparse
import statistics
import time

import torch

from attrdist import get_method
from attrdist.methods.hooks import resolve_module
from attrdist.models import default_cam_layer, family_of, load_model


def captum_peers(model, layer_name, steps):
    from captum.attr import (
        GuidedBackprop,
        GuidedGradCam,
        InputXGradient,
        IntegratedGradients,
        LayerAttribution,
        LayerGradCam,
        Saliency,
    )

    layer = resolve_module(model, layer_name)

    def gradcam(x, c):
        a = LayerGradCam(model, layer).attribute(x, target=c, relu_attributions=True)
        return LayerAttribution.interpolate(a, x.shape[-2:], interpolate_mode="bilinear")

    def lrp(x, c):
        from zennit.attribution import Gradient
        from zennit.composites import EpsilonPlusFlat

        with Gradient(model, EpsilonPlusFlat(canonizers=family_of(model).canonizers())) as attributor:
            return attributor(x, torch.eye(1000, device=x.device)[c])[1]

    return {
        "gradcam": ("captum LayerGradCam", gradcam),
        "guided_gradcam": (
            "captum GuidedGradCam",
            lambda x, c: GuidedGradCam(model, layer).attribute(x, target=c, interpolate_mode="bilinear"),
        ),
        "gradient": ("captum Saliency", lambda x, c: Saliency(model).attribute(x, target=c, abs=False)),
        "input_x_gradient": ("captum InputXGradient", lambda x, c: InputXGradient(model).attribute(x, target=c)),
        "guided_backprop": ("captum GuidedBackprop", lambda x, c: GuidedBackprop(model).attribute(x, target=c)),
        "integrated_gradients": ("captum IntegratedGradients",
                                 lambda x, c: IntegratedGradients(model).attribute(x, target=c, n_steps=steps)),
        "lrp": ("zennit Gradient", lrp),
    }


def medians(fns, repeats, device="cpu"):
    """Median seconds of each zero-argument function, measured interleaved (CUDA work waited for)."""
    sync = torch.cuda.synchronize if torch.device(device).type == "cuda" else (lambda: None)
    runs = {k: [] for k in fns}
    for _ in range(repeats):
        for k, fn in fns.items():
            sync()
            start = time.perf_counter()
            fn()
            sync()
            runs[k].append(time.perf_counter() - start)
    return {k: statistics.median(v) for k, v in runs.items()}


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--model", default="torchvision:resnet50")
    p.add_argument("--k", type=int, default=4)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--steps", type=int, default=32)
    p.add_argument("--methods", default="gradcam,gradient,input_x_gradient,guided_backprop,integrated_gradients,"
                                        "guided_gradcam,layercam,lrp")
    p.add_argument("--device", default="cpu")
    p.add_argument("--batch", type=int, default=1)
    args = p.parse_args()

    torch.manual_seed(0)
    lm = load_model(args.model, weights="random")
    model = lm.model.to(args.device)
    for m in model.modules():
        if hasattr(m, "inplace"):
            m.inplace = False  # Captum's backward hooks refuse in-place ReLUs
    x = torch.randn(args.batch, 3, args.size, args.size, device=args.device)
    classes = (torch.arange(args.k, device=args.device)[None] * 7).expand(args.batch, -1)
    from attrdist.models.vit import is_vit

    peers = {} if is_vit(model) else captum_peers(model, default_cam_layer(model), args.steps)
    print(f"model {args.model} (random init), input {args.batch}x3x{args.size}x{args.size}, K={args.k}, "
          f"device {args.device}, "
          f"threads {torch.get_num_threads()}, median of {args.repeats}")
    header = f"{'method':<22}{'1 class s':>10}{'K classes s':>12}{'K / 1':>8}{'peer loop s':>12}{'peer / K':>10}" \
             f"{'batched s':>11}{'sequential s':>13}  peer"
    print(header)
    print("-" * len(header))
    for name in args.methods.split(","):
        opts = {"steps": args.steps} if name == "integrated_gradients" else {}
        auto = get_method(name, model, **opts)
        bat = get_method(name, model, vjp="batched", **opts)
        seq = get_method(name, model, vjp="sequential", **opts)
        auto(x, classes)  # warm-up, and the one-time VJP measurement of "auto"
        peer_name, peer = peers.get(name, ("-", None))
        fns = {
            "one": lambda m=auto: m(x, classes[:, :1]),
            "k": lambda m=auto: m(x, classes),
            "bat": lambda m=bat: m(x, classes),
            "seq": lambda m=seq: m(x, classes),
        }
        if peer is not None:
            fns["peer"] = lambda f=peer: [f(x.clone().requires_grad_(True), classes[:, k]) for k in range(args.k)]
        med = {"peer": float("nan"), **medians(fns, args.repeats, args.device)}
        print(f"{name:<22}{med['one']:>10.3f}{med['k']:>12.3f}{med['k'] / med['one']:>8.2f}{med['peer']:>12.3f}"
              f"{med['peer'] / med['k']:>10.2f}{med['bat']:>11.3f}{med['seq']:>13.3f}  {peer_name}")


if __name__ == "__main__":
    main()
