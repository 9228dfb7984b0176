"""Selection on a metric that ranks, the balanced loss, early stopping, the seeds average, the fold spread."""

from __future__ import annotations

import math

import numpy as np
import optuna
import pandas as pd
import pytest
import torch

from cinescar.errors import CinescarError

# A fold with 72 % negative images, like the default run's validation images.
LABELS = np.array([0] * 18 + [1] * 7, dtype=np.float32)


def record(epoch: int, scores: np.ndarray, labels: np.ndarray = LABELS) -> dict:
    """An epoch's validation record computed the way ScarModule computes it (logits -> metrics)."""
    from cinescar.dl.module import epoch_auc

    logits = torch.as_tensor(scores, dtype=torch.float32)
    y = torch.as_tensor(labels)
    return {"epoch": epoch,
            "val_loss": float(torch.nn.functional.binary_cross_entropy_with_logits(logits, y)),
            "val_acc": float(((logits > 0).float() == y).float().mean()),
            "val_auc": epoch_auc(labels, scores)}


def constant_and_learner() -> tuple[dict, dict]:
    """A network that calls every image 'no scar' and one that ranks scar images higher but misclassifies some."""
    constant = record(0, np.full(len(LABELS), -1.0))
    rng = np.random.default_rng(0)
    ranking = LABELS * 1.5 + rng.normal(0, 0.6, len(LABELS)) + 0.3  # positive logits for most images
    learner = record(1, ranking)
    # the premise of the issue: the constant wins on accuracy at 0.5
    assert constant["val_acc"] == pytest.approx(18 / 25) and constant["val_acc"] > learner["val_acc"]
    return constant, learner


def test_constant_predictor_cannot_win_a_checkpoint():
    from cinescar.dl.train import DEFAULT_SELECTION_METRIC, better

    constant, learner = constant_and_learner()
    assert DEFAULT_SELECTION_METRIC != "val_acc"
    assert constant["val_auc"] == 0.5 and learner["val_auc"] > 0.8
    assert better(learner, constant) and not better(constant, learner)
    # accuracy stays available and still prefers the constant (the reason it is not the default)
    assert better(constant, learner, "val_acc")


def test_selection_ties_and_undefined_values():
    from cinescar.dl.train import better, check_metric

    a = {"epoch": 0, "val_auc": 0.8, "val_loss": 0.6, "val_acc": 0.7}
    assert better({"epoch": 1, "val_auc": 0.8, "val_loss": 0.5, "val_acc": 0.7}, a)  # tie -> lower loss
    assert not better({"epoch": 1, "val_auc": 0.8, "val_loss": 0.6, "val_acc": 0.7}, a)  # full tie -> earlier
    assert better({"epoch": 1, "val_auc": 0.7, "val_loss": 0.4, "val_acc": 0.7}, a, "val_loss")
    nan = {"epoch": 1, "val_auc": math.nan, "val_loss": 0.1, "val_acc": 0.9}
    assert not better(nan, a) and better(a, nan)  # an undefined AUC ranks last
    with pytest.raises(CinescarError, match="selection_metric"):
        check_metric("accuracy")


def test_constant_predictor_cannot_win_a_tuning_trial(monkeypatch):
    """Two trials: one whose network stays constant, one that ranks; the tuner must choose the second."""
    import cinescar.dl.tune as tune_mod
    from cinescar.dl.train import FitResult

    constant, learner = constant_and_learner()

    def fake_fit(train, val, params, training, augmentation, seed, callbacks=(), **kw):
        assert training["selection_metric"] == "val_auc"  # the tuned metric also picks the trial's epoch
        rec = dict(learner if params["base_width"] == 4 else constant, epoch=0)
        return FitResult(net=None, history=[rec], best=rec, network_params={})

    monkeypatch.setattr(tune_mod, "fit_network", fake_fit)
    arrays = (np.zeros((4, 8, 8)), np.zeros((4, 8, 8)), np.array([0, 1, 0, 1.0]))
    dl_cfg = {"network": {"base_width": 2}, "training": {}, "tuning": {
        "n_trials": 6, "max_epochs": 1, "metric": "val_auc",
        "search_space": {"base_width": {"choices": [2, 4]}}}}
    result = tune_mod.tune(arrays, arrays, dl_cfg, seed=0)
    assert result["metric"] == "val_auc" and result["params"]["base_width"] == 4
    values = {t["params"]["base_width"]: t["value"] for t in result["trials"]}
    assert values[4] > values[2] == 0.5
    assert result["n_pruned"] == 0 and result["n_complete"] == 6


def test_hyperband_prunes_and_records_pruned_trials(monkeypatch):
    """Paper-like settings (many trials, many epochs): Hyperband stops poor trials early; they are recorded."""
    import cinescar.dl.tune as tune_mod
    from cinescar.dl.train import FitResult

    def fake_fit(train, val, params, training, augmentation, seed, callbacks=(), **kw):
        pruning = next(c for c in callbacks if isinstance(c, tune_mod._Pruning))
        history = []

        class Trainer:
            should_stop = False

        class Module:
            pass

        trainer, module = Trainer(), Module()
        module.history = history
        for epoch in range(training["max_epochs"]):
            # the curve rises towards a ceiling set by the learning rate: trials differ, later epochs are better
            value = params["learning_rate"] * 1e3 * (1 - 0.5 ** (epoch + 1))
            history.append({"epoch": epoch, "val_auc": value, "val_loss": 1 - value, "val_acc": 0.5})
            pruning.on_train_epoch_end(trainer, module)
            if trainer.should_stop:
                break
        best = max(history, key=lambda r: r["val_auc"])
        return FitResult(net=None, history=history, best=best, network_params={})

    monkeypatch.setattr(tune_mod, "fit_network", fake_fit)
    arrays = (np.zeros((4, 8, 8)), np.zeros((4, 8, 8)), np.array([0, 1, 0, 1.0]))
    dl_cfg = {"network": {}, "training": {}, "tuning": {
        "n_trials": 30, "max_epochs": 27, "metric": "val_auc", "reduction_factor": 3,
        "search_space": {"learning_rate": {"low": 1e-4, "high": 1e-3, "log": True}}}}
    result = tune_mod.tune(arrays, arrays, dl_cfg, seed=0)
    pruned = [t for t in result["trials"] if t["state"] == "PRUNED"]
    assert result["n_pruned"] == len(pruned) > 0
    assert all(t["epochs"] < 27 for t in pruned)
    values = [t["value"] for t in result["trials"] if t["state"] == "COMPLETE"]
    assert len(set(values)) == len(values)  # trials are told apart


def test_balanced_loss():
    from cinescar.dl.module import ScarModule, balanced_pos_weight
    from cinescar.dl.train import resolve_pos_weight

    labels = np.array([0] * 30 + [1] * 10)
    assert balanced_pos_weight(labels) == 3.0
    assert balanced_pos_weight(np.zeros(5)) == 1.0
    assert resolve_pos_weight("balanced", labels) == 3.0
    assert resolve_pos_weight(None, labels) is None and resolve_pos_weight("none", labels) is None
    assert resolve_pos_weight(2, labels) == 2.0
    with pytest.raises(CinescarError):
        resolve_pos_weight("heavy", labels)
    # the weighted loss: both classes contribute equally in total when the weight is the class ratio
    module = ScarModule({"base_width": 2}, pos_weight=3.0)
    logits = torch.zeros(40)
    y = torch.as_tensor(labels, dtype=torch.float32)
    per_image = torch.nn.functional.binary_cross_entropy_with_logits(logits, y, reduction="none")
    weighted = float(module.train_loss_fn(logits, y)) * 40
    pos_term = 3.0 * float(per_image[y == 1].sum())
    assert weighted == pytest.approx(float(per_image[y == 0].sum()) + pos_term, rel=1e-5)
    assert pos_term == pytest.approx(float(per_image[y == 0].sum()), rel=1e-5)
    assert float(module.loss_fn(logits, y)) == pytest.approx(math.log(2), rel=1e-5)  # validation: unweighted


def test_patient_auc_uses_the_max_rule():
    from cinescar.dl.module import patient_auc

    labels = np.array([0, 0, 1, 1, 0, 0])
    scores = np.array([0.1, 0.9, 0.2, 0.8, 0.3, 0.4])
    groups = np.array(["a", "a", "b", "b", "c", "c"])
    # patient maxima: a 0.9 (neg), b 0.8 (pos), c 0.4 (neg) -> the positive beats one negative of two
    assert patient_auc(labels, scores, groups) == 0.5
    assert math.isnan(patient_auc(np.zeros(4), scores[:4], groups[:4]))


def blobs(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    images = rng.normal(0.3, 0.05, (n, 256, 256)).astype(np.float32)
    masks = np.zeros((n, 256, 256), np.float32)
    masks[:, 100:156, 100:156] = 1
    labels = (np.arange(n) % 2).astype(np.float32)
    images[labels == 1, 110:130, 110:150] += 0.5
    return images, masks, labels


def test_early_stopping_and_curve():
    from cinescar.dl.train import BestWeights, fit_network

    class Trainer:
        should_stop = False

    class Module:
        history: list

    # unit: patience counts epochs without a better selection metric
    cb, trainer, module = BestWeights("val_auc", patience=2), Trainer(), Module()
    module.net = torch.nn.Linear(1, 1)
    module.history = []
    for epoch, auc in enumerate([0.6, 0.7, 0.7, 0.65, 0.9]):
        module.history.append({"epoch": epoch, "val_auc": auc, "val_loss": 1.0 - epoch * 0.1, "val_acc": 0.5})
        cb.on_train_epoch_end(trainer, module)
        if trainer.should_stop:
            break
    assert cb.stopped_epoch == 3 and cb.best["epoch"] == 2  # ties broken by the lower loss, but no patience reset
    assert [r["selection"] for r in module.history] == [0.6, 0.7, 0.7, 0.65]

    # end to end: a run that stops early records fewer epochs than max_epochs and keeps its best epoch
    train, val = blobs(8, 1), blobs(6, 2)
    res = fit_network(train, val, {"base_width": 2, "learning_rate": 1e-3},
                      {"max_epochs": 6, "batch_size": 4, "early_stopping_patience": 1}, {"enabled": False}, seed=3)
    assert res.selection_metric == "val_auc" and res.pos_weight == 1.0
    assert len(res.history) <= 6 and res.best["epoch"] <= len(res.history) - 1
    if res.stopped_epoch is not None:
        assert res.stopped_epoch == len(res.history) - 1
        sel = [r["selection"] for r in res.history]
        first_best = sel.index(max(sel))
        assert res.stopped_epoch - first_best >= 1 and sel[res.best["epoch"]] == max(sel)
    assert all("selection" in r for r in res.history)


def test_fold_spread_table():
    from cinescar.dl.train import fold_spread

    rows = []
    for fold in (0, 1):
        for pid, lge, prob in (("a", 0, 0.2), ("b", 1, 0.7 if fold == 0 else 0.1), ("c", 0, 0.3), ("d", 1, 0.9)):
            for split in ("val", "test"):
                pid2 = f"{pid}{fold}" if split == "val" else pid
                rows.append({"image_id": f"{pid2}_{split}", "patient_id": pid2, "fold": fold, "split": split,
                             "dev_selected": True, "lge": lge, "prob": prob})
    spread = fold_spread(pd.DataFrame(rows)).set_index(["fold", "split"])
    assert spread.loc[("0", "val"), "patient_auc"] == 1.0 and spread.loc[("1", "val"), "patient_auc"] == 0.5
    assert spread.loc[("mean", "val"), "patient_auc"] == 0.75
    assert spread.loc[("sd", "val"), "patient_auc"] == pytest.approx(np.std([1.0, 0.5], ddof=1))
    assert spread.loc[("pooled", "val"), "n_patients"] == 8
