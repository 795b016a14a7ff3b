"""Teaching figures for the notebooks: a kernel sliding over an input with its running dot product, and the
output size as the kernel, stride and padding change.

Each is a still `Figure` (for files and for GitHub, which shows no widgets), an animation (matplotlib's,
played in the notebook as HTML and JavaScript, or saved as a GIF) and, where ipywidgets is installed, sliders.
The arithmetic is `models.shapes.window`, the one the summary prints, and the values are checked against
`torch.nn.functional.conv2d` in tests/test_teaching.py.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.animation import FuncAnimation, PillowWriter
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from ..models.shapes import window
from .display import shown_inline
from .figures import axis_off, new_figure


def slide(image: np.ndarray, kernel: np.ndarray, stride: int = 1, padding: int = 0
          ) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """(the output map, the top-left corner in the padded input of each kernel position, row by row).

    Each output value is the dot product of the kernel and the patch under it (cross-correlation, as
    torch.nn.Conv2d computes it; no bias)."""
    x = np.pad(np.asarray(image, float), padding)
    k = np.asarray(kernel, float)
    (oh, _), (ow, _) = (window(n, kn, stride, padding) for n, kn in zip(image.shape, k.shape))
    if oh < 1 or ow < 1:
        raise ValueError(f"a {k.shape[0]}x{k.shape[1]} kernel does not fit a "
                         f"{image.shape[0]}x{image.shape[1]} input with padding {padding}")
    corners = [(i * stride, j * stride) for i in range(oh) for j in range(ow)]
    out = np.array([(x[r:r + k.shape[0], c:c + k.shape[1]] * k).sum() for r, c in corners]).reshape(oh, ow)
    return out, corners


def _grid(ax, values: np.ndarray, cmap: str, title: str, fmt: str = "{:g}", shade: np.ndarray | None = None,
          lim: float | None = None) -> None:
    """A small matrix drawn as coloured cells with its numbers written in; NaN cells are left white."""
    lim = lim if lim is not None else (float(np.nanmax(np.abs(values))) or 1.0)
    im = ax.imshow(np.ma.masked_invalid(values), cmap=cmap, vmin=-lim if cmap == "RdBu_r" else 0, vmax=lim)
    for (r, c), v in np.ndenumerate(values):
        if not np.isnan(v):
            red, green, blue, _ = im.cmap(im.norm(v))
            dark = 0.3 * red + 0.6 * green + 0.1 * blue < 0.5  # white numbers on dark cells
            ax.text(c, r, fmt.format(v), ha="center", va="center", fontsize=8,
                    color="white" if dark else "black")
    if shade is not None:  # the zero padding, hatched so it reads as "not part of the image"
        for r, c in zip(*np.nonzero(shade)):
            ax.add_patch(Rectangle((c - 0.5, r - 0.5), 1, 1, fill=False, hatch="///", color="0.6", lw=0))
    ax.set_title(title, fontsize=9)
    axis_off(ax)


def _draw_slide(fig: Figure, image, kernel, stride: int, padding: int, step: int | None) -> None:
    out, corners = slide(image, kernel, stride, padding)
    step = len(corners) - 1 if step is None else step
    x = np.pad(np.asarray(image, float), padding)
    k = np.asarray(kernel, float)
    pad_mask = np.pad(np.zeros(np.shape(image), bool), padding, constant_values=True)
    shown = np.full(out.shape, np.nan)
    shown.flat[:step + 1] = out.flat[:step + 1]
    r, c = corners[step]
    patch = x[r:r + k.shape[0], c:c + k.shape[1]]
    fig.clear()
    a, b, d = fig.subplots(1, 3, gridspec_kw={"width_ratios": [x.shape[1], k.shape[1] + 1, out.shape[1] + 1]})
    h, w = np.shape(image)
    _grid(a, x, "Greys", f"input {h}x{w}, padding {padding}", shade=pad_mask)
    a.add_patch(Rectangle((c - 0.5, r - 0.5), k.shape[1], k.shape[0], fill=False, ec="tab:red", lw=2.5))
    _grid(b, k, "RdBu_r", "kernel (weights)")
    _grid(d, shown, "RdBu_r", f"output {out.shape[0]}x{out.shape[1]}", lim=float(np.abs(out).max()) or 1.0)
    oi, oj = divmod(step, out.shape[1])
    d.add_patch(Rectangle((oj - 0.5, oi - 0.5), 1, 1, fill=False, ec="tab:red", lw=2.5))
    terms = " + ".join(f"{p:g}·{w:g}" for p, w in zip(patch.ravel(), k.ravel()) if p != 0 and w != 0)
    fig.suptitle(f"stride {stride}: position {step + 1} of {len(corners)}, output[{oi}, {oj}] = "
                 f"{terms or '0'} = {out[oi, oj]:g}", fontsize=9, wrap=True)


def sliding_kernel_figure(image: np.ndarray, kernel: np.ndarray, stride: int = 1, padding: int = 0,
                          step: int | None = None) -> Figure:
    """The kernel at position `step` (default: the last) over the padded input, the products it sums, and
    the output filled in up to there."""
    fig = new_figure(10, 3.8)
    _draw_slide(fig, image, kernel, stride, padding, step)
    return shown_inline(fig)


class Animation:
    """A matplotlib animation that a notebook plays (HTML and JavaScript, no widget needed)."""

    def __init__(self, anim: FuncAnimation):
        self.anim = anim

    def _repr_html_(self) -> str:
        return self.anim.to_jshtml(default_mode="once")

    def save_gif(self, path: str | Path, fps: int = 2, dpi: int = 72) -> Path:
        """An animated GIF (GitHub shows it in markdown: the fallback where JavaScript does not run)."""
        self.anim.save(path, writer=PillowWriter(fps=fps), dpi=dpi)
        return Path(path)


def sliding_kernel_animation(image: np.ndarray, kernel: np.ndarray, stride: int = 1, padding: int = 0,
                             interval_ms: int = 700) -> Animation:
    """The kernel visiting every position in turn, the output growing one dot product at a time."""
    fig = new_figure(10, 3.8)
    n = len(slide(image, kernel, stride, padding)[1])
    anim = FuncAnimation(fig, lambda s: _draw_slide(fig, image, kernel, stride, padding, s), frames=n,
                         interval=interval_ms, repeat=False)
    return Animation(anim)


def output_size_figure(n: int = 7, kernel: int = 3, stride: int = 1, padding: int = 0, ax=None) -> Figure:
    """Where a k x k kernel lands on an n x n input for this stride and padding, and the output size.

    Each position the kernel's top-left corner visits is a dot; the input columns no window reaches (when
    the stride does not divide evenly: the floor in the formula) are shaded red."""
    out, arithmetic = window(n, kernel, stride, padding)
    fig = ax.figure if ax is not None else new_figure(4.2, 4.6)
    ax = ax if ax is not None else fig.subplots()
    size = n + 2 * padding
    cells = np.zeros((size, size))
    cells[padding:padding + n, padding:padding + n] = 1
    if out >= 1:
        reach = (out - 1) * stride + kernel  # the padded pixels some window covers, along each axis
        cells[reach:, :] = np.where(cells[reach:, :] == 1, 2, cells[reach:, :])
        cells[:, reach:] = np.where(cells[:, reach:] == 1, 2, cells[:, reach:])
    colours = np.array([[0.93, 0.93, 0.93], [0.55, 0.68, 0.85], [0.93, 0.55, 0.55]])
    ax.imshow(colours[cells.astype(int)])
    ax.set_xticks(np.arange(-0.5, size, 1), minor=True)
    ax.set_yticks(np.arange(-0.5, size, 1), minor=True)
    ax.grid(which="minor", color="white", lw=1)
    ax.tick_params(which="both", length=0, labelbottom=False, labelleft=False)
    if out >= 1:
        ys, xs = np.meshgrid(np.arange(out) * stride, np.arange(out) * stride, indexing="ij")
        ax.plot(xs.ravel(), ys.ravel(), "o", color="black", ms=4)
        ax.add_patch(Rectangle((-0.4, -0.4), kernel - 0.2, kernel - 0.2, fill=False, ec="black", lw=2,
                               ls="--", zorder=3))
    ax.set_title(f"k={kernel}, stride={stride}, padding={padding}\n{arithmetic.split(' → ')[1]}"
                 f" → output {out}x{out}", fontsize=9)
    return shown_inline(fig)


def output_size_grid(n: int = 7, kernel: int = 3, strides=(1, 2, 3), paddings=(0, 1, 2)) -> Figure:
    """output_size_figure for every stride (columns) and padding (rows): the static form of the sliders."""
    fig = new_figure(3.2 * len(strides), 3.8 * len(paddings))
    axes = fig.subplots(len(paddings), len(strides), squeeze=False)
    for i, p in enumerate(paddings):
        for j, s in enumerate(strides):
            output_size_figure(n, kernel, s, p, ax=axes[i, j])
    fig.suptitle(f"{n}x{n} input (blue), zero padding (grey), {kernel}x{kernel} kernel (dashed: the first "
                 "window)\ndots: where each window starts; red: pixels no window covers", fontsize=10)
    fig.tight_layout(rect=(0, 0, 1, 0.95))
    return shown_inline(fig)


def output_size_explorer(n: int = 7):
    """Sliders for kernel, stride and padding redrawing `output_size_figure` (ipywidgets); without
    ipywidgets, the static grid."""
    try:
        import ipywidgets as w
        from IPython.display import display
    except ImportError:
        return output_size_grid(n)

    def draw(kernel: int, stride: int, padding: int) -> None:
        display(output_size_figure(n, kernel, stride, padding))

    return w.interactive(draw, kernel=w.IntSlider(3, 1, n, description="kernel"),
                         stride=w.IntSlider(1, 1, 4, description="stride"),
                         padding=w.IntSlider(0, 0, 3, description="padding"))
