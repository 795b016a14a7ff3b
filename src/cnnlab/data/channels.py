"""Grey images for a colour model: a pretrained backbone takes RGB, and a folder of grey photos decodes to one
channel. Repeating it is exactly what `cnnlab predict` does to a grey photo (PIL's convert("RGB")), so a
test image gets the same input either way."""

from __future__ import annotations

import torch

from ..errors import UserError
from .dataset import DataSet


def with_channels(x: torch.Tensor, channels: int) -> torch.Tensor:
    """(N, C, H, W) images with `channels` channels: grey (C=1) is repeated; anything else must match."""
    if x.shape[1] == channels:
        return x
    if x.shape[1] == 1:
        return x.expand(-1, channels, -1, -1).contiguous()
    raise UserError(f"the images have {x.shape[1]} channels, the model takes {channels}: use data of the "
                    "kind the model was trained on")


def as_colour(ds: DataSet) -> DataSet:
    """The data set with its train and test images in RGB (grey ones repeated), in place."""
    ds.train.x, ds.test.x = with_channels(ds.train.x, 3), with_channels(ds.test.x, 3)
    return ds
