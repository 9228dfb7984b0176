"""Grad-CAM heat maps on the third convolution (paper: "adequate spatial resolution"), drawn over the cine image.

Uses `monai.visualize.GradCAM`, which works on a plain `nn.Module` addressed by layer name (torchvision,
and with it the `grad-cam` package, does not import beside our CPU torch). MONAI registers hooks it never
removes and zeroes the module's gradients, so the maps are computed on a private copy of the network:
the caller's model is left exactly as it was.

`gradcam_overlay` renders one image and is what the screening command reuses.
"""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import torch
from matplotlib.figure import Figure
from monai.visualize import GradCAM

from cinescar.dl.network import GRADCAM_LAYER
from cinescar.errors import CinescarError


def gradcam_maps(
    net: torch.nn.Module, inputs: np.ndarray | torch.Tensor, layer: str = GRADCAM_LAYER, batch_size: int = 16
) -> np.ndarray:
    """Grad-CAM maps (N, H, W) in [0, 1] for inputs (N, 3, H, W), for the scar logit, upsampled to the input."""
    names = {name for name, _ in net.named_modules()}
    if layer not in names:
        raise CinescarError(f"Grad-CAM layer {layer!r} is not a layer of the network (e.g. {GRADCAM_LAYER!r})")
    x_all = torch.as_tensor(np.asarray(inputs), dtype=torch.float32)
    if x_all.ndim == 3:
        x_all = x_all[None]
    device = next(net.parameters()).device
    private = copy.deepcopy(net).eval()
    for p in private.parameters():
        p.requires_grad_(True)
    cam = GradCAM(nn_module=private, target_layers=layer)
    maps = []
    with torch.enable_grad():
        for start in range(0, len(x_all), batch_size):
            x = x_all[start:start + batch_size].to(device)
            maps.append(cam(x=x, class_idx=0).detach().float().cpu().numpy()[:, 0])
    return np.concatenate(maps) if maps else np.zeros((0, *x_all.shape[-2:]), np.float32)


def render_overlay(
    image: np.ndarray,
    mask: np.ndarray,
    heatmap: np.ndarray,
    out_png: str | Path,
    title: str | None = None,
    alpha: float = 0.4,
) -> Path:
    """Write a PNG: the cine image in grey, the heat map (jet) over it, the myocardium contour in white."""
    out_png = Path(out_png)
    out_png.parent.mkdir(parents=True, exist_ok=True)
    fig = Figure(figsize=(3.2, 3.4), dpi=100)
    ax = fig.add_axes((0, 0, 1, 0.92 if title else 1.0))
    ax.imshow(image, cmap="gray", interpolation="nearest")
    ax.imshow(heatmap, cmap="jet", alpha=alpha, vmin=0.0, vmax=1.0, interpolation="bilinear")
    if np.any(mask > 0.5) and np.any(mask < 0.5):
        ax.contour(mask.astype(float), levels=[0.5], colors="white", linewidths=0.8)
    ax.set_axis_off()
    if title:
        fig.suptitle(title, fontsize=8)
    fig.savefig(out_png)
    return out_png


def gradcam_overlay(
    model: torch.nn.Module,
    image3ch: np.ndarray | torch.Tensor,
    mask: np.ndarray | None,
    out_png: str | Path,
    layer: str = GRADCAM_LAYER,
    title: str | None = None,
    alpha: float = 0.4,
) -> np.ndarray:
    """Grad-CAM of one image (3, H, W) rendered as a PNG overlay; returns the (H, W) map in [0, 1].

    `mask` draws the myocardium contour; None takes the input's mask channel.
    """
    x = np.asarray(image3ch, dtype=np.float32)
    if x.ndim != 3 or x.shape[0] != 3:
        raise CinescarError(f"Grad-CAM expects one 3-channel image (3, H, W), got shape {x.shape}")
    heat = gradcam_maps(model, x[None], layer)[0]
    render_overlay(x[0], x[1] if mask is None else np.asarray(mask), heat, out_png, title, alpha)
    return heat
