"""The LightningModule: the paper's loss (binary cross-entropy), optimiser (Adam) and per-epoch metrics.

The network itself lives in `network.ScarNet` (plain torch); this class only trains it. Each epoch it
appends one record to `history` -- train loss/accuracy (with dropout and augmentation, like Keras reports
them), and image-level validation loss, accuracy (threshold 0.5) and AUC over the whole `val` set, plus the
patient-level AUC (patient probability = max over its images, as in screening) when the validation images'
patients are known -- which the callbacks in `train` use for checkpoint choice, early stopping, MLflow and
Optuna pruning.

Balanced training: `pos_weight` (negatives / positives of the training images) weighs the positive term of
the training loss, so a model that calls every image negative no longer minimises it on imbalanced folds.
The validation loss stays the plain, unweighted binary cross-entropy.
"""

from __future__ import annotations

import math

import lightning.pytorch as pl
import numpy as np
import pandas as pd
import torch
from sklearn.metrics import roc_auc_score
from torch import nn

from cinescar.dl.network import build_network


def epoch_auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """ROC AUC, or NaN when the images hold only one class (a tiny validation set)."""
    if len(np.unique(labels)) < 2:
        return math.nan
    return float(roc_auc_score(labels, scores))


def patient_auc(labels: np.ndarray, scores: np.ndarray, groups: np.ndarray) -> float:
    """Patient-level AUC: each patient scored by the max over its images (the screening rule); NaN with one class."""
    from cinescar.screening_rule import PATIENT_AGGREGATE

    table = pd.DataFrame({"g": np.asarray(groups), "y": np.asarray(labels), "s": np.asarray(scores)})
    per = table.groupby("g", sort=True).agg(y=("y", "max"), s=("s", PATIENT_AGGREGATE))
    return epoch_auc(per["y"].to_numpy(), per["s"].to_numpy())


def balanced_pos_weight(labels: np.ndarray) -> float:
    """Negatives / positives of the training images (1.0 when a class is missing): balances BCE's two terms."""
    labels = np.asarray(labels)
    n_pos = int((labels > 0.5).sum())
    n_neg = int(len(labels) - n_pos)
    if n_pos == 0 or n_neg == 0:
        return 1.0
    return n_neg / n_pos


class ScarModule(pl.LightningModule):
    """Trains a `ScarNet` with BCE-with-logits and Adam (paper: lr 1e-4, batch 8)."""

    def __init__(
        self,
        network: dict,
        learning_rate: float = 1e-4,
        weight_decay: float = 0.0,
        pos_weight: float | None = None,
        val_groups: np.ndarray | None = None,
    ) -> None:
        super().__init__()
        self.save_hyperparameters(ignore=["val_groups"])
        self.net = build_network(network)
        self.learning_rate = float(learning_rate)
        self.weight_decay = float(weight_decay)
        self.pos_weight = None if pos_weight is None else float(pos_weight)
        # Training loss: positive term weighted by pos_weight; validation loss: plain BCE.
        self.train_loss_fn = nn.BCEWithLogitsLoss(
            pos_weight=None if pos_weight is None else torch.tensor([float(pos_weight)]))
        self.loss_fn = nn.BCEWithLogitsLoss()
        self.val_groups = None if val_groups is None else np.asarray(val_groups)
        self.history: list[dict] = []
        self._train_sums = [0.0, 0.0, 0]  # loss x n, correct, n
        self._val_logits: list[torch.Tensor] = []
        self._val_labels: list[torch.Tensor] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.net.parameters(), lr=self.learning_rate, weight_decay=self.weight_decay)

    def on_train_epoch_start(self) -> None:
        self._train_sums = [0.0, 0.0, 0]
        datamodule = getattr(self.trainer, "datamodule", None)
        if datamodule is not None and hasattr(datamodule, "set_epoch"):
            datamodule.set_epoch(self.current_epoch)

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        x, y = batch
        logits = self.net(x).squeeze(1)
        loss = self.train_loss_fn(logits.float(), y)
        n = y.shape[0]
        self._train_sums[0] += float(loss.detach()) * n
        self._train_sums[1] += float(((logits.detach() > 0).float() == y).sum())
        self._train_sums[2] += n
        self.log("train_loss", loss, on_step=False, on_epoch=True, batch_size=n)
        return loss

    def on_validation_epoch_start(self) -> None:
        self._val_logits, self._val_labels = [], []

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        x, y = batch
        self._val_logits.append(self.net(x).squeeze(1).detach().float().cpu())
        self._val_labels.append(y.detach().float().cpu())

    def on_validation_epoch_end(self) -> None:
        if not self._val_logits or self.trainer.sanity_checking:
            return
        logits = torch.cat(self._val_logits)
        labels = torch.cat(self._val_labels)
        val_loss = float(self.loss_fn(logits, labels))
        val_acc = float(((logits > 0).float() == labels).float().mean())
        val_auc = epoch_auc(labels.numpy(), logits.numpy())
        groups = self.val_groups
        val_patient_auc = (patient_auc(labels.numpy(), logits.numpy(), groups)
                           if groups is not None and len(groups) == len(labels) else math.nan)
        loss_sum, correct, n = self._train_sums
        record = {
            "epoch": int(self.current_epoch),
            "train_loss": loss_sum / n if n else math.nan,
            "train_acc": correct / n if n else math.nan,
            "val_loss": val_loss,
            "val_acc": val_acc,
            "val_auc": val_auc,
            "val_patient_auc": val_patient_auc,
        }
        self.history.append(record)
        # Logged for Lightning's own callbacks (EarlyStopping); no logger is attached, nothing is written.
        self.log_dict({"val_loss": val_loss, "val_acc": val_acc}, prog_bar=False)
