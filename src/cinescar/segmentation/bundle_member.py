"""The segmenter as a bundle member: plain state_dicts + the JSON that rebuilds each network.

Written into the bundle folder beside the scar models (hash-checked like every member by `bundle.json`) and
loaded from the verified bytes with `torch.load(weights_only=True)`, so loading runs no code. The entry in
the bundle's metadata says the label map, the field (normalisation), a hash of the training patients (not
their IDs) and the held-out Dice the study measured.
"""

from __future__ import annotations

import hashlib
import io
import json
import shutil
from pathlib import Path
from typing import Any

import pandas as pd

from cinescar.errors import CinescarError

MEMBER_DIR = "segmentation"


def write_segmenter(dest: Path, models: list[str | Path], metas: list[str | Path], qc: dict,
                    overlap: str | Path | None = None) -> dict[str, Any]:
    """Copy every cross-fitted network into `dest/segmentation/`; returns the metadata entry."""
    (dest / MEMBER_DIR).mkdir(parents=True, exist_ok=True)
    networks, hashes = [], []
    field = labels = None
    for model, meta_path in zip(models, metas):
        meta = json.loads(Path(meta_path).read_text())
        k = int(meta["fold"])
        weights, params = f"{MEMBER_DIR}/fold{k}.pt", f"{MEMBER_DIR}/fold{k}.json"
        shutil.copyfile(model, dest / weights)
        (dest / params).write_text(json.dumps({"network": meta["network"]}, indent=1))
        networks.append({"fold": k, "weights": weights, "params": params,
                         "val_myocardium_dice": meta["val_myocardium_dice"]})
        hashes.append(meta["training_patients_sha256"])
        field, labels = meta["field"], meta["labels"]
    heldout = {}
    if overlap is not None and Path(overlap).is_file():
        table = pd.read_csv(overlap)
        table = table[table.get("center").isna() & table.get("vendor").isna()] if "center" in table else table
        for (role, phase, cls), part in table.groupby(["role", "phase", "class"]):
            heldout[f"{role}/{phase}/{cls}"] = {"dice_mean": float(part["dice_mean"].iloc[0]),
                                                "n_stacks": int(part["n_stacks"].iloc[0])}
    return {"networks": networks, "combine": "mean of the networks' softmax probabilities", "labels": labels,
            "field": field, "qc": qc,
            "training_patients_sha256": hashlib.sha256("\n".join(sorted(hashes)).encode()).hexdigest(),
            "heldout_dice": heldout}


def segmenter_files(entry: dict | None) -> set[str]:
    if not entry:
        return set()
    return {f for n in entry["networks"] for f in (n["weights"], n["params"])}


def load_segmenter_member(entry: dict, data: dict[str, bytes], root: Path, threads: int = 1):
    """The ensemble from verified bytes; any failure names the member and the bundle."""
    import torch

    from cinescar.segmentation.inference import FieldSettings, Segmenter

    nets = []
    for n in entry["networks"]:
        for name in (n["weights"], n["params"]):
            if name not in data:
                raise CinescarError(f"bundle {root}: segmenter member {name} is not listed in bundle.json")
        try:
            params = json.loads(data[n["params"]].decode("utf-8"))["network"]
        except (ValueError, KeyError, UnicodeDecodeError) as exc:
            raise CinescarError(f"bundle {root}: segmenter member {n['params']} is malformed ({exc})") from None
        try:
            state = torch.load(io.BytesIO(data[n["weights"]]), map_location="cpu", weights_only=True)
        except Exception as exc:  # torch raises UnpicklingError, RuntimeError, EOFError...
            raise CinescarError(f"bundle {root}: segmenter member {n['weights']} is not a plain state_dict "
                                f"({type(exc).__name__}); refusing to load it") from None
        nets.append((params, state))
    field = entry["field"]
    try:
        return Segmenter(nets, FieldSettings(int(field["size"]), float(field["spacing_mm"]),
                                             tuple(field["clip_percentiles"])), threads)
    except (RuntimeError, ValueError, KeyError) as exc:
        raise CinescarError(f"bundle {root}: the segmenter's weights do not fit its parameters "
                            f"({type(exc).__name__}: {str(exc)[:200]})") from None
