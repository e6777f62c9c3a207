"""Figures: IPF-Z orientation maps with their colour key, and metric histograms."""

from __future__ import annotations

import os

import numpy as np

from .._shared import atomic_path
from ..crystal import euler_to_quat, ipf_colors, ipf_key_image
from ..metrics import METRIC_NAMES

LABELS = {
    "size": "grain size (ECD, cells)", "perimeter": "perimeter (cell edges)",
    "inertia_ratio": "inertia ratio λmax/λmin", "coordination": "coordination number",
    "disorientation": "boundary disorientation (°)", "phi1": "φ1 (°)", "Phi": "Φ (°)", "phi2": "φ2 (°)",
}


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def ipf_image(m, direction=(0, 0, 1)) -> np.ndarray:
    """RGB image (rows, cols, 3) of a map's IPF colours; non-indexed cells black."""
    rgb = ipf_colors(euler_to_quat(m.euler), direction)
    rgb[~m.indexed] = 0.0
    return rgb


def save_figure(fig, path, dpi=150):
    """Save atomically (temp file in the same folder, then rename)."""
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=dpi, bbox_inches="tight")


def draw_ipf_key(ax):
    rgba, ext = ipf_key_image(200)
    ax.imshow(rgba, origin="lower", extent=ext)
    ax.text(0, -0.02, "001", ha="center", va="top", fontsize=8)
    ax.text(ext[1], -0.02, "101", ha="center", va="top", fontsize=8)
    t = np.tan(np.arccos(1 / np.sqrt(3)) / 2) / np.sqrt(2)
    ax.text(t, t + 0.02, "111", ha="center", va="bottom", fontsize=8)
    ax.set_xlim(-0.05, ext[1] + 0.05)
    ax.set_ylim(-0.07, ext[3] * 0.9)
    ax.set_aspect("equal")
    ax.axis("off")


def plot_ipf(m, path, title=None, boxes=(), lines=()):
    """Write the IPF-Z map of ``m`` with its colour key and a scale in µm.

    ``boxes``: (row0, col0, rows, cols) rectangles to outline; ``lines``: ((r0, c0), (r1, c1)) segments.
    """
    plt = _pyplot()
    rows, cols = m.shape
    w = 7.0
    h = max(2.5, w * rows / cols * 0.82)
    fig = plt.figure(figsize=(w, h))
    ax = fig.add_axes([0.02, 0.08, 0.74, 0.84])
    ax.imshow(ipf_image(m), interpolation="nearest",
              extent=(0, cols * m.step[1], rows * m.step[0], 0))
    for (r0, c0, nr, nc) in boxes:
        ax.add_patch(plt.Rectangle((c0 * m.step[1], r0 * m.step[0]), nc * m.step[1], nr * m.step[0],
                                   fill=False, ec="white", lw=1.2, ls="--"))
    for (p0, p1) in lines:
        ax.plot([p0[1] * m.step[1], p1[1] * m.step[1]], [p0[0] * m.step[0], p1[0] * m.step[0]],
                color="white", lw=0.6, alpha=0.7)
    ax.set_xlabel("X (µm)")
    ax.set_ylabel("Y (µm)")
    ax.set_title(title or f"IPF-Z  {os.path.basename(m.source) if m.source else ''}  ({rows}×{cols} cells)",
                 fontsize=10)
    kax = fig.add_axes([0.78, 0.55, 0.2, 0.3])
    draw_ipf_key(kax)
    kax.set_title("IPF-Z key", fontsize=9)
    save_figure(fig, path)
    plt.close(fig)


def plot_metric_histograms(dists: dict, path, title=None, others=()):
    """Write the eight metric histograms (bars) in one figure; ``others`` = [(label, dists), ...]
    are overlaid as step lines."""
    plt = _pyplot()
    fig, axes = plt.subplots(2, 4, figsize=(14, 6))
    for ax, name in zip(axes.ravel(), METRIC_NAMES):
        edges, dens = dists[name]
        ax.bar(edges[:-1], dens, width=np.diff(edges), align="edge", color="#c0504d", alpha=0.75,
               edgecolor="white", lw=0.3, label="map")
        for label, d in others:
            e, y = d[name]
            ax.step(e[:-1], y, where="post", label=label)
        ax.set_xlabel(LABELS[name], fontsize=9)
        ax.set_ylabel("density", fontsize=8)
        ax.tick_params(labelsize=8)
    if others:
        axes[0, 0].legend(fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    save_figure(fig, path)
    plt.close(fig)
