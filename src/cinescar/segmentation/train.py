"""Training one segmentation network on fields of development (and masks-only) patients.

Choices (docs/segmentation.md): DiceCE loss (MONAI `DiceCELoss`: Dice for the thin myocardium, cross-entropy
for stable early gradients); random `crop` x `crop` patches, most centred on a myocardium pixel so the heart is
seen often although it fills a small part of the field; augmentation by random flips, 90-degree rotations and
intensity gamma (the short-axis orientation and contrast differ between scanners); Adam; early stopping on the
myocardium Dice of patient-wise held-out training patients, keeping the best epoch's weights. The loop is
plain PyTorch (a dozen lines) rather than Lightning: it has no callbacks, loggers or devices to manage.
Same inputs + seed + threads -> the same weights on CPU.
"""

from __future__ import annotations

import copy
import logging
import time
from dataclasses import dataclass, field

import numpy as np
import torch

from cinescar.segmentation.labels import MYOCARDIUM, N_CLASSES
from cinescar.segmentation.network import build_network

log = logging.getLogger(__name__)


@dataclass
class TrainingResult:
    state_dict: dict
    history: list[dict] = field(default_factory=list)
    best_epoch: int = 0
    best_val_dice: float = float("nan")
    seconds: float = 0.0
    slices_per_second: float = 0.0


def _patches(fields: np.ndarray, labels: np.ndarray, n: int, crop: int, fg_fraction: float,
             rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """`n` random crops; a `fg_fraction` share centred on a random myocardium pixel of the slice."""
    size = fields.shape[-1]
    xs = np.empty((n, crop, crop), np.float32)
    ys = np.empty((n, crop, crop), np.uint8)
    idx = rng.integers(0, len(fields), n)
    half = crop // 2
    for k, i in enumerate(idx):
        fg = np.argwhere(labels[i] == MYOCARDIUM) if rng.random() < fg_fraction else np.empty((0, 2))
        if len(fg):
            r, c = fg[rng.integers(len(fg))] + rng.integers(-half // 2, half // 2 + 1, 2)
        else:
            r, c = rng.integers(half, size - half + 1, 2)
        r0 = int(np.clip(r - half, 0, size - crop))
        c0 = int(np.clip(c - half, 0, size - crop))
        xs[k], ys[k] = fields[i, r0:r0 + crop, c0:c0 + crop], labels[i, r0:r0 + crop, c0:c0 + crop]
    return xs, ys


def _augment(x: torch.Tensor, y: torch.Tensor, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    flip = torch.rand(len(x), 2, generator=gen)
    rot = torch.randint(0, 4, (len(x),), generator=gen)
    gamma = torch.exp((torch.rand(len(x), generator=gen) - 0.5) * 0.6)  # 0.74 - 1.35
    for i in range(len(x)):
        dims = [d for d, f in zip((-2, -1), flip[i]) if f < 0.5]
        if dims:
            x[i], y[i] = torch.flip(x[i], dims), torch.flip(y[i], dims)
        if rot[i]:
            x[i], y[i] = torch.rot90(x[i], int(rot[i]), (-2, -1)), torch.rot90(y[i], int(rot[i]), (-2, -1))
        x[i] = x[i].clamp(0, 1) ** gamma[i]
    return x, y


def predict_probabilities(net: torch.nn.Module, fields: np.ndarray, batch: int = 16) -> np.ndarray:
    """Softmax probabilities (slices, classes, size, size) float32 of whole fields."""
    net.eval()
    device = next(net.parameters()).device
    out = np.empty((len(fields), N_CLASSES, *fields.shape[-2:]), np.float32)
    with torch.no_grad():
        for s in range(0, len(fields), batch):
            x = torch.from_numpy(np.ascontiguousarray(fields[s:s + batch], np.float32))[:, None].to(device)
            out[s:s + batch] = torch.softmax(net(x), dim=1).cpu().numpy()
    return out


def myocardium_dice(pred: np.ndarray, ref: np.ndarray) -> float:
    """Dice of the myocardium over all given slices together (NaN when both are empty)."""
    p, r = pred == MYOCARDIUM, ref == MYOCARDIUM
    denom = p.sum() + r.sum()
    return float(2 * (p & r).sum() / denom) if denom else float("nan")


def _cpu_state(net: torch.nn.Module) -> dict:
    """A copy of the weights on the CPU (what the bundle stores, loadable anywhere)."""
    return {k: v.detach().cpu().clone() for k, v in copy.deepcopy(net.state_dict()).items()}


def train_network(fields: np.ndarray, labels: np.ndarray, val_fields: np.ndarray, val_labels: np.ndarray,
                  params: dict, cfg: dict, seed: int) -> TrainingResult:
    """Train one network; `cfg` is the `segmentation` section, `params` the network's (`network_params`)."""
    from monai.losses import DiceCELoss

    torch.set_num_threads(int(cfg["threads"]))
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    gen = torch.Generator().manual_seed(seed)
    device = torch.device(str(cfg["device"]))
    net = build_network(params).to(device)
    opt = torch.optim.Adam(net.parameters(), lr=float(cfg["learning_rate"]))
    loss_fn = DiceCELoss(softmax=True, to_onehot_y=True)
    batch, crop = int(cfg["batch_size"]), int(cfg["crop"])
    steps = max(1, int(np.ceil(len(fields) / batch)))
    result = TrainingResult(state_dict=_cpu_state(net))
    best, since = -1.0, 0
    start = time.perf_counter()
    seen = 0
    for epoch in range(int(cfg["max_epochs"])):
        net.train()
        losses = []
        for _ in range(steps):
            xs, ys = _patches(fields, labels, batch, crop, float(cfg["foreground_fraction"]), rng)
            x, y = _augment(torch.from_numpy(xs)[:, None], torch.from_numpy(ys.astype(np.int64))[:, None], gen)
            opt.zero_grad()
            x, y = x.to(device), y.to(device)
            loss = loss_fn(net(x), y)
            loss.backward()
            opt.step()
            losses.append(float(loss))
            seen += batch
        pred = predict_probabilities(net, val_fields).argmax(1) if len(val_fields) else np.empty((0,))
        dice = myocardium_dice(pred, val_labels) if len(val_fields) else float("nan")
        result.history.append({"epoch": epoch, "loss": float(np.mean(losses)), "val_myocardium_dice": dice})
        log.info("epoch %d: loss %.4f, validation myocardium Dice %.4f", epoch, np.mean(losses), dice)
        if not np.isfinite(dice) or dice > best:
            best, since = (dice if np.isfinite(dice) else best), 0
            result.state_dict = _cpu_state(net)
            result.best_epoch, result.best_val_dice = epoch, dice
        else:
            since += 1
            if since > int(cfg["patience"]):
                log.info("early stop after epoch %d (best %d, Dice %.4f)", epoch, result.best_epoch, best)
                break
    result.seconds = time.perf_counter() - start
    result.slices_per_second = seen / result.seconds if result.seconds else float("nan")
    return result
