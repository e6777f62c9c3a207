"""Reading speed against orix, and `infinityebsd metrics` end to end, on a 2048×2048 CTF.

Makes a 2048×2048 map with ~10 000 grains (Voronoi cells, random orientations, 0.5° noise, 1 %
non-indexed cells), writes it as CTF, then measures:
  * read time of `infinityebsd.read_map` and of `orix.io.load` on the same file (ratio = orix / ours),
    each the best of --repeat runs, in the same process;
  * wall time of `infinityebsd metrics FILE --json OUT` in a fresh process (reading, reconstruction,
    cleaning, metrics, JSON).
Run: python bench/bench_io_metrics.py [--size 2048] [--grains 10000] [--repeat 2]
"""

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time

import numpy as np
from scipy.spatial import cKDTree

from infinityebsd import EBSDMap, read_map, write_ctf
from infinityebsd.crystal import axis_angle_to_quat, qmul, quat_to_euler, random_quat


def make_map(size, grains, seed=0):
    rng = np.random.default_rng(seed)
    seeds = rng.uniform(0, size, (grains, 2))
    rr, cc = np.mgrid[0:size, 0:size]
    _, labels = cKDTree(seeds).query(np.stack([rr.ravel(), cc.ravel()], 1) + 0.5)
    q = random_quat(grains, rng)[labels]
    noise = axis_angle_to_quat(rng.standard_normal((len(labels), 3)), np.deg2rad(rng.normal(0, 0.5, len(labels))))
    euler = quat_to_euler(qmul(q, noise)).reshape(size, size, 3)
    indexed = rng.random((size, size)) > 0.01
    return EBSDMap.from_euler(euler, indexed)


def best(fn, repeat):
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", type=int, default=2048)
    ap.add_argument("--grains", type=int, default=10_000)
    ap.add_argument("--repeat", type=int, default=2)
    a = ap.parse_args()
    load = " ".join(f"{v:.1f}" for v in os.getloadavg()) if hasattr(os, "getloadavg") else "n/a"
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "big.ctf")
        m = make_map(a.size, a.grains)
        t_write = best(lambda: write_ctf(m, path), 1)
        mb = os.path.getsize(path) / 1e6
        t_ours = best(lambda: read_map(path), a.repeat)
        try:
            from orix import io as oio

            t_orix = best(lambda: oio.load(path), a.repeat)
        except ImportError:
            t_orix = float("nan")
        cmd = [sys.executable, "-m", "infinityebsd", "metrics", path, "--json", os.path.join(tmp, "m.json")]
        t_cli = best(lambda: subprocess.run(cmd, check=True, capture_output=True), a.repeat)
        out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.splitlines()[0]
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
          f"; load average at start {load} (other jobs sharing the cores)")
    print(f"map: {a.size}x{a.size} cells, {a.grains} Voronoi grains, file {mb:.0f} MB; metrics says: {out}")
    print(f"{'figure':<44}{'seconds':>10}{'ratio':>10}")
    print(f"{'write_ctf':<44}{t_write:>10.2f}")
    print(f"{'read_map (infinityebsd)':<44}{t_ours:>10.2f}{t_orix / t_ours:>9.1f}x")
    print(f"{'orix.io.load':<44}{t_orix:>10.2f}{1.0:>9.1f}x")
    print(f"{'infinityebsd metrics --json (end to end)':<44}{t_cli:>10.2f}")


if __name__ == "__main__":
    main()
