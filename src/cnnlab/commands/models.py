"""cnnlab models."""

from __future__ import annotations

import argparse

HELP = "list the named models and their default training settings, and the pretrained backbones"
EXAMPLES = "  cnnlab models"


def add_arguments(p: argparse.ArgumentParser) -> None:
    pass


def run(args: argparse.Namespace) -> int:
    from ..models import BACKBONES, list_backbones, list_models
    from ..training.options import DEFAULT_BACKBONE, DEFAULT_MODEL

    for e in list_models():
        print(f"{e.name:<18}{'(default) ' if e.name == DEFAULT_MODEL else ''}{e.description}\n{'':<18}"
              f"{_recipe(e.defaults)}")
    print("\npretrained backbones, fine-tuned with --pretrained (docs/photos.md):")
    for e in list_backbones():
        print(f"{e.name:<20}{'(default) ' if e.name == DEFAULT_BACKBONE else ''}{e.description}\n{'':<20}"
              f"ImageNet weights: {BACKBONES[e.name].source}\n{'':<20}{_recipe(e.defaults)}, after "
              "the head alone on cached features")
    return 0


def _recipe(d: dict) -> str:
    return f"{d.get('optimizer')} lr {d.get('lr')}, batch {d.get('batch_size')}, {d.get('epochs')} epochs"
