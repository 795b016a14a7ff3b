"""From PyTorch to the NumPy engine: `from_torch(module)` builds the engine's copy of a network, weights
included. Layer names are the vocabulary's (models/layers.py); the engine implements a subset of them,
and tests/test_numpy_engine.py checks that every name here is in the vocabulary.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import UserError
from .conv import AdaptiveAvgPool2d, AvgPool2d, Conv2d, LPPool2d, MaxPool2d
from .layers import BatchNorm2d, Dropout, Flatten, Layer, Linear, ReLU, Residual, Sequential, Sigmoid, Tanh

# torch options the engine leaves out, with the value it requires (checked on every converted module)
_REQUIRED = {"groups": 1, "padding_mode": "zeros", "ceil_mode": False, "return_indices": False,
             "count_include_pad": True, "divisor_override": None, "affine": True,
             "track_running_stats": True}

# vocabulary name -> engine layer built from that torch module's arguments (the layers the engine has)
_FROM_TORCH = {
    "Conv2d": lambda m, dt: Conv2d(m.in_channels, m.out_channels, m.kernel_size, m.stride, m.padding,
                                   m.dilation, m.bias is not None, dtype=dt),
    "Linear": lambda m, dt: Linear(m.in_features, m.out_features, m.bias is not None, dtype=dt),
    "MaxPool2d": lambda m, dt: MaxPool2d(m.kernel_size, m.stride, m.padding, m.dilation),
    "AvgPool2d": lambda m, dt: AvgPool2d(m.kernel_size, m.stride, m.padding),
    "LPPool2d": lambda m, dt: LPPool2d(m.norm_type, m.kernel_size, m.stride),
    "AdaptiveAvgPool2d": lambda m, dt: AdaptiveAvgPool2d(m.output_size),
    "BatchNorm2d": lambda m, dt: BatchNorm2d(m.num_features, m.eps, m.momentum, dtype=dt),
    "Dropout": lambda m, dt: Dropout(m.p),
    "Flatten": lambda m, dt: Flatten(m.start_dim, m.end_dim),
    "ReLU": lambda m, dt: ReLU(),
    "Tanh": lambda m, dt: Tanh(),
    "Sigmoid": lambda m, dt: Sigmoid(),
}


def _convert(m: Any, dtype: Any) -> Layer:
    # the nearest torch class we know, so subclasses (a Sequential that remembers its spec) convert too
    name = next((c.__name__ for c in type(m).__mro__ if c.__name__ in {*_FROM_TORCH, "Sequential"}),
                type(m).__name__)
    if name == "Sequential":  # keep the children's names: they are the state_dict keys
        layer: Layer = Sequential({k: _convert(c, dtype) for k, c in m.named_children()})
    elif hasattr(m, "body") and hasattr(m, "proj"):  # cnnlab's residual block: body(x) + (proj(x) or x)
        layer = Residual(_convert(m.body, dtype), _convert(m.proj, dtype) if m.proj is not None else None)
    elif name in _FROM_TORCH:
        for attr, needed in _REQUIRED.items():
            if getattr(m, attr, needed) != needed:
                raise UserError(f"the NumPy engine supports {name} only with {attr}={needed!r}, "
                                f"not {getattr(m, attr)!r}; change the model or train it with PyTorch")
        layer = _FROM_TORCH[name](m, dtype)
    else:
        raise UserError(f"the NumPy engine has no {name}; it knows Sequential, a residual block "
                        f"(body/proj) and {', '.join(_FROM_TORCH)}")
    layer.train(m.training)
    return layer


def from_torch(module: Any, dtype: Any = None, rng: np.random.Generator | None = None) -> Layer:
    """The engine's copy of a torch module (an nn.Sequential gives a Sequential), weights included.

    dtype: the NumPy dtype of params and buffers; default the module's own (float32 unless .double()).
    rng: the generator every Dropout draws its masks from, for reproducible training.
    """
    state = module.state_dict()
    if dtype is None:
        floats = [v for v in state.values() if v.is_floating_point()]
        dtype = floats[0].numpy().dtype if floats else np.float32
    net = _convert(module, dtype)
    net.load_state_dict(state)
    for _, layer in net.walk():
        if isinstance(layer, Dropout) and rng is not None:
            layer.rng = rng
    return net
