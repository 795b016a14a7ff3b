"""Augmentation as batched tensor ops on the in-memory set: no per-sample Python (as airbench does).

Each image of a batch gets its own random draw, from a generator seeded by the step: a resumed run and every
DDP rank draw the same augmentations. torchvision.transforms.v2 would apply one draw to a whole batch tensor,
so its per-image parts are done here with batched ops: the crops by torchvision's `roi_align` (one bilinear
crop-and-resize per box, all boxes in one call), the colour jitter as per-image factors broadcast over the
batch, with v2's own grey conversion.
"""

from __future__ import annotations

import math

import torch

# Photo augmentation, as torchvision's RandomResizedCrop (scale, ratio), RandomHorizontalFlip and a mild
# ColorJitter (brightness, contrast, saturation +-20 %, no hue: a hue shift changes what some classes are).
CROP_SCALE = (0.35, 1.0)  # fraction of the image's area a crop keeps (torchvision's default: 0.08-1)
CROP_RATIO = (3 / 4, 4 / 3)
JITTER = 0.2


def flip_mask(n: int, generator: torch.Generator) -> torch.Tensor:
    """(n,) bool: which images of a batch to mirror; drawn on the CPU so a seed gives the same mask
    anywhere."""
    return torch.rand(n, generator=generator, device="cpu") < 0.5


def flip_batch(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Mirror a random half of the images (N, C, H, W) left-right: one batched op."""
    mask = flip_mask(x.shape[0], generator).to(x.device).view(-1, 1, 1, 1)
    return torch.where(mask, x.flip(3), x)


SHIFT = 2  # pixels a "shift" moves an image at most, each way (a 28x28 garment keeps its shape)


def shift_batch(x: torch.Tensor, generator: torch.Generator, mean: list[float], std: list[float],
                most: int = SHIFT) -> torch.Tensor:
    """Move each image (N, C, H, W) by its own random whole-pixel offset, up to `most` each way, filling with
    black (pixel value 0, normalised): one gather, no per-image Python."""
    n, c, h, w = x.shape
    black = torch.tensor([-m / s for m, s in zip(mean, std)], dtype=x.dtype, device=x.device).view(1, c, 1, 1)
    padded = black.expand(n, c, h + 2 * most, w + 2 * most).clone()
    padded[:, :, most:most + h, most:most + w] = x
    dy, dx = (torch.randint(-most, most + 1, (n,), generator=generator).to(x.device) for _ in range(2))
    rows = (torch.arange(h, device=x.device) + most)[None, :] + dy[:, None]  # (N, H)
    cols = (torch.arange(w, device=x.device) + most)[None, :] + dx[:, None]  # (N, W)
    batch = torch.arange(n, device=x.device)[:, None, None, None]
    chans = torch.arange(c, device=x.device)[None, :, None, None]
    return padded[batch, chans, rows[:, None, :, None], cols[:, None, None, :]]


def augment_batch(kind: str, x: torch.Tensor, generator: torch.Generator, mean: list[float],
                  std: list[float]) -> torch.Tensor:
    """A batch of normalised images (N, C, H, W) augmented as `kind` says: "none", "flip", "shift",
    "flip-shift" or "photo"."""
    if kind == "photo":
        return photo_batch(x, generator, mean, std)
    if kind in ("flip", "flip-shift"):
        x = flip_batch(x, generator)
    if kind in ("shift", "flip-shift"):
        x = shift_batch(x, generator, mean, std)
    return x


def crop_boxes(n: int, h: int, w: int, generator: torch.Generator) -> torch.Tensor:
    """(n, 4) boxes x1, y1, x2, y2 in pixels: a random area fraction and aspect ratio each, as
    RandomResizedCrop draws them, clamped to the image, at a random place."""
    area = torch.empty(n).uniform_(*CROP_SCALE, generator=generator) * (h * w)
    log_ratio = torch.empty(n).uniform_(math.log(CROP_RATIO[0]), math.log(CROP_RATIO[1]), generator=generator)
    ratio = log_ratio.exp()
    bw = (area * ratio).sqrt().clamp(1, w)
    bh = (area / ratio).sqrt().clamp(1, h)
    x1 = torch.rand(n, generator=generator) * (w - bw)
    y1 = torch.rand(n, generator=generator) * (h - bh)
    return torch.stack([x1, y1, x1 + bw, y1 + bh], 1)


def photo_batch(x: torch.Tensor, generator: torch.Generator, mean: list[float], std: list[float]
                ) -> torch.Tensor:
    """Random resized crop, flip and mild colour jitter of normalised images (N, C, H, W), per image."""
    from torchvision.ops import roi_align

    n, c, h, w = x.shape
    boxes = crop_boxes(n, h, w, generator)
    flip = flip_mask(n, generator)
    factors = torch.empty(n, 3).uniform_(1 - JITTER, 1 + JITTER, generator=generator)  # bright, contrast, sat
    dev = x.device
    # sampling_ratio=1 samples each output pixel once at its centre: plain bilinear resampling, and a box
    # that is the whole image gives the image back unchanged (aligned=True: pixel centres at +0.5)
    rois = torch.cat([torch.arange(n, dtype=torch.float32)[:, None], boxes], 1).to(dev)
    x = roi_align(x.float().contiguous(), rois, (h, w), spatial_scale=1.0, sampling_ratio=1, aligned=True)
    x = torch.where(flip.to(dev).view(-1, 1, 1, 1), x.flip(3), x)
    m = torch.tensor(mean, device=dev).view(1, -1, 1, 1)
    s = torch.tensor(std, device=dev).view(1, -1, 1, 1)
    px = torch.addcmul(m, x, s)  # back to [0, 1] pixels, where jitter is defined
    b, k, sat = (f.to(dev).view(-1, 1, 1, 1) for f in factors.unbind(1))
    # Brightness (x b) then contrast (blend with the image's mean grey, x k) as one affine map per image:
    # b·k·px + (1 − k)·b·mean. The mean grey is linear in the channels, so it comes from channel means.
    # (ColorJitter clamps after each part; once at the end here: 3 passes over the batch instead of 7.)
    chan = px.mean((2, 3), keepdim=True)  # (N, C, 1, 1)
    mu = _grey(chan) if c == 3 else chan
    px = torch.addcmul((1 - k) * b * mu, px, b * k)
    if c == 3:  # saturation: blend with the pixel's own grey
        px = torch.addcmul((1 - sat) * _grey(px), px, sat)
    return (px.clamp_(0, 1) - m) / s


def _grey(px: torch.Tensor) -> torch.Tensor:
    """(N, 3, H, W) -> (N, 1, H, W) luma, as torchvision.transforms.v2.functional.rgb_to_grayscale."""
    from torchvision.transforms.v2.functional import rgb_to_grayscale

    return rgb_to_grayscale(px)
