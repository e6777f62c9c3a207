"""Make the bundled example map: a raw-looking 256×256 nickel-like scan, written as CTF.

Equiaxed grains (a Voronoi start smoothed by a few curvature-flow steps), Σ3 twin lamellae in some
grains, ~1° orientation noise, 2 % non-indexed cells and a few misindexed specks, so that `clean` has
real work to do. Deterministic (seed 7). Run: python scripts/make_example.py
"""

import numpy as np
from scipy import ndimage

from infinityebsd import EBSDMap, Phase, write_ctf
from infinityebsd.crystal import SIGMA3, axis_angle_to_quat, euler_to_quat, qmul, quat_to_euler, random_quat

rng = np.random.default_rng(7)
R = C = 256
n = 140
seeds = rng.uniform(0, [R, C], size=(n, 2))
rr, cc = np.mgrid[0:R, 0:C]
d = (rr[..., None] - seeds[:, 0]) ** 2 + (cc[..., None] - seeds[:, 1]) ** 2
labels = d.argmin(-1)
for _ in range(6):  # majority smoothing rounds the corners like grain growth would
    onehot = np.stack([ndimage.uniform_filter((labels == k).astype(float), 5, mode="nearest") for k in range(n)])
    labels = onehot.argmax(0)
q = random_quat(n, rng)
cells = q[labels]
# twin lamellae: a band across a third of the grains, in the Σ3 orientation
for k in rng.choice(n, n // 3, replace=False):
    ys, xs = np.nonzero(labels == k)
    if len(ys) < 150:
        continue
    a = rng.uniform(0, np.pi)
    t = (ys - ys.mean()) * np.cos(a) + (xs - xs.mean()) * np.sin(a)
    band = np.abs(t - rng.uniform(-5, 5)) < rng.uniform(2, 5)
    cells[ys[band], xs[band]] = qmul(q[k], SIGMA3)
noise = axis_angle_to_quat(rng.standard_normal((R, C, 3)), np.deg2rad(rng.normal(0, 0.7, (R, C))))
cells = qmul(cells, noise)
specks = rng.random((R, C)) < 0.003
cells[specks] = random_quat(int(specks.sum()), rng)
euler = quat_to_euler(cells)
indexed = rng.random((R, C)) > 0.02
euler[~indexed] = 0.0
m = EBSDMap(euler=euler, phase_id=indexed.astype(np.int32), step=(1.0, 1.0),
            phases=[Phase("Nickel", 11, 225, (3.524, 3.524, 3.524))],
            header={"Prj": "infinityebsd synthetic example (scripts/make_example.py)"})
write_ctf(m, "src/infinityebsd/examples/example_256.ctf")
print("wrote src/infinityebsd/examples/example_256.ctf")
