"""The seeds' loop, as the MNIST notes (seed 000) write it: torchvision's dataset over IDX files with a
per-sample `ToTensor` + `Normalize`, `DataLoader(batch_size=128, shuffle=True)`, an optimiser step per batch.

`torchvision_root` writes the bench's images in torchvision's raw layout, so this loop and `cnnlab.train`
read the same bytes.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch

from ..models import create_model
from ..training.config import resolve
from ..training.options import TrainConfig
from ..training.recipe import make_optimizer

SEED_BATCH = 128  # every seed notebook's DataLoader batch size


def seed_train(model, train_loader, optimizer, criterion) -> list[str]:
    """Seed 000's `train(1)`: one epoch over the DataLoader, a log line every 10 batches."""
    model.train()
    log = []
    for batch_idx, (data, target) in enumerate(train_loader):
        optimizer.zero_grad()
        output = model(data)
        loss = criterion(output, target)
        loss.backward()
        optimizer.step()
        if batch_idx % 10 == 0:
            log.append(f"Train Epoch: 0 [{batch_idx * len(data)}/{len(train_loader.dataset)}]\t"
                       f"Loss: {loss.item():.6f}")
    return log


def seed_validate(model, test_loader) -> float:
    """Seed 000's `validate()`: accuracy over the test DataLoader."""
    model.eval()
    correct = 0
    with torch.no_grad():
        for data, target in test_loader:
            correct += (model(data).argmax(1) == target).sum().item()
    return correct / len(test_loader.dataset)


def torchvision_loaders(root: Path, mean: float, std: float, batch: int, test_batch: int):
    """(train, test) DataLoaders of torchvision's FashionMNIST (MNIST for digits) at `root`, no download."""
    from torch.utils.data import DataLoader
    from torchvision import datasets, transforms  # heavy: only the bench needs it

    tf = transforms.Compose([transforms.ToTensor(), transforms.Normalize((mean,), (std,))])
    cls = datasets.FashionMNIST if (root / "FashionMNIST").is_dir() else datasets.MNIST
    train_set = cls(str(root), train=True, download=False, transform=tf)
    test_set = cls(str(root), train=False, download=False, transform=tf)
    return (DataLoader(train_set, batch_size=batch, shuffle=True),
            DataLoader(test_set, batch_size=test_batch, shuffle=False))


class SeedLoop:
    """A seed model trained with its notes' own optimiser and constant learning rate, epoch by epoch."""

    def __init__(self, name: str, root: Path, mean: float, std: float, seed: int):
        self.name = f"seeds' loop, {name}"
        self.train_loader, self.test_loader = torchvision_loaders(root, mean, std, SEED_BATCH, SEED_BATCH)
        torch.manual_seed(seed)  # the same initial weights as cnnlab.train(seed=seed)
        self.model = create_model(name, (1, 28, 28), 10)
        self.optimizer = make_optimizer(resolve(TrainConfig(model=name)), self.model.parameters())

    def train_epoch(self) -> float:
        """One epoch; its seconds."""
        t = time.perf_counter()
        seed_train(self.model, self.train_loader, self.optimizer, torch.nn.CrossEntropyLoss())
        return time.perf_counter() - t

    def test(self) -> float:
        return seed_validate(self.model, self.test_loader)

    def data_seconds(self) -> float:
        """The same epoch without the model: what the per-sample data pipeline costs."""
        t = time.perf_counter()
        for _ in self.train_loader:
            pass
        return time.perf_counter() - t


def seed_epoch(name: str, root: Path, mean: float, std: float, seed: int) -> dict:
    """One epoch of the seeds' loop; seconds, the DataLoader's own seconds, and test accuracy."""
    loop = SeedLoop(name, root, mean, std, seed)
    seconds = loop.train_epoch()
    return {"seconds": seconds, "test_accuracy": loop.test(), "data_seconds": loop.data_seconds()}


def _write_idx(path: Path, a: np.ndarray) -> None:
    """IDX: magic 0x0000080N (uint8, N dims), N big-endian uint32 sizes, then the bytes row-major."""
    a = np.ascontiguousarray(a, dtype=np.uint8)
    path.write_bytes(bytes([0, 0, 8, a.ndim]) + np.asarray(a.shape, ">u4").tobytes() + a.tobytes())


def torchvision_root(ds, root: Path, n_train: int, n_test: int) -> Path:
    """Write the first n_train/n_test images in torchvision's raw layout under root; returns the raw folder.

    torchvision's FashionMNIST (MNIST for digits) reads uncompressed IDX files from ROOT/FashionMNIST/raw
    and downloads nothing when they are there; cnnlab.train reads the same folder, so both loops see the
    same bytes (and cnnlab tells clothes from digits by that folder name, as for any IDX folder).
    """
    raw = root / ("MNIST" if ds.style == "mnist" else "FashionMNIST") / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for part, split, n in (("train", ds.train, n_train), ("t10k", ds.test, n_test)):
        _write_idx(raw / f"{part}-images-idx3-ubyte", split.x[:n, 0].numpy())
        _write_idx(raw / f"{part}-labels-idx1-ubyte", split.y[:n].numpy())
    return raw
