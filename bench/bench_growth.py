"""Speed of ``--method growth`` against the model path, measured in the same run.

The job of issue 11: a 512×512 grain-growth map (mean size 20 cells, cleaned) extended to 2048×2048
with ``--method growth`` (target: ≤ 60 s on this CPU), and the same extension by the model path
(``pipeline.extend.extend``, the default model or ``--model``) for the ratio. Also 512→1024 and a
2048×2048 map generated from metrics by growth. Times are wall-clock seconds of the library calls
(cleaning of the input, growth, orientations, the post-processing), not of writing the CTF.

Run: python bench/bench_growth.py [--model DIR | --no-model] [--sizes 1024,2048] [--generate 2048]
"""

import argparse
import os
import platform
import tempfile
import time

import numpy as np

from infinityebsd.data.synth import synth_map
from infinityebsd.grains import clean
from infinityebsd.metrics import conditioning_tensor, metrics_of
from infinityebsd.pipeline.growth import extend_growth


def timed(fn):
    t = time.perf_counter()
    out = fn()
    return time.perf_counter() - t, out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", help="model folder for the model path (default: the shipped one)")
    ap.add_argument("--no-model", action="store_true", help="skip the model path")
    ap.add_argument("--sizes", default="1024,2048")
    ap.add_argument("--generate", type=int, default=2048, help="size generated from metrics (0 = none)")
    ap.add_argument("--steps", type=int, default=20, help="denoising steps of the model path")
    a = ap.parse_args()
    load = os.getloadavg()
    inp = clean(synth_map((512, 512), 20.0, seed=0))
    rows, growth_t = [], {}
    with tempfile.TemporaryDirectory() as tmp:
        for s in [int(v) for v in a.sizes.split(",") if v]:
            t, res = timed(lambda: extend_growth(inp, (s, s), seed=0, progress=False, log=lambda m: None,
                                                 work_dir=os.path.join(tmp, f"g{s}")))
            n = int(np.unique(res.map.euler.reshape(-1, 3), axis=0).shape[0]) if s <= 1024 else None
            growth_t[s] = t
            rows.append((f"extend 512->{s}, --method growth", t, "" if n is None else f"{n} grains"))
        if a.generate:
            g = a.generate
            cond = conditioning_tensor(metrics_of(inp, clean=False))
            t, _ = timed(lambda: extend_growth(None, (g, g), cond=cond, seed=0, progress=False, log=lambda m: None,
                                               work_dir=os.path.join(tmp, "gen")))
            rows.append((f"generate {g}x{g} from metrics, --method growth", t, ""))
        model_name = "not run"
        if not a.no_model:
            from infinityebsd.cli.generate import DEFAULT_MODEL, load_pipeline
            from infinityebsd.pipeline.extend import extend

            folder = a.model or (DEFAULT_MODEL if DEFAULT_MODEL.is_dir() else DEFAULT_MODEL.parent / "compact")
            model_name = str(folder)
            pipe = load_pipeline(str(folder), "cpu")
            s = max(growth_t)
            t, _ = timed(lambda: extend(pipe, inp, (s, s), seed=0, steps=a.steps, progress=False,
                                        log=lambda m: None, work_dir=os.path.join(tmp, "m")))
            rows.append((f"extend 512->{s}, model path ({a.steps} steps)", t,
                         f"growth is {t / growth_t[s]:.1f}x faster"))
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}; "
          f"load average at start {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}; model: {model_name}")
    print(f"{'figure':<58}{'seconds':>10}  note")
    for label, t, note in rows:
        print(f"{label:<58}{t:>10.2f}  {note}")


if __name__ == "__main__":
    main()
