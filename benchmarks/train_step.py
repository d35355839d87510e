"""Times one jaxgan train step, and the same step in PyTorch, side by side.

  python benchmarks/train_step.py --model dcgan32 --batch-size 64 --penalty r1 \\
      --peer jaxgan,torch --json /tmp/dcgan32_r1.json

Each runner is built and compiled (compile time reported separately: XLA compile for jaxgan,
the first call for torch-compile), warmed up, then timed in `--repeats` rounds; the runners
take turns inside each round so that load from other processes hits them alike. A round
times enough calls for ~`--target-s` seconds and blocks on the result at its end only
(`block_until_ready` / `cuda.synchronize`). The step time is the median over rounds.
The JSON holds one row per runner and the environment (versions, CPU, load average).
"""
import argparse
import datetime
import functools
import json
import math
import os
import platform
import shlex
import statistics
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
  sys.path.insert(0, str(REPO))

from benchmarks import flops as flops_lib  # noqa: E402
from jaxgan import config as config_lib  # noqa: E402
from jaxgan.state import create_state, spec_from_config  # noqa: E402
from jaxgan.train_step import train_step, train_steps  # noqa: E402

MODELS = {  # name: (experiment config, data shape (H, W, C))
    "mlp": ("experiments/mnist_mlp.py", (28, 28, 1)),
    "dcgan32": ("experiments/mnist_dcgan32.py", (32, 32, 1)),
    "dcgan64": ("experiments/mnist_dcgan32.py", (64, 64, 3)),
}
PEERS = ("jaxgan", "torch", "torch-1thread", "torch-compile")
PENALTIES = ("none", "r1", "r2", "wgan_gp")


def use_plain_layers():
  """Swaps the fast DCGAN conv layers (jaxgan/models/layers.py) for the plain lax convs that
  Flax's nn.Conv / nn.ConvTranspose run, to measure the before state (`--layers plain`)."""
  from jax import lax
  from jaxgan.models import layers
  dn = ("NHWC", "HWIO", "NHWC")
  layers.conv_4x4_s2 = layers._conv_s2
  layers.conv_transpose_4x4_s2 = lambda x, k: lax.conv_transpose(
      x, k, (2, 2), "SAME", dimension_numbers=dn)


def make_config(args):
  path, shape = MODELS[args.model]
  c = config_lib.load_config_file(str(REPO / path))
  c.batch_size = args.batch_size
  c.penalty.name = args.penalty
  c.penalty.every = args.penalty_every
  c.precision = args.precision
  c.model.upsample = args.upsample
  if args.penalty_weight is not None:
    c.penalty.weight = args.penalty_weight
  return c, shape


def _count(tree) -> int:
  return int(sum(np.prod(x.shape) for x in jax.tree.leaves(tree)))


def model_forward_flops(spec, state, shape):
  """Forward FLOPs per example of G and D (dense and conv multiply-adds x 2)."""
  g_vars = {"params": state.g_params, **state.g_state}
  d_vars = {"params": state.d_params, **state.d_state}
  g_fwd = flops_lib.forward_flops(lambda v, z: spec.generator.apply(v, z, train=False),
                                  g_vars, jnp.zeros((1, spec.latent_dim)))
  d_fwd = flops_lib.forward_flops(lambda v, x: spec.discriminator.apply(v, x, train=False),
                                  d_vars, jnp.zeros((1, *shape)))
  return g_fwd, d_fwd


class JaxRunner:
  name = "jaxgan"

  def __init__(self, args):
    self.args = args
    config, self.shape = make_config(args)
    self.config = config
    spec = spec_from_config(config, self.shape)
    self.spec = spec
    state = create_state(spec, jax.random.key(config.seed), self.shape)
    k, b = args.steps_per_call, args.batch_size
    lead = (b,) if k == 1 else (k, b)
    batch = jnp.tanh(jax.random.normal(jax.random.key(1), (*lead, *self.shape)))  # on device
    fn = functools.partial(train_step if k == 1 else train_steps, spec)
    t0 = time.perf_counter()
    self.compiled = jax.jit(fn, donate_argnums=0).lower(state, batch).compile()
    self.compile_s = time.perf_counter() - t0
    self.state, self.batch = state, batch
    self.params_g, self.params_d = _count(state.g_params), _count(state.d_params)
    self.xla_flops = flops_lib.cost_analysis_flops(self.compiled)  # XLA counts a scan body
    # once, so with K > 1 this is already per step
    self.g_fwd, self.d_fwd = model_forward_flops(spec, state, self.shape)
    self.flops = b * flops_lib.step_flops(self.g_fwd, self.d_fwd, args.penalty,
                                          reuse_penalty_pass=False, d_steps=config.d_steps,
                                          penalty_every=config.penalty.every)

  def run(self, calls: int):
    state = self.state
    for _ in range(calls):
      state, _ = self.compiled(state, self.batch)
    jax.block_until_ready(state)
    self.state = state

  def peak_memory(self):
    stats = jax.devices()[0].memory_stats()
    return (stats or {}).get("peak_bytes_in_use")


class TorchRunner:
  def __init__(self, args, name: str):
    import torch
    from benchmarks.peers import torch_gan
    self.torch, self.args, self.name = torch, args, name
    compile = name == "torch-compile"
    # torch-1thread: one intra-op thread. On a loaded machine OpenMP's barriers make two
    # threads much slower than one, so the comparison reports both.
    self.threads = 1 if name == "torch-1thread" else args.threads
    config, shape = make_config(args)
    self.device = "cuda" if jax.default_backend() == "gpu" and torch.cuda.is_available() else "cpu"
    torch.set_num_threads(self.threads)
    torch.manual_seed(0)
    m = config.model
    G, D = torch_gan.build(args.model, shape, m.latent_dim, m.width, m.upsample,
                           tuple(m.g_hidden), tuple(m.d_hidden))
    G, D = G.to(self.device), D.to(self.device)
    self.params_g, self.params_d = torch_gan.num_params(G), torch_gan.num_params(D)
    # the same networks, so the same forward FLOPs; the peer reuses the penalty's D pass
    jspec = spec_from_config(config, shape)
    jstate = jax.eval_shape(lambda: create_state(jspec, jax.random.key(0), shape))
    g_fwd, d_fwd = model_forward_flops(jspec, jstate, shape)
    self.flops = args.batch_size * flops_lib.step_flops(
        g_fwd, d_fwd, args.penalty, reuse_penalty_pass=True, d_steps=1,
        penalty_every=config.penalty.every)
    self.autocast = args.precision == "bf16"
    self.step = torch_gan.TorchStep(G, D, m.latent_dim, args.penalty, config.penalty.weight,
                                    lr=config.optim.d.lr, betas=(config.optim.d.b1,
                                                                 config.optim.d.b2),
                                    ema_decay=config.ema_decay, compile=compile,
                                    device=self.device, every=config.penalty.every)
    h, w, c = shape
    data_shape = (h, w, c) if args.model == "mlp" else (c, h, w)  # torch convs are NCHW
    self.batch = torch.randn(args.batch_size, *data_shape, device=self.device).tanh()
    t0 = time.perf_counter()
    if compile:  # torch.compile compiles on the first calls; count them as compile time
      self.run(2)
    self.compile_s = time.perf_counter() - t0 if compile else 0.0

  def _sync(self):
    if self.device == "cuda":
      self.torch.cuda.synchronize()

  def run(self, calls: int):
    self.torch.set_num_threads(self.threads)
    with self.torch.autocast(self.device, dtype=self.torch.bfloat16, enabled=self.autocast):
      for _ in range(calls * self.args.steps_per_call):
        self.step(self.batch)
    self._sync()

  def peak_memory(self):
    return self.torch.cuda.max_memory_allocated() if self.device == "cuda" else None


def _cpu_model() -> str:
  try:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
      if line.startswith("model name"):
        return line.split(":", 1)[1].strip()
  except OSError:
    pass
  return platform.processor() or "unknown"


def environment() -> dict:
  dev = jax.devices()[0]
  env = dict(
      date=datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
      backend=jax.default_backend(), device_kind=dev.device_kind, cpu=_cpu_model(),
      cpu_count=os.cpu_count(), python=platform.python_version(), jax=jax.__version__,
      jaxlib=getattr(jax.lib, "__version__", None) or _version("jaxlib"),
      flax=_version("flax"), optax=_version("optax"), torch=_version("torch"),
      xla_flags=os.environ.get("XLA_FLAGS", ""), load_avg=list(os.getloadavg()))
  return env


def _version(pkg):
  try:
    from importlib.metadata import version
    return version(pkg)
  except Exception:  # noqa: BLE001
    return None


def build_runners(args):
  peers = PEERS if args.peer == "all" else tuple(args.peer.split(","))
  bad = [p for p in peers if p not in PEERS]
  if bad:
    raise SystemExit(f"unknown --peer {bad}; valid: {', '.join(PEERS)}, all, or a comma list")
  runners, errors = [], {}
  for p in peers:
    try:
      runners.append(JaxRunner(args) if p == "jaxgan" else TorchRunner(args, p))
    except Exception as e:  # noqa: BLE001 - a peer that cannot run this config is reported
      if p == "jaxgan" or args.strict:
        raise
      errors[p] = f"{type(e).__name__}: {str(e).splitlines()[0][:300]}"
  return runners, errors


def time_runners(runners, args):
  calls = {}
  for r in runners:  # warm-up (not timed), then calibrate the calls per round
    r.run(args.warmup)
    t0 = time.perf_counter()
    r.run(1)
    calls[r.name] = max(1, math.ceil(args.target_s / max(time.perf_counter() - t0, 1e-6)))
  times = {r.name: [] for r in runners}
  for i in range(args.repeats):
    order = runners if i % 2 == 0 else runners[::-1]  # alternate who goes first
    for r in order:
      t0 = time.perf_counter()
      r.run(calls[r.name])
      times[r.name].append((time.perf_counter() - t0) / (calls[r.name] * args.steps_per_call))
  return times, calls


def run(args) -> dict:
  env = environment()
  runners, errors = build_runners(args)
  times, calls = time_runners(runners, args)
  env["load_avg_after"] = list(os.getloadavg())
  rows = []
  for r in runners:
    step_s = statistics.median(times[r.name])
    flops = r.flops
    peak, peak_source = flops_lib.peak_flops(env["backend"], env["device_kind"], args.precision,
                                             os.cpu_count())
    achieved = flops / step_s if flops else None
    rows.append(dict(
        peer=r.name, model=args.model, batch_size=args.batch_size, penalty=args.penalty,
        penalty_every=args.penalty_every, steps_per_call=args.steps_per_call,
        precision=args.precision, upsample=args.upsample, layers=args.layers,
        threads=getattr(r, "threads", None),
        images_per_sec=args.batch_size / step_s, step_ms_median=1e3 * step_s,
        step_ms_all=[1e3 * t for t in times[r.name]], calls_per_round=calls[r.name],
        compile_s=r.compile_s, backend=env["backend"], device_kind=env["device_kind"],
        params_g=r.params_g, params_d=r.params_d, flops_per_step=flops,
        xla_flops_per_step=getattr(r, "xla_flops", None), achieved_flops_per_s=achieved,
        peak_flops_per_s=peak, peak_source=peak_source,
        mfu=(achieved / peak) if (achieved and peak) else "n/a",
        peak_memory_bytes=r.peak_memory()))
  eager = [x["images_per_sec"] for x in rows if x["peer"] in ("torch", "torch-1thread")]
  for x in rows:  # against the faster of the torch eager thread settings that ran
    x["speed_vs_torch"] = x["images_per_sec"] / max(eager) if eager else None
  for p, e in errors.items():
    rows.append(dict(peer=p, model=args.model, batch_size=args.batch_size, penalty=args.penalty,
                     penalty_every=args.penalty_every, steps_per_call=args.steps_per_call,
                     precision=args.precision, upsample=args.upsample, layers=args.layers,
                     error=e))
  return dict(command=args.command, env=env, rows=rows)


def print_rows(result):
  for x in result["rows"]:
    if "error" in x:
      print(f"  {x['peer']:>13}: not run: {x['error']}")
      continue
    ratio = f"{x['speed_vs_torch']:.2f}x torch" if x.get("speed_vs_torch") else ""
    mfu = f"{100 * x['mfu']:.1f}%" if isinstance(x["mfu"], float) else x["mfu"]
    print(f"  {x['peer']:>13}: {x['images_per_sec']:8.1f} img/s  {x['step_ms_median']:8.2f} "
          f"ms/step  compile {x['compile_s']:5.1f}s  MFU {mfu:>6}  {ratio}", flush=True)


def parser():
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  p.add_argument("--model", choices=tuple(MODELS), default="dcgan32")
  p.add_argument("--batch-size", type=int, default=64)
  p.add_argument("--penalty", choices=PENALTIES, default="none")
  p.add_argument("--penalty-every", type=int, default=1, help="lazy regularisation interval")
  p.add_argument("--penalty-weight", type=float, default=None,
                 help="default: the experiment config's")
  p.add_argument("--steps-per-call", type=int, default=1, help="K steps per call (lax.scan)")
  p.add_argument("--precision", choices=("fp32", "bf16"), default="fp32")
  p.add_argument("--upsample", choices=("transpose", "subpixel"), default="transpose")
  p.add_argument("--layers", choices=("fast", "plain"), default="fast",
                 help="plain: DCGAN convs as plain lax convs (the before state)")
  p.add_argument("--peer", default="jaxgan",
                 help=f"comma list of {', '.join(PEERS)}, or 'all'")
  p.add_argument("--threads", type=int, default=os.cpu_count(),
                 help="torch intra-op threads (XLA:CPU uses one thread per core)")
  p.add_argument("--repeats", type=int, default=5)
  p.add_argument("--warmup", type=int, default=2, help="untimed calls before timing")
  p.add_argument("--target-s", type=float, default=0.5, help="seconds per timed round")
  p.add_argument("--strict", action="store_true", help="fail if a peer cannot run")
  p.add_argument("--json", default=None, help="write the result here")
  return p


def main(argv=None):
  argv = sys.argv[1:] if argv is None else argv
  args = parser().parse_args(argv)
  if args.batch_size < 1 or args.steps_per_call < 1 or args.penalty_every < 1:
    raise SystemExit("--batch-size, --steps-per-call and --penalty-every must be >= 1")
  if args.layers == "plain":
    use_plain_layers()
  args.command = "python benchmarks/train_step.py " + " ".join(shlex.quote(a) for a in argv)
  print(f"{args.model} batch {args.batch_size} penalty {args.penalty} every {args.penalty_every} "
        f"K {args.steps_per_call} {args.precision} {args.upsample} {args.layers} layers", flush=True)
  result = run(args)
  print_rows(result)
  if args.json:
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(result, indent=1))
  return result


if __name__ == "__main__":
  main()
