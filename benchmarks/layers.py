"""Times the FIR resampling layers (jaxgan/models/fir.py) on this machine, two implementations
of each, and writes a table and a JSON.

  python -m benchmarks.layers [--batch 64] [--size 32] [--channels 128] [--conv-batch 16]
      [--repeats 5] [--json benchmarks/results/layers_cpu.json]

Rows (float32, x [batch, size, size, channels]):
  - upsample2d / downsample2d with the [1,3,3,1] filter: forward, forward + backward of
    sum(op(x)^2), and for downsample2d the double backward R1 needs,
    grad_x sum(grad_x sum(tanh(op(x)))^2); impl "slices" (polyphase shifted slices, the
    default) vs "conv" (one depth-wise conv with input dilation / window stride).
  - conv2d_resample, 3x3 channels -> channels at [conv-batch, size, size, channels]: the
    default stride-1 polyphase convs vs "lax" (the transposed conv as an input-dilated
    lax conv; the down conv as a stride-2 lax conv), the same FIRs around them:
    forward + backward (to x and w), and the R1 double backward for down.
Each runner is compiled and warmed up first; then in each of --repeats rounds the runners
take turns (so load from other processes hits them alike), each timed over enough calls for
~--target-s seconds; the number is the median over rounds, in ms per call.
"""
import argparse
import datetime
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
  sys.path.insert(0, str(REPO))

from jaxgan.models import fir  # noqa: E402

_DN = ("NHWC", "HWIO", "NHWC")


def lax_conv_resample(x, w, up=1, down=1):
  """conv2d_resample(x, w, up or down, padding=1) for a 3x3 w with plain lax convs."""
  f = fir.setup_filter()
  if down > 1:
    x = fir.upfirdn2d(x, f, padding=[2, 2, 2, 2])
    return lax.conv_general_dilated(x, w, (2, 2), "VALID", dimension_numbers=_DN)
  k = w.shape[0]
  # the zero-inserted x (2n long), padded k-1 each side, correlated with w: 2n + k - 1 long
  t = lax.conv_general_dilated(x, w, (1, 1), ((k - 1, k), (k - 1, k)), lhs_dilation=(2, 2),
                               dimension_numbers=_DN)
  return fir.upfirdn2d(t, f, padding=[1, 0, 1, 0], gain=4)


def _r1(d):
  """x -> grad_x of sum(grad_x d(x)^2): R1's double backward."""
  return jax.grad(lambda x: jnp.sum(jax.grad(d)(x) ** 2))


def cases(args):
  """{row name: {impl: (fn, args)}}."""
  key = jax.random.key(0)
  x = jax.random.normal(key, (args.batch, args.size, args.size, args.channels))
  c = args.channels
  xc = jax.random.normal(key, (args.conv_batch, args.size, args.size, c))
  w = jax.random.normal(jax.random.key(1), (3, 3, c, c)) / np.sqrt(9 * c)
  rows = {}
  for name, op in (("upsample2d", fir.upsample2d), ("downsample2d", fir.downsample2d)):
    for impl in ("slices", "conv"):
      fwd = lambda x, op=op, impl=impl: op(x, impl=impl)
      rows.setdefault(f"{name} fwd", {})[impl] = (fwd, (x,))
      fb = jax.grad(lambda x, fwd=fwd: jnp.sum(fwd(x) ** 2))
      rows.setdefault(f"{name} fwd+bwd", {})[impl] = (fb, (x,))
      if name == "downsample2d":
        rows.setdefault(f"{name} R1 double bwd", {})[impl] = (
            _r1(lambda x, fwd=fwd: jnp.sum(jnp.tanh(fwd(x)))), (x,))
  ours = {"up": lambda x, w: fir.conv2d_resample(x, w, up=2, padding=1),
          "down": lambda x, w: fir.conv2d_resample(x, w, down=2, padding=1)}
  plain = {"up": lambda x, w: lax_conv_resample(x, w, up=2),
           "down": lambda x, w: lax_conv_resample(x, w, down=2)}
  for way in ("up", "down"):
    for impl, fn in (("polyphase", ours[way]), ("lax", plain[way])):
      fb = jax.grad(lambda x, w, fn=fn: jnp.sum(fn(x, w) ** 2), argnums=(0, 1))
      rows.setdefault(f"conv2d_resample {way} 3x3 fwd+bwd", {})[impl] = (fb, (xc, w))
      if way == "down":
        r1 = jax.grad(lambda x, w, fn=fn: jnp.sum(
            jax.grad(lambda x: jnp.sum(jnp.tanh(fn(x, w))))(x) ** 2))
        rows.setdefault(f"conv2d_resample {way} 3x3 R1 double bwd", {})[impl] = (r1, (xc, w))
  return rows


def check_same(args):
  """The two implementations of each op agree (small shapes)."""
  x = jax.random.normal(jax.random.key(2), (2, 8, 8, 4))
  w = jax.random.normal(jax.random.key(3), (3, 3, 4, 4))
  for op in (fir.upsample2d, fir.downsample2d):
    np.testing.assert_allclose(op(x, impl="slices"), op(x, impl="conv"), atol=1e-5)
  np.testing.assert_allclose(fir.conv2d_resample(x, w, up=2, padding=1),
                             lax_conv_resample(x, w, up=2), atol=1e-4)
  np.testing.assert_allclose(fir.conv2d_resample(x, w, down=2, padding=1),
                             lax_conv_resample(x, w, down=2), atol=1e-4)


def time_rows(rows, repeats, target_s):
  out = {}
  for name, impls in rows.items():
    runners = {}
    for impl, (fn, fargs) in impls.items():
      f = jax.jit(fn)
      t0 = time.perf_counter()
      jax.block_until_ready(f(*fargs))
      first = time.perf_counter() - t0
      t0 = time.perf_counter()
      jax.block_until_ready(f(*fargs))
      once = time.perf_counter() - t0
      runners[impl] = (f, fargs, max(1, int(target_s / max(once, 1e-6))), first)
    times = {impl: [] for impl in impls}
    for _ in range(repeats):
      for impl, (f, fargs, n, _) in runners.items():
        t0 = time.perf_counter()
        for _ in range(n):
          r = f(*fargs)
        jax.block_until_ready(r)
        times[impl].append((time.perf_counter() - t0) / n * 1e3)
    out[name] = {impl: dict(ms=statistics.median(ts), rounds_ms=ts, calls=runners[impl][2],
                            compile_and_first_s=runners[impl][3]) for impl, ts in times.items()}
    print(f"{name:40s} " + "  ".join(f"{impl} {out[name][impl]['ms']:9.1f} ms"
                                     for impl in impls), flush=True)
  return out


def parser():
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--batch", type=int, default=64)
  p.add_argument("--size", type=int, default=32)
  p.add_argument("--channels", type=int, default=128)
  p.add_argument("--conv-batch", type=int, default=16)
  p.add_argument("--repeats", type=int, default=5)
  p.add_argument("--target-s", type=float, default=0.5)
  p.add_argument("--json", default=str(REPO / "benchmarks/results/layers_cpu.json"))
  return p


def main(argv=None):
  args = parser().parse_args(argv)
  check_same(args)
  results = time_rows(cases(args), args.repeats, args.target_s)
  env = dict(date=datetime.datetime.now().isoformat(timespec="seconds"),
             jax=jax.__version__, backend=jax.default_backend(),
             device=str(jax.devices()[0]), platform=platform.platform(),
             processor=platform.processor(), cpu_count=os.cpu_count(),
             loadavg_after=os.getloadavg(), args=vars(args))
  if args.json:
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(dict(env=env, results=results), indent=1) + "\n")
  return results


if __name__ == "__main__":
  main()
