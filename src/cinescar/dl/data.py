"""CNN inputs, on-the-fly augmentation and the Lightning DataModule.

Input (paper): 3 x 128 x 128 = [cine image, myocardium mask, image x mask], centre-cropped from the
256 x 256 store with `crop_center`.

Augmentation (paper: random flips, shear 0-20 %, zoom 0-20 %, rotation +-30 deg) uses MONAI dictionary
transforms, because torchvision does not import beside our CPU torch wheel and MONAI moves image and mask
with the *same* random transform (bilinear for the image, nearest for the mask). The affine is applied to
the full 256 x 256 image and sampled straight into the 128 x 128 centre window (`spatial_size`), so a
rotated or zoomed-out crop shows real anatomy in its corners instead of zero padding. The third channel
is recomputed from the augmented image and mask.

Determinism: every training sample draws its random transform from a seed derived from
(seed, epoch, sample index) and the training order from (seed, epoch) (`EpochShuffle`), so neither depends
on the number of DataLoader workers or on which process serves a sample.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import lightning.pytorch as pl
import numpy as np
import pandas as pd
import torch
from monai.transforms import Compose, RandAffined, RandFlipd
from torch.utils.data import DataLoader, Dataset, Sampler

from cinescar.errors import CinescarError
from cinescar.dl.inference import three_channels

KEYS = ("image", "mask")


def positions(index: pd.DataFrame, subset: pd.DataFrame) -> np.ndarray:
    """Row positions of `subset`'s images within `index` (matched by `image_id`, order of `subset`)."""
    where = pd.Index(index["image_id"]).get_indexer(subset["image_id"])
    if (where < 0).any():
        missing = subset["image_id"].to_numpy()[where < 0][0]
        raise CinescarError(f"image {missing} is not in the image index")
    return where


def build_augmentation(aug: dict, size: int = 128) -> Compose | None:
    """MONAI transform for dicts {"image": (1,H,W), "mask": (1,H,W)} -> both (1, size, size); None if disabled.

    `aug` keys (config `dl.augmentation`): enabled, flip_axes (spatial axes, 0 = rows/vertical flip,
    1 = columns/horizontal flip), flip_prob, rotate_deg, shear, zoom.
    """
    if not aug.get("enabled", True):
        return None
    rotate = math.radians(float(aug.get("rotate_deg", 30.0)))
    shear = float(aug.get("shear", 0.2))
    zoom = float(aug.get("zoom", 0.2))
    transforms = [
        RandFlipd(keys=KEYS, prob=float(aug.get("flip_prob", 0.5)), spatial_axis=int(axis))
        for axis in aug.get("flip_axes", [1])
    ]
    transforms.append(
        RandAffined(
            keys=KEYS,
            spatial_size=(size, size),
            prob=1.0,
            rotate_range=(rotate,),
            shear_range=(shear, shear),
            scale_range=(zoom, zoom),
            mode=("bilinear", "nearest"),
            padding_mode="zeros",
        )
    )
    return Compose(transforms)


@contextmanager
def single_thread() -> Iterator[None]:
    """Run a tiny tensor op on one thread: on a busy 2-core machine, OpenMP threads of a 128 x 128 resample
    wait on each other (measured: ~3 ms on 1 thread, 50-100 ms on 2 threads under load)."""
    threads = torch.get_num_threads()
    if threads == 1:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def sample_seed(seed: int, epoch: int, item: int) -> int:
    """A per-sample augmentation seed; independent of worker processes and of the batch order."""
    return int(np.random.SeedSequence([int(seed), int(epoch), int(item)]).generate_state(1)[0])


class ScarImageDataset(Dataset):
    """Images with their patient label; augments on the fly when given a transform.

    Holds the full 256 x 256 arrays when augmenting (the affine samples the 128 window from them) and only
    the 128 x 128 crop otherwise, to keep evaluation memory small.
    """

    def __init__(
        self,
        images: np.ndarray,
        masks: np.ndarray,
        labels: Sequence[float] | np.ndarray,
        size: int = 128,
        augment: Compose | None = None,
        seed: int = 0,
    ) -> None:
        if not (len(images) == len(masks) == len(labels)):
            raise CinescarError(f"{len(images)} images, {len(masks)} masks and {len(labels)} labels differ in number")
        self.size = size
        self.augment = augment
        self.seed = seed
        self.epoch = 0
        self.labels = torch.as_tensor(np.asarray(labels, dtype=np.float32))
        if augment is None:
            self.inputs = torch.from_numpy(three_channels(images, masks, size))
        else:
            self.images = np.asarray(images, dtype=np.float32)
            self.masks = np.asarray(masks, dtype=np.float32)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        if self.augment is None:
            return self.inputs[i], self.labels[i]
        self.augment.set_random_state(seed=sample_seed(self.seed, self.epoch, i))
        with single_thread():
            out = self.augment({"image": self.images[i][None], "mask": self.masks[i][None]})
        img = torch.as_tensor(np.asarray(out["image"][0], dtype=np.float32))
        msk = torch.as_tensor(np.asarray(out["mask"][0], dtype=np.float32))
        return torch.stack([img, msk, img * msk]), self.labels[i]


class EpochShuffle(Sampler[int]):
    """A random order per epoch drawn from (seed, epoch) alone.

    Why not `shuffle=True` with a seeded generator: the DataLoader's multi-process iterator draws from that
    generator at other moments than the single-process one, so the order (and the weights) would depend on
    `num_workers`. Lightning calls `set_epoch` at every epoch start.
    """

    def __init__(self, n: int, seed: int) -> None:
        self.n, self.seed, self.epoch = int(n), int(seed), 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.n

    def __iter__(self) -> Iterator[int]:
        gen = torch.Generator().manual_seed(int(np.random.SeedSequence([self.seed, self.epoch]).generate_state(1)[0]))
        return iter(torch.randperm(self.n, generator=gen).tolist())


class ScarDataModule(pl.LightningDataModule):
    """Training (augmented, order from (seed, epoch)) and validation (plain crop) images of one fold.

    Takes arrays, not paths: the caller decides which images are `train` and which `val`, so this class
    cannot leak test or external images into training.
    """

    def __init__(
        self,
        train: tuple[np.ndarray, np.ndarray, np.ndarray],
        val: tuple[np.ndarray, np.ndarray, np.ndarray],
        batch_size: int = 8,
        num_workers: int = 0,
        seed: int = 0,
        augmentation: dict | None = None,
        size: int = 128,
    ) -> None:
        super().__init__()
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.seed = seed
        augment = build_augmentation(augmentation or {}, size)
        self.train_set = ScarImageDataset(*train, size=size, augment=augment, seed=seed)
        self.val_set = ScarImageDataset(*val, size=size, augment=None)
        self.train_sampler = EpochShuffle(len(self.train_set), seed)
        if len(self.train_set) == 0 or len(self.val_set) == 0:
            raise CinescarError(
                f"a fold needs training and validation images; got {len(self.train_set)} and {len(self.val_set)}"
            )

    def set_epoch(self, epoch: int) -> None:
        """Called by the LightningModule at each training epoch start: new order and augmentations every epoch."""
        self.train_set.set_epoch(epoch)
        self.train_sampler.set_epoch(epoch)

    def train_dataloader(self) -> DataLoader:
        return DataLoader(
            self.train_set,
            batch_size=self.batch_size,
            sampler=self.train_sampler,
            num_workers=self.num_workers,
            persistent_workers=False,
        )

    def val_dataloader(self) -> DataLoader:
        return DataLoader(self.val_set, batch_size=max(self.batch_size, 32), shuffle=False, num_workers=self.num_workers)
