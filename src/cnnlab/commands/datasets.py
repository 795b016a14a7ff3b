"""cnnlab datasets."""

from __future__ import annotations

import argparse

HELP = "list the known data sets and whether each is present on this machine"
EXAMPLES = "  cnnlab datasets\n  CNNLAB_DATA=~/data cnnlab datasets"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data-dir", help="also look here first (like --data-dir of train)")


def run(args: argparse.Namespace) -> int:
    from ..data import known_datasets

    for d in known_datasets(args.data_dir):
        state = (f"present: {d.get('path')}" if d.get("present")
                 else f"missing: {d.get('how') or d.get('path')}")
        print(f"{d['name']:<15}{d.get('description', '')}\n{'':<15}{state}")
    return 0
