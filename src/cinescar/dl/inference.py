"""DL inference without Lightning or MONAI: building the CNN's input, loading weights, predicting.

Kept apart from training (data.py imports Lightning and MONAI, ~6 s) so that screening a new exam and
bundle loading start fast; the training stage uses the very same functions, so the two cannot drift.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from cinescar.dl.network import N_FEATURES, ScarNet, build_network
from cinescar.errors import CinescarError
from cinescar.preprocessing.images import crop_center


def three_channels(images: np.ndarray, masks: np.ndarray, size: int = 128) -> np.ndarray:
    """(N, H, W) images and masks -> float32 (N, 3, size, size) = [image, mask, image x mask], centre crop."""
    if images.shape != masks.shape:
        raise CinescarError(f"images {images.shape} and masks {masks.shape} differ in shape")
    img = np.asarray(crop_center(images, size), dtype=np.float32)
    msk = np.asarray(crop_center(masks, size), dtype=np.float32)
    return np.stack([img, msk, img * msk], axis=1)


def resolve_device(accelerator: str = "auto") -> torch.device:
    """'auto' -> the GPU when one is there, else the CPU; 'cpu'/'gpu'/'cuda' as asked."""
    if accelerator in ("gpu", "cuda") or (accelerator == "auto" and torch.cuda.is_available()):
        return torch.device("cuda")
    if accelerator == "mps" or (accelerator == "auto" and getattr(torch.backends, "mps", None)
                                and torch.backends.mps.is_available()):
        return torch.device("mps")
    return torch.device("cpu")


@torch.inference_mode()
def predict(
    net: ScarNet, inputs: np.ndarray | torch.Tensor, batch_size: int = 64, device: torch.device | str = "cpu"
) -> tuple[np.ndarray, np.ndarray]:
    """Probabilities (N,) and DL features (N, 256) for inputs (N, 3, 128, 128); eval mode, no dropout."""
    device = torch.device(device)
    was_training = net.training
    net.eval().to(device)
    probs, feats = [], []
    x_all = torch.as_tensor(inputs, dtype=torch.float32)
    try:
        for start in range(0, len(x_all), batch_size):
            x = x_all[start:start + batch_size].to(device)
            emb = net.embed(x)
            logits = net.head.out(emb).squeeze(1)  # dropout is the identity in eval mode
            probs.append(torch.sigmoid(logits.float()).cpu().numpy())
            feats.append(emb.float().cpu().numpy())
    finally:
        net.train(was_training)
    if not probs:
        return np.zeros(0, np.float32), np.zeros((0, N_FEATURES), np.float32)
    return np.concatenate(probs), np.concatenate(feats)


def load_model(ckpt_path: str | Path, hparams_path: str | Path | None = None) -> ScarNet:
    """Rebuild a ScarNet from `model.ckpt` + `hparams.json` with `torch.load(weights_only=True)`; eval mode."""
    ckpt_path = Path(ckpt_path)
    hparams_path = Path(hparams_path) if hparams_path else ckpt_path.with_name("hparams.json")
    for p in (ckpt_path, hparams_path):
        if not p.exists():
            raise CinescarError(f"DL model file not found: {p}")
    return load_network(json.loads(hparams_path.read_text())["network"],
                        torch.load(ckpt_path, map_location="cpu", weights_only=True))


def load_network(network: dict, state: dict) -> ScarNet:
    """The CNN that `network` (hyper-parameters) describes with `state` (a plain state_dict) loaded strictly; eval
    mode. The one place a CNN is put together, for the DL stage's files and the bundle's verified bytes alike."""
    net = build_network(network)
    net.load_state_dict(state)
    return net.eval()
