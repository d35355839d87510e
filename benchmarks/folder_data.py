"""Folder data sets: the cost of the input pipeline, side by side in one run.

  python benchmarks/folder_data.py --images 2000 --size 64 --json benchmarks/results/folder_data_cpu.json
  python benchmarks/folder_data.py --path DIR_OR_ZIP --size 64     # your own images

Makes a folder of random-pixel JPEGs (or reads --path), then times:
  - the cache: the first load (decode every image into the uint8 cache) and a reload (stat
    the files, memory-map the cache);
  - the batch alone (`source.batch(step)` to a ready device array) and the host loop of
    `jaxgan train` (batch + the jitted DCGAN train step, blocking at the end only), for the
    three ways a folder set is read: on the device (`data.device_max_mb` large enough), from
    the host cache with prefetching (`data.prefetch=2`) and without (`data.prefetch=0`).
Each mode is timed in `--repeats` interleaved rounds; the table shows medians.
"""
import argparse
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import jax
import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
  sys.path.insert(0, str(REPO))

from jaxgan import config as config_lib  # noqa: E402
from jaxgan import data, folder, parallel  # noqa: E402
from jaxgan.state import spec_from_config  # noqa: E402

MODES = {"device": dict(device_max_mb=1 << 20, prefetch=0),
         "host+prefetch": dict(device_max_mb=0, prefetch=2),
         "host": dict(device_max_mb=0, prefetch=0)}


def make_images(root: Path, n: int, size: int, seed: int = 0) -> None:
  """n random-pixel JPEGs of about `size` (some larger, non-square) in 4 class folders."""
  from PIL import Image
  rng = np.random.default_rng(seed)
  for i in range(n):
    h, w = int(size * rng.uniform(1, 1.5)), int(size * rng.uniform(1, 1.5))
    path = root / f"class{i % 4}" / f"{i:06d}.jpg"
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(path, quality=90)


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
  p.add_argument("--path", default=None, help="a folder or zip of images (default: generated)")
  p.add_argument("--images", type=int, default=2000, help="generated images")
  p.add_argument("--size", type=int, default=64, help="data.image_size (32 or 64 for DCGAN)")
  p.add_argument("--batch-size", type=int, default=64)
  p.add_argument("--width", type=int, default=32, help="DCGAN model.width")
  p.add_argument("--steps", type=int, default=10, help="steps per timed round")
  p.add_argument("--repeats", type=int, default=3)
  p.add_argument("--json", default=None)
  args = p.parse_args(argv)

  tmp = Path(tempfile.mkdtemp(prefix="jaxgan-folder-bench-"))
  try:
    root = Path(args.path) if args.path else tmp / "images"
    if not args.path:
      make_images(root, args.images, args.size)
    cache = tmp / "cache"
    t0 = time.perf_counter()
    fs = folder.load_folder(root, args.size, cache_dir=cache, log=lambda m: None)
    build_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    fs = folder.load_folder(root, args.size, cache_dir=cache, log=lambda m: None)
    reload_s = time.perf_counter() - t0

    config = config_lib.apply_overrides(config_lib.load_config_file("experiments/mnist_dcgan32.py"), [
        f"batch_size={args.batch_size}", f"model.width={args.width}"])
    mesh = parallel.make_mesh(jax.devices()[:1])
    spec = spec_from_config(config, fs.images.shape[1:])
    step_fn = parallel.jit_step(spec, mesh)
    sources = {m: folder.folder_set_source(fs, args.batch_size, 0, **kw) for m, kw in MODES.items()}
    state = parallel.init_state(spec, mesh, 0, fs.images.shape[1:])
    state, _ = step_fn(state, parallel.global_batch(mesh, sources["device"].batch(0)))  # compile
    jax.block_until_ready(state)

    def batches_only(src, start):
      t = time.perf_counter()
      for s in range(start, start + args.steps):
        out = src.batch(s)
      jax.block_until_ready(out)
      return (time.perf_counter() - t) / args.steps

    def loop(src, start):
      nonlocal state
      t = time.perf_counter()
      for s in range(start, start + args.steps):
        state, metrics = step_fn(state, parallel.global_batch(mesh, src.batch(s)))
      jax.block_until_ready((state, metrics))
      return (time.perf_counter() - t) / args.steps

    times = {m: {"batch": [], "step": []} for m in MODES}
    start = 1
    for _ in range(args.repeats):
      for m, src in sources.items():
        times[m]["batch"].append(batches_only(src, start))
        times[m]["step"].append(loop(src, start))
        start += args.steps
    rows = [dict(mode=m, batch_ms=1e3 * statistics.median(t["batch"]),
                 step_ms=1e3 * statistics.median(t["step"]),
                 images_per_s=args.batch_size / statistics.median(t["step"]))
            for m, t in times.items()]
  finally:
    shutil.rmtree(tmp, ignore_errors=True)

  n, shape = fs.images.shape[0], fs.images.shape[1:]
  print(f"{n} images -> {shape}, cache {fs.images.nbytes / 2**20:.1f} MiB: first load "
        f"(decode) {build_s:.2f} s, reload {reload_s * 1e3:.0f} ms; DCGAN width {args.width}, "
        f"batch {args.batch_size}, {jax.devices()[0].platform}")
  print(f"{'mode':<15} {'batch ms':>9} {'loop step ms':>13} {'img/s':>8}")
  for r in rows:
    print(f"{r['mode']:<15} {r['batch_ms']:>9.2f} {r['step_ms']:>13.1f} {r['images_per_s']:>8.0f}")
  if args.json:
    out = dict(command=" ".join(["python", "benchmarks/folder_data.py", *sys.argv[1:]]),
               images=n, shape=list(shape), cache_mib=fs.images.nbytes / 2**20,
               first_load_s=build_s, reload_s=reload_s, rows=rows,
               env=dict(platform=jax.devices()[0].platform, device=str(jax.devices()[0]),
                        cpu_count=os.cpu_count(), machine=platform.machine(),
                        jax=jax.__version__, loadavg=os.getloadavg(),
                        date=time.strftime("%Y-%m-%dT%H:%M:%S")))
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(out, indent=1))
  return rows


if __name__ == "__main__":
  main()
