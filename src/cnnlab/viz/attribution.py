"""What the model looks at: saliency (|∂ score / ∂ pixel|) and Grad-CAM on the last spatial conv layer,
computed by captum."""

from __future__ import annotations

import numpy as np
import torch
from matplotlib.figure import Figure
from torch import nn

from ..models import LayerInfo, cam_layer, fmt_shape
from .figures import axis_off, new_figure, show_image


def gradcam_layer(model: nn.Module) -> tuple[LayerInfo, nn.Module]:
    """Where Grad-CAM looks: the last conv layer with a spatial map, or a backbone's last stage."""
    return cam_layer(model)


def attributions(model: nn.Module, x: torch.Tensor, target: int) -> dict[str, np.ndarray]:
    """Saliency |d score / d pixel| (max over channels) and Grad-CAM upsampled to the input, both (H, W)."""
    from captum.attr import LayerAttribution, LayerGradCam, Saliency

    model.eval()
    inp = x[None].clone().requires_grad_(True)
    sal = Saliency(model).attribute(inp, target=target, abs=True)[0].amax(0)
    _, layer = gradcam_layer(model)
    cam = LayerGradCam(model, layer).attribute(inp, target=target, relu_attributions=True)
    cam = LayerAttribution.interpolate(cam, tuple(x.shape[1:]), interpolate_mode="bilinear")[0, 0]
    return {"saliency": sal.detach().cpu().numpy(), "gradcam": cam.detach().cpu().numpy()}


def attribution_figure(model: nn.Module, x: torch.Tensor, pixels: np.ndarray, classes: list[str],
                       true: int | None, caption: str) -> Figure:
    """Rows: the predicted class and the true one (or the runner-up when the truth is unknown)."""
    with torch.no_grad():
        prob = torch.softmax(model.eval()(x[None]), 1)[0]
    order = prob.argsort(descending=True).tolist()
    pred = order[0]
    targets = [(pred, "predicted")]
    if true is None:
        targets.append((order[1], "runner-up"))
    elif true != pred:
        targets.append((true, "true"))
    info, _ = gradcam_layer(model)
    fig = new_figure(9.5, 3.3 * len(targets) + 0.6)
    axes = fig.subplots(len(targets), 3, squeeze=False)
    grey = pixels.mean(0)
    for r, (t, why) in enumerate(targets):
        maps = attributions(model, x, t)
        name = f"{why} class '{classes[t]}' (p = {prob[t]:.2f})"
        show_image(axes[r, 0], pixels)
        axes[r, 0].set_title(caption if r == 0 else "", fontsize=8)
        axes[r, 0].set_ylabel(name, fontsize=9)
        panels = [("saliency", "hot", "saliency: |∂ score / ∂ pixel|"),
                  ("gradcam", "jet", f"Grad-CAM at {info.name} ({fmt_shape(info.out_shape)}), upsampled")]
        for c, (key, cmap, what) in enumerate(panels):
            m = maps[key]
            m = m / m.max() if m.max() > 0 else m
            ax = axes[r, c + 1]
            ax.imshow(grey, cmap="gray", vmin=0, vmax=1)
            im = ax.imshow(m, cmap=cmap, alpha=0.55, vmin=0, vmax=1)
            ax.set_title(f"{what}\nfor '{classes[t]}'", fontsize=8)
            axis_off(ax)
            fig.colorbar(im, ax=ax, fraction=0.046, pad=0.03, label="relative importance")
    if true is not None and true == pred:
        fig.text(0.5, 0.005, "the prediction is correct: predicted = true class", ha="center", fontsize=9)
    fig.suptitle("What the model looks at (bright = raises that class's score most)", fontsize=11)
    fig.tight_layout()
    return fig
