"""Cost of a seed population: N GANs in one vmapped program vs one run vs N separate runs.

  python benchmarks/sweep.py [--config grid25] [--steps 2000] [--members 10] [--out FILE.json]
                             [--steps-per-call K] [--set KEY=VALUE ...]

Times, end to end as a user sees them (compilation, logging, samples, checkpoints included):
  - `jaxgan train` of one GAN (the normal host loop, one dispatch per step);
  - `jaxgan sweep --seeds 1` (the same program as the sweep, one member);
  - `jaxgan sweep --seeds N` (N members in one program), including its summary (mode metrics);
and compares N members with N x the measured single run (the cost of N separate runs, run one
after another). Prints a table and writes the numbers as JSON (default benchmarks/sweep.json).
"""
import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import jax  # noqa: E402

from jaxgan import config as config_lib  # noqa: E402
from jaxgan.sweep import sweep  # noqa: E402
from jaxgan.train import train  # noqa: E402


def timed(fn):
  t0 = time.perf_counter()
  fn()
  return time.perf_counter() - t0


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--config", default="grid25")
  p.add_argument("--steps", type=int, default=2000)
  p.add_argument("--members", type=int, default=10)
  p.add_argument("--out", default=str(Path(__file__).with_suffix(".json")))
  p.add_argument("--steps-per-call", type=int, default=None,
                 help="the sweeps' steps per call (default: steps // 4, one scan per log point)")
  p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                 help="config override, e.g. --set model.width=16 (repeatable)")
  args = p.parse_args(argv)
  config = config_lib.apply_overrides(config_lib.load_config_file(args.config), [
      f"steps={args.steps}", f"log_every={args.steps // 4}", f"sample_every={args.steps}",
      f"checkpoint_every={args.steps}", *args.set])
  spc = args.steps_per_call
  with tempfile.TemporaryDirectory() as tmp:
    single = timed(lambda: train(config, Path(tmp) / "single", progress=False))
    one = timed(lambda: sweep(config, Path(tmp) / "sweep1", 1, steps_per_call=spc, progress=False))
    many = timed(lambda: sweep(config, Path(tmp) / "sweepN", args.members, steps_per_call=spc,
                               progress=False))
  n = args.members
  rows = [
      ("jaxgan train, 1 GAN", 1, single),
      ("jaxgan sweep --seeds 1", 1, one),
      (f"jaxgan sweep --seeds {n}", n, many),
      (f"{n} x jaxgan train (= {n} x row 1)", n, n * single),
  ]
  print(f"\n{args.config} {' '.join(args.set)}: {args.steps} steps, batch {config.batch_size}, "
        f"sweep steps per call {spc or args.steps // 4}, "
        f"{jax.devices()[0].platform} ({os.cpu_count()} cores visible)")
  print(f"| {'what':34s} | GANs | wall s | s per GAN |")
  print(f"| {'-' * 34} | ---: | -----: | --------: |")
  for what, k, t in rows:
    print(f"| {what:34s} | {k:4d} | {t:6.1f} | {t / k:9.1f} |")
  print(f"\n{n} members in one program cost {many / single:.2f}x one run "
        f"({many / (n * single):.2f}x of {n} separate runs)")
  result = dict(
      config=args.config, overrides=args.set, steps=args.steps, batch_size=config.batch_size,
      members=n, sweep_steps_per_call=spc or args.steps // 4,
      wall_s=dict(train_one=single, sweep_one=one, sweep_n=many, train_n_estimated=n * single),
      sweep_n_over_one_run=many / single, sweep_n_over_n_runs=many / (n * single),
      platform=jax.devices()[0].platform, device=str(jax.devices()[0].device_kind),
      cpu_count=os.cpu_count(), load_avg_1min=os.getloadavg()[0], jax=jax.__version__,
      python=platform.python_version(),
      command=" ".join(["python benchmarks/sweep.py", "--config", args.config, "--steps",
                        str(args.steps), "--members", str(n)]
                       + (["--steps-per-call", str(spc)] if spc else [])
                       + [f"--set {o}" for o in args.set]))
  Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
  print(f"wrote {args.out}")


if __name__ == "__main__":
  main()
