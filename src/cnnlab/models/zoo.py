"""The named models: the lecture notes' networks and cnnlab's own, each a layer list.

The notes cnnlab grew from are numbered 000 (MNIST in PyTorch), 001 (the maths of CNNs, with CIFAR-10)
and 002 (slides on Conv2d, pooling and LeNet-5); each model says which one it comes from. Channel and
feature counts are inferred from the data, so `simple-cnn` also trains on 1x28x28 and `lenet5` on 3x32x32.
"""

from __future__ import annotations

from .registry import register_model

# The MNIST notes (000), `MNISTClassifier`: relu(maxpool(conv)) twice, then Linear(320 -> 10) -- the 320 that
# the notes "figured out from the error" is inferred here.
register_model(
    "mnist-classifier",
    "MNIST notes (000): Conv 1→10 k5, MaxPool 2, ReLU, Conv 10→20 k5, MaxPool 2, ReLU, Linear 320→10",
    [{"Conv2d": {"out_channels": 10, "kernel_size": 5}}, {"MaxPool2d": 2}, "ReLU",
     {"Conv2d": {"out_channels": 20, "kernel_size": 5}}, {"MaxPool2d": 2}, "ReLU",
     "Flatten", "Linear"],
    optimizer="sgd", lr=0.01, momentum=0.5, batch_size=128, epochs=1, schedule="constant",
)

# The maths notes (001), `SimpleCNN` for CIFAR-10. The notes train with batch 4 (12,500 steps an epoch); the
# default here is batch 32 with the learning rate scaled by the same factor of 8 (linear scaling rule), which
# reaches the notes' accuracy in a fraction of the time.
register_model(
    "simple-cnn", "maths notes (001): Conv 3→16 k3 s1 p1, ReLU, MaxPool 2, Linear 16·16·16→10 (CIFAR-10)",
    [{"Conv2d": {"out_channels": 16, "kernel_size": 3, "stride": 1, "padding": 1}}, "ReLU",
     {"MaxPool2d": {"kernel_size": 2, "stride": 2}}, "Flatten", "Linear"],
    input="3x32x32", optimizer="sgd", lr=0.008, momentum=0.9, batch_size=32, epochs=5, schedule="constant",
)

# The slides (002), `CNNModel`: (n,1,28,28) → conv (n,16,26,26) → pool (n,16,13,13) → conv (n,32,11,11)
# → pool (n,32,5,5) → flatten (n,800) → Linear (n,10).
register_model(
    "cnn-model", "slides (002): Conv 1→16 k3, ReLU, MaxPool 2, Conv 16→32 k3, ReLU, MaxPool 2, Linear 800→10",
    [{"Conv2d": {"out_channels": 16, "kernel_size": 3, "stride": 1, "padding": 0}}, "ReLU", {"MaxPool2d": 2},
     {"Conv2d": {"out_channels": 32, "kernel_size": 3, "stride": 1, "padding": 0}}, "ReLU", {"MaxPool2d": 2},
     "Flatten", "Linear"],
    optimizer="sgd", lr=0.001, momentum=0.0, batch_size=100, epochs=5, schedule="constant",
)

# The slides' (002) exercise, LeNet-5 (LeCun et al. 1998): tanh and average pooling. The notes give layer 7
# as "84 → 120"; that is a typo for 84 → number of classes (10), which is what is built here.
register_model(
    "lenet5", "slides (002), exercise: LeNet-5, Conv 6 k5 p2, AvgPool 2, Conv 16 k5, AvgPool 2, Conv 120 k5, "
    "FC 120→84→10, tanh, Adam",
    [{"Conv2d": {"out_channels": 6, "kernel_size": 5, "padding": 2}}, "Tanh", {"AvgPool2d": 2},
     {"Conv2d": {"out_channels": 16, "kernel_size": 5}}, "Tanh", {"AvgPool2d": 2},
     {"Conv2d": {"out_channels": 120, "kernel_size": 5}}, "Tanh",
     "Flatten", {"Linear": 84}, "Tanh", "Linear"],
    optimizer="adam", lr=0.001, batch_size=128, epochs=5, schedule="constant",
)

# The MNIST notes' (000) exercise, "implement more CNN layers": three conv blocks with batch norm.
register_model(
    "deeper-cnn", "MNIST notes (000), exercise: 3 conv blocks (32-64-128) with BatchNorm, Dropout, Linear",
    [{"Conv2d": {"out_channels": 32, "kernel_size": 3, "padding": 1}}, {"BatchNorm2d": None}, "ReLU",
     {"MaxPool2d": 2},
     {"Conv2d": {"out_channels": 64, "kernel_size": 3, "padding": 1}}, {"BatchNorm2d": None}, "ReLU",
     {"MaxPool2d": 2},
     {"Conv2d": {"out_channels": 128, "kernel_size": 3, "padding": 1}}, {"BatchNorm2d": None}, "ReLU",
     {"AdaptiveAvgPool2d": 1}, "Flatten", {"Dropout": 0.2}, "Linear"],
    optimizer="adamw", lr=0.003, weight_decay=5e-4, batch_size=128, epochs=6, schedule="onecycle",
    label_smoothing=0.1, augment="auto",
)

# Ours, the default, chosen by time to accuracy on 2 vCPUs (docs/benchmarks.md, benchmarks/recipes.py):
# two conv stages (16, 48 channels) with pooling before BatchNorm and ReLU (max commutes with both
# while BN's scale is positive, and 4x fewer values go through them), then a 256-unit hidden layer on the
# flattened 7x7 map, since where a feature sits matters in centred images. 1x28x28: 7x7x48 = 2352 -> 256
# -> 10, 2.1 M multiply-adds per image.
# BatchNorm lets the one-cycle schedule use a high peak learning rate.
register_model(
    "fastcnn",
    "cnnlab's default: 2 conv blocks (16-48, pool-BN-ReLU) + 256-unit head, tuned for time-to-accuracy",
    [{"Conv2d": {"out_channels": 16, "kernel_size": 3, "padding": 1, "bias": False}}, {"MaxPool2d": 2},
     {"BatchNorm2d": None}, "ReLU",
     {"Conv2d": {"out_channels": 48, "kernel_size": 3, "padding": 1, "bias": False}}, {"MaxPool2d": 2},
     {"BatchNorm2d": None}, "ReLU",
     "Flatten", {"Linear": 256}, "ReLU", {"Dropout": 0.2}, "Linear"],
    optimizer="adamw", lr=0.008, weight_decay=5e-4, batch_size=256, epochs=20, schedule="onecycle",
    label_smoothing=0.1, augment="auto",
)

# The default for budgets under a minute (training/options.py SHORT_BUDGET_SECONDS): a stride-2 first conv
# (no 28x28 map, no first pool) and 16-32 channels, half fastcnn's step time, so a 20 s budget gets about
# 2.5 epochs instead of 1.5. More epochs win short budgets; fastcnn's wider second stage wins long ones
# (docs/benchmarks.md, "Choosing the model for the budget").
register_model(
    "fastcnn-small",
    "cnnlab's default for budgets under 45 s: stride-2 conv 16, conv 32, pool + 128-unit head; half the step",
    [{"Conv2d": {"out_channels": 16, "kernel_size": 3, "stride": 2, "padding": 1, "bias": False}},
     {"BatchNorm2d": None}, "ReLU",
     {"Conv2d": {"out_channels": 32, "kernel_size": 3, "padding": 1, "bias": False}}, {"MaxPool2d": 2},
     {"BatchNorm2d": None}, "ReLU",
     "Flatten", {"Linear": 128}, "ReLU", {"Dropout": 0.2}, "Linear"],
    optimizer="adamw", lr=0.008, weight_decay=5e-4, batch_size=256, epochs=20, schedule="onecycle",
    label_smoothing=0.1, augment="auto",
)
