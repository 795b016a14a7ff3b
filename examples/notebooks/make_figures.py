"""Draw the still figures the notebooks embed in their markdown, for readers on GitHub (which runs no code
and shows no widgets): `python examples/notebooks/make_figures.py` from the repository root."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from cnnlab.viz.figures import save_figure
from cnnlab.viz.teaching import output_size_grid, sliding_kernel_animation

FIGURES = Path(__file__).resolve().parent / "figures"

# the same input and kernel as the animation cell of 000-mnist-notes.ipynb
IMAGE = np.array([[0, 1, 2, 1, 0], [1, 3, 4, 3, 1], [2, 4, 5, 4, 2], [1, 3, 4, 3, 1], [0, 1, 2, 1, 0]])
EDGE = np.array([[1, 0, -1], [1, 0, -1], [1, 0, -1]])


def main() -> None:
    FIGURES.mkdir(exist_ok=True)
    print(sliding_kernel_animation(IMAGE, EDGE, stride=1, padding=1).save_gif(FIGURES / "sliding_kernel.gif"))
    print(save_figure(output_size_grid(n=7, kernel=3), FIGURES / "output_size.png", dpi=72))


if __name__ == "__main__":
    main()
