"""The textbook engine: the notes' maths in NumPy, forward and backward, checked against PyTorch.

    layers.py    the layer protocol, containers, activations, Linear, Dropout, BatchNorm
    conv.py      convolution (the notes' formula and im2col) and pooling
    losses.py    softmax and cross-entropy, with δ = y − t
    optim.py     SGD, Adam, AdamW with torch.optim's update rules
    interop.py   from_torch: a torch network as the engine's layers
"""

from .conv import (
    AdaptiveAvgPool2d,
    AvgPool2d,
    Conv2d,
    LPPool2d,
    MaxPool2d,
    output_size,
    true_convolution,
)
from .interop import from_torch
from .layers import BatchNorm2d, Dropout, Flatten, Layer, Linear, ReLU, Residual, Sequential, Sigmoid, Tanh
from .losses import cross_entropy, log_softmax, softmax

__all__ = ["AdaptiveAvgPool2d", "AvgPool2d", "BatchNorm2d", "Conv2d", "Dropout", "Flatten", "LPPool2d",
           "Layer", "Linear", "MaxPool2d", "ReLU", "Residual", "Sequential", "Sigmoid", "Tanh",
           "cross_entropy", "from_torch", "log_softmax", "output_size", "softmax", "true_convolution"]
