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
    ap.add_argument("--steps", type=int, default=None, help="denoising steps of the model path (default: the model's)")
    a = ap.parse_args()
    load = os.getloadavg()
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}; "
          f"load average at start {load[0]:.1f} {load[1]:.1f} {load[2]:.1f} (other jobs share the cores)")
    print(f"{'figure':<58}{'seconds':>10}  note", flush=True)

    def row(label, t, note=""):  # printed as soon as measured: the model path can take long
        print(f"{label:<58}{t:>10.2f}  {note}", flush=True)

    inp = clean(synth_map((512, 512), 20.0, seed=0))
    sizes = [int(v) for v in a.sizes.split(",") if v]
    growth_t = {}
    with tempfile.TemporaryDirectory() as tmp:
        for s in sizes:
            t, res = timed(lambda: extend_growth(inp, (s, s), seed=0, progress=False, log=lambda m: None,
                                                 work_dir=os.path.join(tmp, f"g{s}")))
            growth_t[s] = t
            row(f"extend 512->{s}, --method growth", t)
        if a.generate:
            g = a.generate
            cond = conditioning_tensor(metrics_of(inp, clean=False))
            t, _ = timed(lambda: extend_growth(None, (g, g), cond=cond, seed=0, progress=False, log=lambda m: None,
                                               work_dir=os.path.join(tmp, "gen")))
            row(f"generate {g}x{g} from metrics, --method growth", t)
        if not a.no_model:
            from infinityebsd.cli.generate import DEFAULT_MODEL, load_pipeline
            from infinityebsd.pipeline.extend import extend

            folder = a.model or (DEFAULT_MODEL if DEFAULT_MODEL.is_dir() else DEFAULT_MODEL.parent / "compact")
            pipe = load_pipeline(str(folder), "cpu")
            print(f"model path: {folder}, sampling {getattr(pipe, 'sampling', None) or 'dpm, 20 steps'}"
                  f"{'' if a.steps is None else f', steps {a.steps}'}, batches of 8", flush=True)
            for s in sizes:
                t, _ = timed(lambda: extend(pipe, inp, (s, s), seed=0, steps=a.steps, progress=False,
                                            log=lambda m: None, work_dir=os.path.join(tmp, f"m{s}")))
                row(f"extend 512->{s}, model path", t, f"growth {t / growth_t[s]:.1f}x faster")


if __name__ == "__main__":
    main()
