"""`jaxgan` command line.

  jaxgan train  [--config FILE] [--workdir DIR] [--config.KEY=VALUE ...]
  jaxgan sample --workdir DIR --num N --seed S --out FILE(.npy|.png)
"""
import argparse
import sys
from pathlib import Path


def _parser():
  p = argparse.ArgumentParser(prog="jaxgan", description="Functional GANs in JAX.")
  sub = p.add_subparsers(dest="command", required=True)
  t = sub.add_parser("train", help="train or resume a run",
                     epilog="Override any config value with --config.KEY=VALUE, "
                            "e.g. --config.steps=2000 --config.penalty.weight=5")
  t.add_argument("--config", default=None,
                 help="config file or name under experiments/ (default experiments/mnist_mlp.py)")
  t.add_argument("--workdir", default=None, help="run directory (default runs/<config name>)")
  t.add_argument("--no-progress", action="store_true", help="no progress bar")
  s = sub.add_parser("sample", help="write samples from a run's latest checkpoint")
  s.add_argument("--workdir", required=True)
  s.add_argument("--num", type=int, default=64)
  s.add_argument("--seed", type=int, default=0)
  s.add_argument("--out", required=True, help="output file, .npy or .png")
  return p


def _split_overrides(argv):
  """Separates --config.KEY=VALUE (also '--config.KEY VALUE') from the other arguments."""
  rest, overrides = [], []
  i = 0
  while i < len(argv):
    a = argv[i]
    if a.startswith("--config."):
      if "=" in a:
        overrides.append(a[len("--config."):])
      elif i + 1 < len(argv):
        overrides.append(f"{a[len('--config.'):]}={argv[i + 1]}")
        i += 1
      else:
        raise SystemExit(f"jaxgan: {a} needs a value")
    else:
      rest.append(a)
    i += 1
  return rest, overrides


def main(argv=None) -> int:
  argv = sys.argv[1:] if argv is None else list(argv)
  rest, overrides = _split_overrides(argv)
  args = _parser().parse_args(rest)
  from jaxgan import config as config_lib
  from jaxgan.data import DataError
  try:
    if args.command == "train":
      from jaxgan.train import train
      config = config_lib.apply_overrides(config_lib.load_config_file(args.config), overrides)
      name = config_lib.resolve_config_path(args.config).stem
      workdir = Path(args.workdir or f"runs/{name}")
      train(config, workdir, progress=not args.no_progress)
      print(f"[jaxgan] done: samples, metrics.jsonl and checkpoints in {workdir}")
    elif args.command == "sample":
      if overrides:
        raise config_lib.ConfigError("sample takes no --config.* overrides")
      from jaxgan.train import sample
      x = sample(args.workdir, args.num, args.seed, args.out)
      print(f"[jaxgan] wrote {x.shape[0]} samples of shape {x.shape[1:]} to {args.out}")
  except (config_lib.ConfigError, DataError, FileNotFoundError) as e:
    print(f"jaxgan: error: {e}", file=sys.stderr)
    return 2
  return 0


if __name__ == "__main__":
  sys.exit(main())
