"""The recipes people start from, written afresh from their descriptions, timed epoch by epoch to an accuracy.

- **Keras 3, "simple MNIST convnet"** (keras-io's example), on Keras's PyTorch backend: Conv 32 k3 ReLU,
  MaxPool 2, Conv 64 k3 ReLU, MaxPool 2, Flatten, Dropout 0.5, Dense softmax; Adam, batch 128, the last
  10% of the training set held out for validation (`validation_split=0.1`). Needs `pip install
  cnnlab[peers]` (keras).
- **pytorch/examples, `mnist/main.py`**: Conv 32 k3, Conv 64 k3, MaxPool 2, Dropout 0.25, FC 9216→128,
  Dropout 0.5, FC 128→10, log-softmax and NLL; Adadelta lr 1.0 with StepLR γ 0.7 each epoch; batch 64,
  test batch 1000; MNIST's Normalize((0.1307,), (0.3081,)); a torchvision DataLoader.
- **The seeds' loop** (seed_loop.py) with a seed model and its notes' optimiser.

Each peer trains one epoch at a time; after each its test accuracy is measured (not timed), until it reaches
the target or its training time passes the cap.
"""

from __future__ import annotations

import importlib.util
import os
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .seed_loop import torchvision_loaders


class PytorchExamples:
    name = "pytorch/examples mnist"

    def __init__(self, root: Path, seed: int):
        self.train_loader, self.test_loader = torchvision_loaders(root, 0.1307, 0.3081, 64, 1000)
        torch.manual_seed(seed)
        self.model = nn.ModuleDict({"conv1": nn.Conv2d(1, 32, 3, 1), "conv2": nn.Conv2d(32, 64, 3, 1),
                                    "fc1": nn.Linear(9216, 128), "fc2": nn.Linear(128, 10)})
        self.drop1, self.drop2 = nn.Dropout(0.25), nn.Dropout(0.5)
        self.optimizer = torch.optim.Adadelta(self.model.parameters(), lr=1.0)
        self.scheduler = torch.optim.lr_scheduler.StepLR(self.optimizer, step_size=1, gamma=0.7)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        m = self.model
        x = F.max_pool2d(F.relu(m["conv2"](F.relu(m["conv1"](x)))), 2)
        x = F.relu(m["fc1"](torch.flatten(self.drop1(x), 1)))
        return F.log_softmax(m["fc2"](self.drop2(x)), dim=1)

    def train_epoch(self) -> float:
        t = time.perf_counter()
        self.model.train()
        self.drop1.train(), self.drop2.train()
        for data, target in self.train_loader:
            self.optimizer.zero_grad()
            loss = F.nll_loss(self.forward(data), target)
            loss.backward()
            self.optimizer.step()
        self.scheduler.step()
        return time.perf_counter() - t

    def test(self) -> float:
        self.model.eval()
        self.drop1.eval(), self.drop2.eval()
        correct = 0
        with torch.no_grad():
            for data, target in self.test_loader:
                correct += (self.forward(data).argmax(1) == target).sum().item()
        return correct / len(self.test_loader.dataset)


class KerasConvnet:
    name = "Keras simple MNIST convnet"

    def __init__(self, x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, y_test: np.ndarray,
                 seed: int):
        """Images (N, 28, 28) uint8 and labels, scaled to [0, 1] as the example does."""
        os.environ["KERAS_BACKEND"] = "torch"  # read once, when keras is first imported
        import keras  # an optional extra: cnnlab[peers]
        from keras import layers

        if keras.backend.backend() != "torch":
            raise RuntimeError(f"keras was imported with the {keras.backend.backend()} backend, not torch")
        keras.utils.set_random_seed(seed)
        self.keras = keras
        self.x_train, self.x_test = (x[..., None].astype("float32") / 255 for x in (x_train, x_test))
        self.y_train, self.y_test = (keras.utils.to_categorical(y, 10) for y in (y_train, y_test))
        self.model = keras.Sequential([
            keras.Input(shape=(28, 28, 1)),
            layers.Conv2D(32, kernel_size=(3, 3), activation="relu"), layers.MaxPooling2D(pool_size=(2, 2)),
            layers.Conv2D(64, kernel_size=(3, 3), activation="relu"), layers.MaxPooling2D(pool_size=(2, 2)),
            layers.Flatten(), layers.Dropout(0.5), layers.Dense(10, activation="softmax")])
        self.model.compile(loss="categorical_crossentropy", optimizer="adam", metrics=["accuracy"])

    def train_epoch(self) -> float:
        t = time.perf_counter()
        self.model.fit(self.x_train, self.y_train, batch_size=128, epochs=1, validation_split=0.1, verbose=0)
        return time.perf_counter() - t

    def test(self) -> float:
        return float(self.model.evaluate(self.x_test, self.y_test, verbose=0)[1])


def keras_available() -> bool:
    return importlib.util.find_spec("keras") is not None


def time_to_target(peer, target: float, cap_seconds: float, log=print) -> dict:
    """Train `peer` epoch by epoch until its test accuracy reaches `target` or its training time passes the
    cap. Seconds are training only (the test passes are not timed)."""
    seconds, history = 0.0, []
    while True:
        seconds += peer.train_epoch()
        acc = peer.test()
        history.append({"epoch": len(history) + 1, "seconds": round(seconds, 2),
                        "test_accuracy": round(acc, 4)})
        log(f"  {peer.name}: epoch {len(history)}, {seconds:.1f} s, test {100 * acc:.2f}%")
        if acc >= target or seconds >= cap_seconds:
            break
    reached = history[-1]["test_accuracy"] >= target
    return {"peer": peer.name, "target": target, "reached": reached,
            "seconds": round(seconds, 2) if reached else None, "cap_seconds": cap_seconds,
            "epochs": len(history), "history": history}
