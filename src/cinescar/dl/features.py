"""Batched inference: scar probability and the 256 DL features of every image, in one pass.

The DL features are the activations of the 256-unit dense layer (after its activation, before dropout)
in eval mode -- the layer the paper feeds into the fused DL-Radiomics model. Images are read from the store
chunk by chunk so a large cohort never sits in memory at 256 x 256 all at once.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch

from cinescar.dl.inference import predict, three_channels
from cinescar.dl.network import N_FEATURES, ScarNet

FEATURE_COLUMNS = [f"dl_{i:03d}" for i in range(N_FEATURES)]


def predict_index(
    net: ScarNet,
    index: pd.DataFrame,
    store_root: str | Path,
    size: int = 128,
    batch_size: int = 64,
    device: torch.device | str = "cpu",
    chunk: int = 1024,
) -> tuple[np.ndarray, np.ndarray]:
    """`predict` over every image of `index` (in its row order), loading the store `chunk` images at a time."""
    from cinescar.preprocessing.store import load_arrays

    probs, feats = [], []
    for start in range(0, len(index), chunk):
        part = index.iloc[start:start + chunk]
        images, masks = load_arrays(part, store_root)
        p, f = predict(net, three_channels(images, masks, size), batch_size, device)
        probs.append(p)
        feats.append(f)
    if not probs:
        return np.zeros(0, np.float32), np.zeros((0, N_FEATURES), np.float32)
    return np.concatenate(probs), np.concatenate(feats)


def features_table(image_ids: pd.Series | np.ndarray, feats: np.ndarray) -> pd.DataFrame:
    """`image_id` + `dl_000` ... `dl_255` (architecture: results/dl/fold{f}/features.parquet)."""
    table = pd.DataFrame(feats.astype(np.float32), columns=FEATURE_COLUMNS)
    table.insert(0, "image_id", np.asarray(image_ids, dtype=object))
    return table
