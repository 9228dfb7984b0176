"""The paper's CNN as a plain `torch.nn.Module` (Fahmy et al. 2022, Fig. 2).

Seven blocks of convolution ("same" padding) -> ReLU -> 2x2 max-pool turn a 3 x 128 x 128 input
(cine image, myocardium mask, image x mask) into a 1 x 1 map; a dense head 1024 -> dropout -> 256 ->
dropout -> 1 gives one logit for "scar in this image".

Kept free of Lightning on purpose: Grad-CAM (MONAI), DL-feature extraction and the screening command load
it from a plain `state_dict` with `torch.load(weights_only=True)` and nothing else.

Deviations one can switch (config section `dl.network`):
- `base_width`: channels of the first block; the blocks use base_width x (1, 2, 2, 4, 4, 8, 8). The paper's
  64 gives ~13.7 M parameters; our CPU default is small.
- `dense_activation`: the paper's Fig. 2 draws ReLU after the hidden dense layers, the authors' published
  Keras code has none (linear). Default "relu" (the paper); "linear" reproduces the code.
- No batch normalisation and no L1/L2 kernel regularisers (neither is in the paper's text); He initialisation
  (see `reset_parameters`).
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

from cinescar.errors import ConfigError

WIDTH_MULTIPLIERS: tuple[int, ...] = (1, 2, 2, 4, 4, 8, 8)
"""Channel multipliers of the seven conv blocks (reference code: 64, 128, 128, 256, 256, 512, 512)."""

IN_CHANNELS = 3
"""Image, myocardium mask, image x mask."""

N_FEATURES = 256
"""Width of the penultimate dense layer, whose activations are the paper's DL features."""

GRADCAM_LAYER = "blocks.2.conv"
"""Name of the third convolution, the paper's Grad-CAM layer."""


class ScarNet(nn.Module):
    """Seven conv blocks + dense head; `forward` returns logits (B, 1), `embed` the 256 DL features.

    Layer names are stable (`blocks.{i}.conv`, `head.fc1`, ...) because Grad-CAM addresses a layer by name
    and checkpoints are plain state_dicts.
    """

    def __init__(
        self,
        base_width: int = 8,
        kernel_size: int = 5,
        dropout: float = 0.5,
        dense_activation: str = "relu",
        input_size: int = 128,
        dense_units: tuple[int, int] = (1024, N_FEATURES),
    ) -> None:
        super().__init__()
        n_blocks = len(WIDTH_MULTIPLIERS)
        if base_width < 1:
            raise ConfigError(f"dl.network.base_width must be >= 1, got {base_width}")
        if kernel_size < 1 or kernel_size % 2 == 0:
            # An even kernel with padding="same" pads asymmetrically; keep the maps centred.
            raise ConfigError(f"dl.network.kernel_size must be a positive odd number, got {kernel_size}")
        if not 0.0 <= dropout < 1.0:
            raise ConfigError(f"dl.network.dropout must be in [0, 1), got {dropout}")
        if dense_activation not in ("relu", "linear"):
            raise ConfigError(f"dl.network.dense_activation must be 'relu' or 'linear', got {dense_activation!r}")
        if input_size % (2**n_blocks) != 0:
            raise ConfigError(f"input size {input_size} must be a multiple of {2**n_blocks} (seven 2x2 pools)")
        self.hparams_dict = {
            "base_width": int(base_width),
            "kernel_size": int(kernel_size),
            "dropout": float(dropout),
            "dense_activation": dense_activation,
            "input_size": int(input_size),
            "dense_units": [int(u) for u in dense_units],
        }

        blocks = []
        channels = IN_CHANNELS
        for mult in WIDTH_MULTIPLIERS:
            width = base_width * mult
            blocks.append(
                nn.Sequential(
                    OrderedDict(
                        conv=nn.Conv2d(channels, width, kernel_size, padding="same"),
                        relu=nn.ReLU(),  # not in-place: Grad-CAM hooks keep the conv output
                        pool=nn.MaxPool2d(2),
                    )
                )
            )
            channels = width
        self.blocks = nn.Sequential(*blocks)

        side = input_size // 2**n_blocks
        hidden1, hidden2 = dense_units

        def act() -> nn.Module:
            return nn.ReLU() if dense_activation == "relu" else nn.Identity()

        self.head = nn.Sequential(
            OrderedDict(
                flatten=nn.Flatten(),
                fc1=nn.Linear(channels * side * side, hidden1),
                act1=act(),
                drop1=nn.Dropout(dropout),
                fc2=nn.Linear(hidden1, hidden2),
                act2=act(),
                drop2=nn.Dropout(dropout),
                out=nn.Linear(hidden2, 1),
            )
        )
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """He (Kaiming) initialisation of every conv/dense layer, zero biases.

        Why: seven ReLU convolutions without batch normalisation lose the signal under PyTorch's default
        initialisation (narrow nets start "dead", outputting a constant); He initialisation keeps the
        activation scale through the stack. Keras' default (Glorot) sits between the two.
        """
        for module in self.modules():
            if isinstance(module, (nn.Conv2d, nn.Linear)):
                nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
                nn.init.zeros_(module.bias)
        nn.init.xavier_uniform_(self.head.out.weight)  # the logit: no ReLU follows

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """The DL features: activations of the 256-unit layer after its activation, before dropout (B, 256)."""
        h = self.blocks(x)
        h = self.head.flatten(h)
        h = self.head.drop1(self.head.act1(self.head.fc1(h)))
        return self.head.act2(self.head.fc2(h))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logit of scar, shape (B, 1); apply a sigmoid for the probability."""
        return self.head.out(self.head.drop2(self.embed(x)))


def build_network(params: dict) -> ScarNet:
    """Build a ScarNet from a flat dict (config `dl.network` merged with tuned values); unknown keys ignored."""
    keys = ("base_width", "kernel_size", "dropout", "dense_activation", "input_size", "dense_units")
    kwargs = {k: params[k] for k in keys if k in params and params[k] is not None}
    if "dense_units" in kwargs:
        kwargs["dense_units"] = tuple(kwargs["dense_units"])
    return ScarNet(**kwargs)


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters (the paper's network: ~13.7 M at base width 64)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
