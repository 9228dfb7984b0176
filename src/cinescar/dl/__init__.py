"""Deep-learning stage (paper Methods, "Deep learning analysis").

Modules, one job each:

- `network`  -- the plain `nn.Module` (7 conv blocks + dense head); no Lightning, so Grad-CAM, feature
  extraction and the screening command can load it with nothing but torch.
- `data`     -- 3-channel inputs (image, mask, image x mask), MONAI augmentation, Dataset/DataModule.
- `module`   -- the `LightningModule` (loss, optimiser, per-epoch metrics).
- `train`    -- one training job per fold: best checkpoint, predictions, 256 DL features, Grad-CAM.
- `tune`     -- Optuna (TPE + Hyperband) on the development folds' validation images only.
- `features` -- batched inference: probabilities and penultimate activations.
- `gradcam`  -- Grad-CAM heat maps on the third convolution (MONAI) rendered over the cine image.

Submodules are imported lazily by their users: importing Lightning alone costs ~3 s.
"""
