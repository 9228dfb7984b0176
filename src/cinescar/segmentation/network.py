"""The segmentation network: a plain MONAI 2D U-Net (an `nn.Module`, no training logic attached).

Kept plain so that the bundle stores only its `state_dict` and the few hyper-parameters that rebuild it
(`network_params`), loaded with `torch.load(weights_only=True)`: nothing in a bundle runs code when loaded.
"""

from __future__ import annotations

from torch import nn

from cinescar.segmentation.labels import N_CLASSES


def network_params(cfg: dict) -> dict:
    """The hyper-parameters that rebuild the network, from the `segmentation` config section."""
    return {"channels": [int(c) for c in cfg["channels"]], "residual_units": int(cfg["residual_units"]),
            "n_classes": N_CLASSES}


def build_network(params: dict) -> nn.Module:
    from monai.networks.nets import UNet

    channels = tuple(int(c) for c in params["channels"])
    return UNet(spatial_dims=2, in_channels=1, out_channels=int(params["n_classes"]), channels=channels,
                strides=(2,) * (len(channels) - 1), num_res_units=int(params["residual_units"]))


def field_multiple(params: dict) -> int:
    """Field sides must be multiples of this (each level halves the field)."""
    return 2 ** (len(params["channels"]) - 1)
