"""The model registry: `register_model` fills it (zoo.py holds the named models), `get_entry` and
`create_model` read it, and a spec file's path works wherever a name does.

Every named model is a spec (see `build.py`), so named models, spec files, the summary, the NumPy
engine and saved runs all share one description. The pretrained backbones (pretrained.py) are named too;
their spec is `{"name", "backbone"}`, and `model_from_spec` builds either kind.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from torch import nn

from ..errors import UserError
from .build import build_model, load_spec
from .pretrained import BACKBONES, FINETUNE_DEFAULTS, PretrainedNet
from .shapes import Shape


@dataclass(frozen=True)
class ModelEntry:
    name: str
    description: str
    layers: list
    defaults: dict = field(default_factory=dict)  # training hyper-parameters this model comes with
    input: str | list | None = None  # a spec file's own `input: CxHxW`, if it gives one
    backbone: str | None = None  # a pretrained backbone's name (pretrained.py); then `layers` is empty

    @property
    def spec(self) -> dict:
        if self.backbone:
            return {"name": self.name, "backbone": self.backbone}
        return {"name": self.name, "layers": self.layers}

    def as_spec_file(self) -> dict:
        """The entry as a spec file's contents (name, input, train defaults, layers): read back, the same
        entry."""
        out = {"name": self.name}
        if self.input:
            out["input"] = self.input
        if self.defaults:
            out["train"] = dict(self.defaults)
        return {**out, "layers": self.layers}


_REGISTRY: dict[str, ModelEntry] = {}


def register_model(name: str, description: str, layers: list, input: str | None = None,
                   **defaults) -> ModelEntry:
    """`input` is the shape the model was written for ("3x32x32"), shown by `cnnlab summary` by default."""
    entry = ModelEntry(name, description, layers, defaults, input)
    _REGISTRY[name] = entry
    return entry


def is_registered(name: str) -> bool:
    return name in _REGISTRY or name in BACKBONES


def list_models() -> list[ModelEntry]:
    """The named layer-list models (the backbones are listed by `list_backbones`)."""
    return list(_REGISTRY.values())


def list_backbones() -> list[ModelEntry]:
    return [get_entry(name) for name in BACKBONES]


def get_entry(name_or_path: str) -> ModelEntry:
    """A registered model, or a spec file (.yaml/.yml/.json) read into an entry with no defaults."""
    if name_or_path in _REGISTRY:
        return _REGISTRY[name_or_path]
    if name_or_path in BACKBONES:
        b = BACKBONES[name_or_path]
        return ModelEntry(b.name, b.description, [], dict(FINETUNE_DEFAULTS), f"3x{b.size}x{b.size}", b.name)
    if Path(name_or_path).suffix.lower() in (".yaml", ".yml", ".json") or Path(name_or_path).exists():
        spec = load_spec(name_or_path)
        return ModelEntry(spec["name"], f"spec file {name_or_path}", spec["layers"],
                          dict(spec.get("train") or {}), spec.get("input"))
    raise UserError(f"unknown model {name_or_path!r}: use one of {', '.join([*_REGISTRY, *BACKBONES])} "
                    "or the path of a .yaml/.json spec file")


def create_model(name_or_path: str, input_shape: Shape, num_classes: int) -> nn.Module:
    """Build a registered model, a backbone (random weights) or a spec file for inputs of `input_shape`."""
    return model_from_spec(get_entry(name_or_path).spec, input_shape, num_classes)


def model_from_spec(spec: dict, input_shape: Shape, num_classes: int) -> nn.Module:
    """A `SpecNet` from a layer list, or a `PretrainedNet` (random weights) from `{"backbone": name}`."""
    if spec.get("backbone"):
        return PretrainedNet(spec["backbone"], input_shape, num_classes)
    return build_model(spec, input_shape, num_classes)
