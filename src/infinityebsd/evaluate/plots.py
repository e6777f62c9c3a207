"""Every figure of the package: IPF-Z maps with their colour key, metric histograms, and the evaluation
report's figures (maps side by side, histograms against references, texture, homogeneity, border grains).

Each writes one PNG atomically and returns nothing or its file name."""

from __future__ import annotations

import os

import numpy as np

from .._shared import atomic_path
from ..crystal import euler_to_quat, ipf_colors, ipf_key_image, mackenzie_density
from ..metrics import METRIC_NAMES
from .border_grains import BORDER_METRICS
from .compare import ALL_METRICS, bin_probabilities, common_edges, mackenzie_w1, metric_sample, phi2_section_grid

LABELS = {
    "size": "grain size (ECD, cells)", "perimeter": "perimeter (cell edges)",
    "inertia_ratio": "inertia ratio λmax/λmin", "coordination": "coordination number",
    "disorientation": "boundary disorientation (°)", "phi1": "φ1 (°)", "Phi": "Φ (°)", "phi2": "φ2 (°)",
    "size_area_weighted": "grain size, area-weighted (cells)",
}
"""Axis labels of every metric a figure shows (the eight plus the area-weighted size)."""


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


def _save(fig, path) -> str:
    """Save and close a figure; returns the file name (for the report's links)."""
    save_figure(fig, path)
    _pyplot().close(fig)
    return os.path.basename(path)


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


def draw_map(ax, m, boxes=(), lines=()):
    """The IPF-Z image of ``m`` on ``ax`` in µm, with ``boxes`` (row0, col0, rows, cols) outlined dashed
    and ``lines`` ((r0, c0), (r1, c1)) drawn thin, both in white."""
    plt = _pyplot()
    rows, cols = m.shape
    sy, sx = m.step
    ax.imshow(ipf_image(m), interpolation="nearest", extent=(0, cols * sx, rows * sy, 0))
    for (r0, c0, nr, nc) in boxes:
        ax.add_patch(plt.Rectangle((c0 * sx, r0 * sy), nc * sx, nr * sy, fill=False, ec="white", lw=1.3, ls="--"))
    for (p0, p1) in lines:
        ax.plot([p0[1] * sx, p1[1] * sx], [p0[0] * sy, p1[0] * sy], color="white", lw=0.5, alpha=0.65)


def plot_ipf(m, path, title=None, boxes=(), lines=()):
    """Write the IPF-Z map of ``m`` with its colour key and a scale in µm (see :func:`draw_map`)."""
    plt = _pyplot()
    rows, cols = m.shape
    w = 7.0
    h = max(2.5, w * rows / cols * 0.82)
    fig = plt.figure(figsize=(w, h))
    ax = fig.add_axes([0.02, 0.08, 0.74, 0.84])
    draw_map(ax, m, boxes, lines)
    ax.set_xlabel("X (µm)")
    ax.set_ylabel("Y (µm)")
    ax.set_title(title or f"IPF-Z  {os.path.basename(m.source) if m.source else ''}  ({rows}×{cols} cells)",
                 fontsize=10)
    kax = fig.add_axes([0.78, 0.55, 0.2, 0.3])
    draw_ipf_key(kax)
    kax.set_title("IPF-Z key", fontsize=9)
    _save(fig, path)


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
    _save(fig, path)


# ------------------------------------------------------------------------------- report figures
def fig_ipf_panels(panels, path):
    """IPF-Z maps side by side (same µm scale): ``panels`` = [(title, map, boxes, lines), ...]."""
    plt = _pyplot()
    n = len(panels)
    fig, axes = plt.subplots(1, n + 1, figsize=(4.2 * n + 1.6, 4.6),
                             gridspec_kw={"width_ratios": [1] * n + [0.35]})
    for ax, (title, m, boxes, lines) in zip(axes, panels):
        rows, cols = m.shape
        draw_map(ax, m, boxes, lines)
        ax.set_title(f"{title}\n{rows}×{cols} cells", fontsize=9)
        ax.set_xlabel("X (µm)", fontsize=8)
        ax.tick_params(labelsize=7)
    axes[0].set_ylabel("Y (µm)", fontsize=8)
    draw_ipf_key(axes[-1])
    axes[-1].set_title("IPF-Z", fontsize=9)
    fig.tight_layout()
    return _save(fig, path)


def fig_histograms(target, others, path, target_label):
    """Per metric: target bin probabilities (bars) and ``others`` = [(label, table, distances or None)]
    (step lines) on the bins of the target and the first other."""
    plt = _pyplot()
    fig, axes = plt.subplots(3, 3, figsize=(14, 10.5))
    colours = ["#c0504d", "#4f81bd", "#9bbb59", "#8064a2", "#f79646"]
    for ax, name in zip(axes.ravel(), ALL_METRICS):
        a, wa = metric_sample(target, name)
        b, _ = metric_sample(others[0][1], name)
        edges = common_edges(a[np.isfinite(a)], b[np.isfinite(b)], name)
        ax.bar(edges[:-1], bin_probabilities(a, edges, wa), width=np.diff(edges), align="edge", color="#aaaaaa",
               edgecolor="white", lw=0.3, label=target_label)
        for k, (lab, tab, dist) in enumerate(others):
            v, w = metric_sample(tab, name)
            p = bin_probabilities(v, edges, w)
            ax.step(edges, np.append(p, p[-1] if len(p) else 0), where="post", color=colours[k % 5], lw=1.5,
                    label=lab if dist is None else f"{lab}: L2 {dist[name]['l2']:.3f}, W1/σ {dist[name]['w1']:.2f}, "
                                                     f"KS {dist[name]['ks']:.2f}")
        ax.set_xlabel(LABELS[name], fontsize=9)
        ax.set_ylabel("fraction of area" if name == "size_area_weighted" else "fraction", fontsize=8)
        ax.tick_params(labelsize=8)
        ax.legend(fontsize=7)
    fig.tight_layout()
    return _save(fig, path)


def fig_texture(sections, path):
    """φ2 = 45° sections side by side (shared colour scale, MRD) and disorientations against Mackenzie:
    ``sections`` = [(label, section, table), ...]."""
    plt = _pyplot()
    n = len(sections)
    fig, axes = plt.subplots(1, n + 1, figsize=(4.3 * n + 4.5, 3.6))
    vmax = max(float(s.max()) for _, s, _ in sections)
    phi1, Phi = phi2_section_grid()
    im = None
    for ax, (lab, s, _) in zip(axes, sections):
        im = ax.imshow(s, origin="upper", extent=(phi1[0], phi1[-1], Phi[-1], Phi[0]), aspect="auto",
                       cmap="viridis", vmin=0, vmax=vmax)
        ax.set_title(f"{lab}: φ2 = 45° (max {s.max():.2f} MRD)", fontsize=9)
        ax.set_xlabel("φ1 (°)", fontsize=8)
        ax.set_ylabel("Φ (°)", fontsize=8)
        ax.tick_params(labelsize=7)
    fig.colorbar(im, ax=axes[n - 1], fraction=0.05, pad=0.02, label="MRD")
    ax = axes[-1]
    th = np.linspace(0, 63, 200)
    edges = np.arange(0, 66, 3.0)
    for lab, _, tab in sections:
        d = tab.disorientation_deg
        ax.hist(d, bins=edges, density=True, histtype="step", lw=1.4,
                label=f"{lab} (W1 {mackenzie_w1(d):.1f}°)")
    ax.plot(th, mackenzie_density(th, n_axes=20_000), "k--", lw=1.2, label="Mackenzie (random)")
    ax.set_xlabel("boundary disorientation (°)", fontsize=8)
    ax.set_ylabel("density (per °)", fontsize=8)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return _save(fig, path)


def fig_homogeneity(hom_gen, hom_tgt, path, gen_label, tgt_label):
    """Per metric: whole-map bars, the crops' min–max as error bars; the target's crop envelope shaded."""
    plt = _pyplot()
    fig, axes = plt.subplots(3, 3, figsize=(14, 10.5))
    for ax, name in zip(axes.ravel(), ALL_METRICS):
        h = hom_gen[name]
        e = h["edges"]
        mid = 0.5 * (e[1:] + e[:-1])
        if hom_tgt is not None:
            t = hom_tgt[name]
            ax.fill_between(e, np.append(t["min"], t["min"][-1]), np.append(t["max"], t["max"][-1]), step="post",
                            color="#4f81bd", alpha=0.25, label=f"{tgt_label} crops min–max")
        ax.bar(e[:-1], h["whole"], width=np.diff(e), align="edge", color="#c0504d", alpha=0.75, edgecolor="white",
               lw=0.3, label=f"{gen_label} whole map")
        ax.errorbar(mid, 0.5 * (h["min"] + h["max"]), yerr=0.5 * (h["max"] - h["min"]), fmt="none", ecolor="black",
                    elinewidth=0.8, capsize=2, label=f"{gen_label} crops min–max")
        ax.set_xlabel(LABELS[name], fontsize=9)
        ax.set_ylabel("fraction", fontsize=8)
        ax.set_title(f"spread {h['spread']:.3f}" + (f" (target {hom_tgt[name]['spread']:.3f})" if hom_tgt else ""),
                     fontsize=9)
        ax.tick_params(labelsize=8)
    axes[0, 0].legend(fontsize=7)
    fig.tight_layout()
    return _save(fig, path)


def fig_border(border, path):
    """Cut grains: truth (blue) against the extended map (red), paper Figs. 30–32."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, 5, figsize=(20, 3.6))
    for ax, name in zip(axes, BORDER_METRICS):
        a, b = border["samples"][name]
        a, b = a[np.isfinite(a)], b[np.isfinite(b)]
        edges = common_edges(a, b, name)
        ax.hist(a, bins=edges, density=True, alpha=0.55, color="#4f81bd", label=f"truth ({len(a)})")
        ax.hist(b, bins=edges, density=True, alpha=0.55, color="#c0504d", label=f"extended ({len(b)})")
        d = border["distances"][name]
        ax.set_title(f"W1/σ {d['w1']:.2f}  KS {d['ks']:.2f}", fontsize=9)
        ax.set_xlabel(LABELS[name], fontsize=9)
        ax.tick_params(labelsize=8)
        ax.legend(fontsize=7)
    fig.suptitle(f"grains cut by the input border: {border['n_cut_grains']}; continued across it: "
                 f"{100 * border['continued_fraction']:.0f} %", fontsize=10)
    fig.tight_layout()
    return _save(fig, path)
