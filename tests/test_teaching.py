"""viz/teaching.py: the sliding-kernel figure computes what torch.nn.functional.conv2d computes, and the
output-size figure gives torch's output size."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from cnnlab.viz import teaching


@pytest.mark.parametrize("stride,padding", [(1, 0), (1, 1), (2, 1), (3, 0), (2, 2)])
def test_slide_is_torch_conv2d(stride, padding):
    rng = np.random.default_rng(stride * 10 + padding)
    image, kernel = rng.integers(-3, 4, (7, 6)), rng.integers(-2, 3, (3, 3))
    out, corners = teaching.slide(image, kernel, stride, padding)
    x, w = (torch.tensor(a, dtype=torch.float64)[None, None] for a in (image, kernel))
    ref = F.conv2d(x, w, stride=stride, padding=padding)[0, 0]
    np.testing.assert_array_equal(out, ref.numpy())
    assert len(corners) == out.size and corners[1] == (0, stride)


def test_sliding_kernel_figure_writes_out_the_dot_product():
    image = np.arange(16).reshape(4, 4)
    kernel = np.array([[1, 0], [0, -1]])
    # the second position: rows 0-1, columns 2-3
    fig = teaching.sliding_kernel_figure(image, kernel, stride=2, step=1)
    assert fig._suptitle.get_text().endswith("output[0, 1] = 2·1 + 7·-1 = -5")
    assert len(fig.axes) == 3


def test_animation_has_a_frame_per_position_and_plays_as_html(tmp_path):
    anim = teaching.sliding_kernel_animation(np.ones((4, 4)), np.ones((3, 3)), stride=1, padding=0)
    html = anim._repr_html_()
    assert "<script" in html and html.count("data:image/png;base64") == 4  # 2x2 output positions
    from PIL import Image

    assert Image.open(anim.save_gif(tmp_path / "a.gif")).n_frames == 4


@pytest.mark.parametrize("n,k,s,p", [(7, 3, 1, 0), (7, 3, 3, 0), (7, 3, 2, 1), (28, 5, 1, 2), (5, 3, 2, 0)])
def test_output_size_figure_gives_torchs_size(n, k, s, p):
    fig = teaching.output_size_figure(n, k, s, p)
    size = F.conv2d(torch.zeros(1, 1, n, n), torch.zeros(1, 1, k, k), stride=s, padding=p).shape[-1]
    assert fig.axes[0].get_title().endswith(f"output {size}x{size}")
    assert len(fig.axes[0].lines[0].get_xdata()) == size * size  # a dot where each window starts


def test_explorer_without_ipywidgets_draws_the_static_grid(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "ipywidgets", None)
    fig = teaching.output_size_explorer(7)
    assert len(fig.axes) == 9
