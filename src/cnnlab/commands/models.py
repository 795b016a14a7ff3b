"""cnnlab models."""

from __future__ import annotations

import argparse

HELP = "list the named models and their default training settings"
EXAMPLES = "  cnnlab models"


def add_arguments(p: argparse.ArgumentParser) -> None:
    pass


def run(args: argparse.Namespace) -> int:
    from ..models import list_models
    from ..training.options import DEFAULT_MODEL

    for e in list_models():
        d = e.defaults
        hp = f"{d.get('optimizer')} lr {d.get('lr')}, batch {d.get('batch_size')}, {d.get('epochs')} epochs"
        print(f"{e.name:<18}{'(default) ' if e.name == DEFAULT_MODEL else ''}{e.description}\n{'':<18}{hp}")
    return 0
