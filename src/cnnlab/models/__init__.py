"""Models: the layer vocabulary, specs checked and built, shape arithmetic, the summary, the registry of
named models, saved weights and scoring a classifier.

    layers.py    the one table of layer types          check.py    pass 1: a spec as written
    shapes.py    what each layer does to the shape      build.py    pass 2: shapes, then the nn.Module
    summary.py   the per-layer table                    registry.py / zoo.py   named models
    weights.py   safetensors + ModelMeta                evaluate.py logits, accuracy, confusion matrix
    tta.py       test-time augmentation: what a prediction is (one pass, or averaged with the mirror image)
    pretrained.py  ImageNet backbones and their weights parts.py   which layers the pictures show
"""

from . import zoo  # noqa: F401 -- fills the registry with the named models
from .build import Residual, SpecNet, build_model, channels_last, layers_of, load_spec, spec_classes
from .check import TRAIN_DEFAULTS, parse_shape
from .parts import cam_layer, filter_layers, map_layers
from .pretrained import BACKBONES, PretrainedNet, imagenet_body_state, is_backbone
from .registry import (
    ModelEntry,
    create_model,
    get_entry,
    is_registered,
    list_backbones,
    list_models,
    model_from_spec,
    register_model,
)
from .shapes import LayerInfo, Shape, fmt_shape
from .summary import format_summary, totals
from .tta import TTA_KINDS, FlipAverage, predictor
from .weights import ModelMeta, load_weights, read_meta, save_weights

__all__ = ["BACKBONES", "TRAIN_DEFAULTS", "TTA_KINDS", "FlipAverage", "LayerInfo", "ModelEntry", "ModelMeta",
           "PretrainedNet", "Residual", "Shape", "SpecNet", "build_model", "cam_layer", "channels_last",
           "create_model", "filter_layers", "fmt_shape", "format_summary", "get_entry", "imagenet_body_state",
           "is_backbone", "is_registered", "layers_of", "list_backbones", "list_models", "load_spec",
           "load_weights", "map_layers", "model_from_spec", "parse_shape", "predictor", "read_meta",
           "register_model", "save_weights", "spec_classes", "totals"]
