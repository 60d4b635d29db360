"""Benchmark: every attribution method, deepinside against Captum and pytorch-grad-cam.

Run:  .venv/bin/python benchmarks/bench_methods.py [--runs 3] [--batch 16] [--threads 1]
      [--methods gradient,gradcam,...] [--json out.json]

Milliseconds per batch (default 16 images, 224 x 224, CPU), median over interleaved rounds
(each round runs every variant of every method once, in turn), for the same model, batch,
targets and settings; the ratio deepinside / other library (target: at most 1). Also the
largest difference between the maps, each scaled to [0, 1], to show that the same thing is
computed (SmoothGrad: different noise draws, so only the cost is comparable; Grad-CAM++:
pytorch-grad-cam's 1e-6 in the denominator dominates on this model, see gradcam_pp).

- efficientnet_lite0 (the default model) for gradient, gradient x input, SmoothGrad (16
  samples, noise 0.15 of the range), Integrated Gradients (32 Gauss-Legendre steps, zero
  baseline), Grad-CAM (layer bn2), Grad-CAM++ and occlusion (56 px window, stride 28).
- A torchvision resnet18 (random weights, ``nn.ReLU`` modules) for deconvnet and guided
  backprop: on lite0's ReLU6 Captum's versions silently compute the plain gradient, so they
  would not be the same method. pytorch-grad-cam's guided backprop keeps only the first
  image of a batch, so it runs once per image.
- Captum's guided backprop and deconvnet register backward hooks, which cannot follow
  in-place ReLUs: they get a copy with ``inplace=False``. pytorch-grad-cam calls
  ``.backward()``: it gets a copy whose weights require gradients (as a user's model would).
- The CAM family (``build_cams``): Layer-CAM, HiResCAM, XGrad-CAM and Eigen-CAM on lite0's bn2
  at the main batch. Score-CAM and Ablation-CAM run one forward pass per channel and image, on
  the first ``--many-batch`` images (default 1), 64 copies per pass in both libraries:
  Score-CAM on ``--scorecam-layer`` (default blocks.4, 112 channels), Ablation-CAM on bn2
  (1280 channels; a layer of rectified values, where pytorch-grad-cam also ablates with 0, not
  ``min - 1e7``). ``--methods cams`` runs only this section.

DeepLIFT and GradientSHAP (``--methods deeplift,gradient_shap``) run against Captum on lite0
with the same batch and number of samples. lite0's rectifiers are ``nn.ReLU6`` modules, which
Captum's DeepLift does not know: it keeps their gradient there (a plain gradient pass), so only
the cost compares; on resnet18 (``nn.ReLU``, one module per use for Captum) both compute
DeepLIFT, except at the stem's max pooling (Captum's own rule there, the gradient here).
GradientSHAP draws differ (Captum uses the global generators), so again only the cost compares.

``--perturbation`` instead times RISE and extremal perturbation in ms per photo at the papers'
settings and at faster ones, and scores the pointing game (the map's peak within 15 px of a
ground-truth box, ground-truth class) on the first ``--photos`` dev photos
(``--dataset``, default ../shared/data/imagenet-val-300) for each setting::

    .venv/bin/python benchmarks/bench_methods.py --perturbation --photos 48 \
        --rise-masks 4000,1000 --ep-iterations 800,200
"""

from __future__ import annotations

import argparse
import copy
import functools
import json
import statistics
import time
import warnings

import torch
from torch import nn

import deepinside
from deepinside.methods import get_method

BATCH = 16
SG_SAMPLES, SG_NOISE = 16, 0.15
IG_STEPS = 32
OCC_WINDOW, OCC_STRIDE = 56, 28


def _relu_copy(module: nn.Module) -> nn.Module:
    m = copy.deepcopy(module)
    for sub in m.modules():
        if isinstance(sub, nn.ReLU):
            sub.inplace = False
    return m


def _trainable(module: nn.Module) -> nn.Module:
    return copy.deepcopy(module).requires_grad_(True)


def build(clf, resnet, x, t, ig_steps: int = IG_STEPS, sg_samples: int = SG_SAMPLES,
          occ: tuple[int, int] = (OCC_WINDOW, OCC_STRIDE)) -> dict[str, dict[str, callable]]:
    """Per method: {variant name: fn() -> Tensor[B, H, W]}."""
    from captum.attr import (
        Deconvolution,
        GuidedBackprop,
        InputXGradient,
        IntegratedGradients,
        LayerAttribution,
        LayerGradCam,
        NoiseTunnel,
        Occlusion,
        Saliency,
    )
    from pytorch_grad_cam import GradCAM, GradCAMPlusPlus
    from pytorch_grad_cam.guided_backprop import GuidedBackpropReLUModel
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    m = clf.module
    targets = [ClassifierOutputTarget(int(c)) for c in t]
    pgc_net = _trainable(m)
    pgc_res = _trainable(resnet)
    res_relu = _relu_copy(resnet)
    span = float((x.amax(dim=(1, 2, 3)) - x.amin(dim=(1, 2, 3))).mean())
    ours = get_method

    def pgc(cls, net, layer):
        def run():
            with cls(model=net, target_layers=[layer]) as cam:
                return torch.from_numpy(cam(input_tensor=x, targets=targets))
        return run

    def pgc_guided():
        gb = GuidedBackpropReLUModel(pgc_res, device=torch.device("cpu"))
        out = [torch.from_numpy(gb(x[i : i + 1], target_category=int(t[i]))) for i in range(len(x))]
        return torch.stack(out).abs().amax(-1)  # (H, W, 3) per image

    def captum_gradcam():
        a = LayerGradCam(m, m.bn2).attribute(x, target=t, relu_attributions=True)
        return LayerAttribution.interpolate(a, x.shape[-2:], "bilinear")[:, 0]

    return {
        "gradient": {
            "deepinside": lambda: ours("gradient")(clf, x, t),
            "captum": lambda: Saliency(m).attribute(x, target=t, abs=True).amax(1),
        },
        "gradient_x_input": {
            "deepinside": lambda: ours("gradient_x_input")(clf, x, t, reduce="sum"),
            "captum": lambda: InputXGradient(m).attribute(x, target=t).sum(1),
        },
        "deconvnet (resnet18)": {
            "deepinside": lambda: ours("deconvnet")(resnet, x, t),
            "captum": lambda: Deconvolution(res_relu).attribute(x, target=t).abs().amax(1),
        },
        "guided_backprop (resnet18)": {
            "deepinside": lambda: ours("guided_backprop")(resnet, x, t),
            "captum": lambda: GuidedBackprop(res_relu).attribute(x, target=t).abs().amax(1),
            "pytorch-grad-cam": pgc_guided,
        },
        "smoothgrad": {
            "deepinside": lambda: ours("smoothgrad")(
                clf, x, t, samples=sg_samples, noise=SG_NOISE, batch_size=64),
            "captum": lambda: NoiseTunnel(Saliency(m)).attribute(
                x, target=t, nt_type="smoothgrad", nt_samples=sg_samples,
                stdevs=SG_NOISE * span, nt_samples_batch_size=4, abs=False).abs().amax(1),
        },
        "integrated_gradients": {
            "deepinside": lambda: ours("integrated_gradients")(
                clf, x, t, steps=ig_steps, reduce="sum", batch_size=64),
            "captum": lambda: IntegratedGradients(m).attribute(
                x, target=t, n_steps=ig_steps, method="gausslegendre",
                internal_batch_size=64).sum(1),
        },
        "gradcam": {
            "deepinside": lambda: ours("gradcam")(clf, x, t),
            "captum": captum_gradcam,
            "pytorch-grad-cam": pgc(GradCAM, pgc_net, pgc_net.bn2),
        },
        "gradcam_pp": {
            "deepinside": lambda: ours("gradcam_pp")(clf, x, t),
            "pytorch-grad-cam": pgc(GradCAMPlusPlus, pgc_net, pgc_net.bn2),
        },
        "occlusion": {
            "deepinside": lambda: ours("occlusion")(
                clf, x, t, window=occ[0], stride=occ[1], batch_size=64),
            "captum": lambda: Occlusion(m).attribute(
                x, target=t, sliding_window_shapes=(3, occ[0], occ[0]),
                strides=(3, occ[1], occ[1]), baselines=0.0,
                perturbations_per_eval=4)[:, 0],
        },
    }


def build_cams(clf, x, t, scorecam_layer: str = "blocks.4", many_batch: int = 1,
               passes: int = 64) -> dict[str, dict[str, callable]]:
    """The CAM family against pytorch-grad-cam's classes: {method: {variant: fn}}."""
    import pytorch_grad_cam as pgc
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    net = _trainable(clf.module)
    xm, tm = x[:many_batch], t[:many_batch]

    def theirs(cls, layer, images, classes, **kw):
        targets = [ClassifierOutputTarget(int(c)) for c in classes]

        def run():
            with cls(model=net, target_layers=[net.get_submodule(layer)], **kw) as cam:
                if cls is pgc.ScoreCAM:
                    cam.batch_size = passes
                return torch.from_numpy(cam(input_tensor=images, targets=targets))
        return run

    def ours(name, layer, images, classes, **kw):
        return lambda: get_method(name)(clf, images, classes, layer=layer, **kw)

    table = {name: {"deepinside": ours(name, "bn2", x, t),
                    "pytorch-grad-cam": theirs(cls, "bn2", x, t)}
             for name, cls in (("layercam", pgc.LayerCAM), ("hirescam", pgc.HiResCAM),
                               ("xgradcam", pgc.XGradCAM), ("eigencam", pgc.EigenCAM))}
    for name, cls, layer, kw in (
        ("scorecam", pgc.ScoreCAM, scorecam_layer, {}),
        ("ablationcam", pgc.AblationCAM, "bn2", {"batch_size": passes}),
    ):
        table[f"{name} ({layer}, {many_batch} image{'s' * (many_batch > 1)})"] = {
            "deepinside": ours(name, layer, xm, tm, batch_size=passes),
            "pytorch-grad-cam": theirs(cls, layer, xm, tm, **kw),
        }
    return table


def _rel_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    """Largest difference of the maps, each scaled to [0, 1] per image (pytorch-grad-cam
    returns maps scaled that way)."""
    a, b = a.detach().float(), b.detach().float()
    if a.shape != b.shape:
        return float("nan")

    def unit(m):
        lo = m.flatten(1).amin(1).view(-1, 1, 1)
        hi = m.flatten(1).amax(1).view(-1, 1, 1)
        return (m - lo) / (hi - lo).clamp(min=1e-30)

    return float((unit(a) - unit(b)).abs().max())


SHAP_SAMPLES = 5


def _unique_relus(resnet: nn.Module) -> nn.Module:
    """A copy of a torchvision resnet whose blocks use two ReLU modules each (Captum's DeepLift
    needs every nonlinearity module to run once per forward); the same function."""
    import types

    from torchvision.models.resnet import BasicBlock

    def forward(self, x):
        out = self.relu_a(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        identity = x if self.downsample is None else self.downsample(x)
        return self.relu_b(out + identity)

    m = _relu_copy(resnet)
    for block in m.modules():
        if isinstance(block, BasicBlock):
            block.relu_a, block.relu_b = nn.ReLU(), nn.ReLU()
            block.forward = types.MethodType(forward, block)
    return m


def build_attribution(clf, resnet, x, t, samples: int = SHAP_SAMPLES
                      ) -> dict[str, dict[str, callable]]:
    """DeepLIFT (lite0 and resnet18) and GradientSHAP, deepinside and Captum."""
    from captum.attr import DeepLift, GradientShap

    m = clf.module
    dl_net = _relu_copy(m)  # Captum's module hooks cannot follow in-place activations
    for sub in dl_net.modules():
        if hasattr(sub, "inplace"):
            sub.inplace = False
    g = torch.Generator().manual_seed(1)
    bases = torch.cat([torch.zeros_like(x[:1]), torch.randn((3, *x.shape[1:]), generator=g)])
    res_relu = _unique_relus(resnet)
    ours = get_method
    return {
        "deeplift (resnet18)": {
            "deepinside": lambda: ours("deeplift")(resnet, x, t, reduce="sum", batch_size=32),
            "captum": lambda: DeepLift(res_relu).attribute(x, baselines=0.0, target=t).sum(1),
        },
        "deeplift": {
            "deepinside": lambda: ours("deeplift")(clf, x, t, reduce="sum", batch_size=32),
            "captum": lambda: DeepLift(dl_net).attribute(x, baselines=0.0, target=t).sum(1),
        },
        "gradient_shap": {
            "deepinside": lambda: ours("gradient_shap")(
                clf, x, t, baselines=bases, samples=samples, noise=0.1, reduce="sum",
                batch_size=64),
            "captum": lambda: GradientShap(m).attribute(
                x, bases, n_samples=samples, stdevs=0.1, target=t).sum(1),
        },
    }


def add_perturbation_arguments(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--shap-samples", type=int, default=SHAP_SAMPLES)
    ap.add_argument("--perturbation", action="store_true",
                    help="time RISE and extremal perturbation, and their pointing game")
    ap.add_argument("--dataset", default=None, help="dev photos with boxes (annotations.json)")
    ap.add_argument("--photos", type=int, default=48)
    ap.add_argument("--rise-masks", default="4000,1000",
                    help="mask counts; the first is the paper's setting")
    ap.add_argument("--ep-iterations", default="800,200",
                    help="iteration counts; the first is the paper's (TorchRay's) setting")
    ap.add_argument("--skip", default="", help="comma-separated: rise, extremal_perturbation")


def perturbation_benchmark(args: argparse.Namespace) -> None:
    """ms per photo and pointing game of RISE and extremal perturbation, per setting."""
    from pathlib import Path

    from deepinside.evaluate import read_dataset
    from deepinside.evaluate.metrics import map_peak, pointing_hit
    from deepinside.images import load_image
    from deepinside.photomaps import photo_maps

    root = Path(args.dataset) if args.dataset else (
        Path(__file__).resolve().parents[2] / "shared" / "data" / "imagenet-val-300")
    if not (root / "annotations.json").is_file():
        root = Path("/work/shared/data/imagenet-val-300")
    records, _ = read_dataset(root / "annotations.json")
    records = [r for r in records if r.boxes][: args.photos]
    photos = [load_image(r.path) for r in records]
    labels = [r.label for r in records]
    clf = deepinside.load_model("efficientnet_lite0")
    settings = [("rise", {"masks": int(n), "grid": 7, "p": 0.5})
                for n in args.rise_masks.split(",")]
    settings += [("extremal_perturbation", {"iterations": int(n), "area": 0.1})
                 for n in args.ep_iterations.split(",")]
    skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    print(f"CPU threads {torch.get_num_threads()}, {len(photos)} dev photos with boxes from "
          f"{root}, ground-truth classes, torch {torch.__version__}")
    print("\n| method | setting | ms per photo | pointing game | hits |")
    print("|---|---|---|---|---|")
    results = []
    for name, opts in settings:
        if name in skip:
            continue
        t0 = time.perf_counter()
        maps, _, _ = photo_maps(clf, photos, labels, method=name, batch_size=8, **opts)
        ms = 1000 * (time.perf_counter() - t0) / len(photos)
        hits = [pointing_hit(map_peak(m), r.boxes) for m, r in zip(maps, records)]
        acc = 100.0 * sum(hits) / len(hits)
        setting = ", ".join(f"{k}={v}" for k, v in opts.items())
        print(f"| {name} | {setting} | {ms:.0f} | {acc:.1f} % | "
              f"{''.join('1' if h else '0' for h in hits)} |", flush=True)
        results.append({"method": name, "options": opts, "ms_per_photo": ms,
                        "pointing": acc, "hits": hits})
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--batch", type=int, default=BATCH)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--methods", default=None, help="comma-separated subset")
    ap.add_argument("--ig-steps", type=int, default=IG_STEPS)
    ap.add_argument("--sg-samples", type=int, default=SG_SAMPLES)
    ap.add_argument("--occ-window", type=int, default=OCC_WINDOW,
                    help="window; (224 - window) must be a multiple of the stride")
    ap.add_argument("--occ-stride", type=int, default=OCC_STRIDE)
    ap.add_argument("--scorecam-layer", default="blocks.4",
                    help="Score-CAM's layer (one forward pass per channel)")
    ap.add_argument("--many-batch", type=int, default=1,
                    help="images for Score-CAM and Ablation-CAM")
    ap.add_argument("--json", default=None)
    add_perturbation_arguments(ap)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if args.perturbation:
        perturbation_benchmark(args)
        return
    warnings.simplefilter("ignore")
    import tqdm  # pytorch-grad-cam's progress bars, off (this process only)

    tqdm.tqdm.__init__ = functools.partialmethod(tqdm.tqdm.__init__, disable=True)
    import torchvision

    clf = deepinside.load_model("efficientnet_lite0")
    torch.manual_seed(0)
    resnet = torchvision.models.resnet18(weights=None).eval()
    g = torch.Generator().manual_seed(0)
    x = torch.randn(args.batch, 3, 224, 224, generator=g)
    t = torch.randint(0, 1000, (args.batch,), generator=g)
    if (224 - args.occ_window) % args.occ_stride:
        ap.error("(224 - occ-window) must be a multiple of occ-stride (same windows as Captum)")
    table = build(clf, resnet, x, t, args.ig_steps, args.sg_samples,
                  (args.occ_window, args.occ_stride))
    table.update(build_cams(clf, x, t, args.scorecam_layer, args.many_batch))
    table |= build_attribution(clf, resnet, x, t, args.shap_samples)
    if args.methods:
        keep = [s.strip() for s in args.methods.split(",")]
        if "cams" in keep:
            keep += ["layercam", "hirescam", "xgradcam", "eigencam", "scorecam", "ablationcam"]
        table = {k: v for k, v in table.items() if k.split(" ")[0] in keep}
    print(f"CPU threads {torch.get_num_threads()}, batch {args.batch} x 3 x 224 x 224, "
          f"torch {torch.__version__}, median of {args.runs} interleaved rounds; "
          f"IG {args.ig_steps} steps, SmoothGrad {args.sg_samples} samples, occlusion "
          f"window {args.occ_window} stride {args.occ_stride}")
    diffs = {}
    for method, variants in table.items():  # warm-up, and agreement of the maps
        outs = {k: fn() for k, fn in variants.items()}
        ref = outs["deepinside"]
        diffs[method] = {k: _rel_diff(ref, o) for k, o in outs.items() if k != "deepinside"}
    times: dict[str, dict[str, list[float]]] = {m: {k: [] for k in v} for m, v in table.items()}
    for _ in range(args.runs):
        for method, variants in table.items():
            for k, fn in variants.items():
                t0 = time.perf_counter()
                fn()
                times[method][k].append(time.perf_counter() - t0)
    results = {}
    print("\n| method | deepinside ms | other | other ms | ratio | max map diff |")
    print("|---|---|---|---|---|---|")
    for method, tv in times.items():
        ms = {k: 1000 * statistics.median(v) for k, v in tv.items()}
        results[method] = {"ms": ms, "map_diff": diffs[method]}
        for k in ms:
            if k == "deepinside":
                continue
            print(f"| {method} | {ms['deepinside']:.0f} | {k} | {ms[k]:.0f} | "
                  f"{ms['deepinside'] / ms[k]:.2f} | {diffs[method][k]:.1e} |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
