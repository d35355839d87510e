"""`jaxgan` command line.

  jaxgan train  [--config FILE] [--workdir DIR] [--force] [--config.KEY=VALUE ...]
                [--coordinator HOST:PORT --num-processes N --process-id I | --distributed]
  jaxgan sample --workdir DIR --num N --seed S --out FILE(.npy|.png) [--step K] [--class K]
  jaxgan sweep  --config FILE --seeds N [--param KEY --values v1,v2,...] [--workdir DIR]
                [--steps-per-call K]
  jaxgan eval   --workdir DIR [--num N] [--seed S] [--inception FILE.npz] [--step K]
  jaxgan data inspect PATH [--image-size N] [--channels C] [--labels MODE] [--skip-bad]
                           [--cache-dir DIR] [--preview FILE.png]
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
  t.add_argument("--force", action="store_true",
                 help="continue the run in --workdir even though its config differs")
  d = t.add_argument_group("multi-host (jax.distributed); run the same command on every host")
  d.add_argument("--coordinator", default=None,
                 help="HOST:PORT of process 0 (default $JAX_COORDINATOR_ADDRESS)")
  d.add_argument("--num-processes", type=int, default=None, help="number of processes")
  d.add_argument("--process-id", type=int, default=None, help="this process's index, 0..N-1")
  d.add_argument("--distributed", action="store_true",
                 help="jax.distributed.initialize() with the cluster found by JAX (TPU pod, "
                      "Slurm, Open MPI); automatic on a Cloud TPU VM")
  s = sub.add_parser("sample", help="write samples from a run's latest checkpoint")
  s.add_argument("--workdir", required=True)
  s.add_argument("--num", type=int, default=64)
  s.add_argument("--seed", type=int, default=0)
  s.add_argument("--out", required=True, help="output file, .npy or .png")
  s.add_argument("--step", type=int, default=None, help="checkpoint step (default: the latest)")
  s.add_argument("--class", type=int, default=None, dest="label",
                 help="a conditional run: samples of class K (default: class i mod C for "
                      "sample i; .npy output also writes the labels to FILE.labels.npy)")
  w = sub.add_parser("sweep", help="train N GANs (seeds x values) in one vmapped program",
                     epilog="Writes DIR/<member>/ (a normal run each) and DIR/summary.json "
                            "(per-member metrics, mean and std). --summarize recomputes the "
                            "summary of an existing sweep.")
  w.add_argument("--config", default=None, help="config file or name under experiments/")
  w.add_argument("--seeds", type=int, default=10, help="seeds config.seed .. config.seed+N-1")
  w.add_argument("--param", default=None, help="a config key to vary, e.g. penalty.weight")
  w.add_argument("--values", default=None, help="comma-separated values for --param")
  w.add_argument("--workdir", default=None, help="sweep directory (default runs/<config>_sweep)")
  w.add_argument("--steps-per-call", type=int, default=None,
                 help="steps per compiled call (default: all steps between log/sample/checkpoint "
                      "points in one scan; 1 for conv models on CPU)")
  w.add_argument("--summarize", action="store_true", help="only (re)write DIR/summary.json")
  w.add_argument("--no-progress", action="store_true", help="no progress bar")
  e = sub.add_parser("eval", help="metrics of a run's latest checkpoint -> "
                                   "DIR/eval/step_N.json (other --num/--seed: "
                                   "step_N_num{num}_seed{seed}.json; --inception adds "
                                   "_inception)")
  e.add_argument("--workdir", required=True)
  e.add_argument("--num", type=int, default=None,
                 help="samples (default 5,000 for images, 2,500 for grid25/ring8, "
                      "26,000 for stacked_mnist)")
  e.add_argument("--seed", type=int, default=0, help="noise seed of the samples")
  e.add_argument("--step", type=int, default=None, help="checkpoint step (default: the latest)")
  e.add_argument("--inception", default=None, metavar="FILE.npz",
                 help="FID Inception-v3 weights (experiments/convert_fid_inception.py): image "
                      "metrics in its features, for 1- and 3-channel images")
  a = sub.add_parser("data", help="data set tools")
  asub = a.add_subparsers(dest="data_command", required=True)
  i = asub.add_parser("inspect", help="count, classes, sizes and a preview grid of a folder or "
                                      "zip of images (decodes it into the cache that training "
                                      "reuses)")
  i.add_argument("path", help="a folder of images (searched recursively) or a .zip")
  i.add_argument("--image-size", type=int, default=0,
                 help="side of the square crops (data.image_size; 0: the images' own size)")
  i.add_argument("--channels", type=int, default=0, choices=(0, 1, 3),
                 help="data.channels (0: from the images)")
  i.add_argument("--labels", default="auto", help="data.labels: auto | folders | json | none")
  i.add_argument("--skip-bad", action="store_true", help="data.skip_bad: skip unreadable files")
  i.add_argument("--cache-dir", default="", help="data.cache_dir (default ~/.cache/jaxgan)")
  i.add_argument("--preview", default=None, metavar="FILE.png",
                 help="preview grid (default <name>_preview.png in the current directory)")
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
  from jaxgan.checkpoint import CheckpointError
  from jaxgan.data import DataError
  try:
    if args.command == "train":
      from jaxgan import parallel
      from jaxgan.train import train
      parallel.initialize_distributed(args.coordinator, args.num_processes, args.process_id,
                                      auto=args.distributed)
      config = config_lib.apply_overrides(config_lib.load_config_file(args.config), overrides)
      name = config_lib.resolve_config_path(args.config).stem
      workdir = Path(args.workdir or f"runs/{name}")
      state = train(config, workdir, progress=not args.no_progress, force=args.force)
      if int(state.step) < config.steps:
        print(f"[jaxgan] stopped at step {int(state.step)} of {config.steps}; the same command "
              f"resumes it")
      else:
        print(f"[jaxgan] done: samples, metrics.jsonl and checkpoints in {workdir}")
    elif args.command == "sample":
      if overrides:
        raise config_lib.ConfigError("sample takes no --config.* overrides")
      if Path(args.out).suffix not in (".npy", ".png"):
        raise config_lib.ConfigError(f"--out must end in .npy or .png, got {args.out}")
      from jaxgan.runs import sample
      x = sample(args.workdir, args.num, args.seed, args.out, args.step, args.label)
      print(f"[jaxgan] wrote {x.shape[0]} samples of shape {x.shape[1:]} to {args.out}")
    elif args.command == "sweep":
      _sweep(args, overrides)
    elif args.command == "data":
      if overrides:
        raise config_lib.ConfigError("data takes no --config.* overrides")
      _inspect(args)
    elif args.command == "eval":
      if overrides:
        raise config_lib.ConfigError("eval takes no --config.* overrides")
      import json
      from jaxgan.eval import evaluate_run
      print(json.dumps(evaluate_run(args.workdir, args.num, args.seed, args.inception,
                                    args.step), sort_keys=True))
  except (config_lib.ConfigError, DataError, FileNotFoundError) as e:
    print(f"jaxgan: error: {e}", file=sys.stderr)
    return 2
  except (CheckpointError, FloatingPointError, OSError) as e:  # NonFiniteError, a full disk
    print(f"jaxgan: error: {e}", file=sys.stderr)
    return 1
  except KeyboardInterrupt:  # train: after its checkpoint (first Ctrl-C) or at once (second)
    print("jaxgan: interrupted", file=sys.stderr)
    return 130
  return 0


def _inspect(args) -> None:
  from jaxgan import folder
  from jaxgan.config import ConfigError
  if args.image_size < 0:
    raise ConfigError("--image-size must be >= 0")
  preview = args.preview or f"{Path(args.path).expanduser().resolve().stem or 'data'}_preview.png"
  if not preview.endswith(".png"):
    raise ConfigError(f"--preview must end in .png, got {preview}")
  r = folder.inspect(args.path, args.image_size, args.channels, args.labels, args.skip_bad,
                     args.cache_dir, preview=preview)
  print(f"{r['source']}: {r['count']} images")
  print(f"  original sizes: width {r['width'][0]}..{r['width'][1]}, height "
        f"{r['height'][0]}..{r['height'][1]}")
  print(f"  as trained: {r['image_size']}x{r['image_size']}x{r['channels']}")
  if r["classes"] is None:
    print("  labels: none (no class subfolders or dataset.json, or --labels none)")
  else:
    print(f"  labels from {r['label_source']}: {len(r['classes'])} classes")
    for name, count in r["classes"].items():
      print(f"    {name}: {count}")
  if r["skipped"]:
    print(f"  skipped {len(r['skipped'])} unreadable file(s):")
    for line in r["skipped"]:
      print(f"    {line}")
  print(f"  cache: {r['cache']}")
  print(f"  preview: {r['preview']}")


def _sweep(args, overrides) -> None:
  import json
  from jaxgan import config as config_lib
  from jaxgan import sweep
  workdir = args.workdir
  if args.summarize:
    if not workdir or not (Path(workdir) / "sweep.json").exists():
      raise FileNotFoundError(f"--summarize needs --workdir of an existing sweep "
                              f"(no {workdir}/sweep.json)")
    summary = sweep.summarize(workdir)
  else:
    config = config_lib.apply_overrides(config_lib.load_config_file(args.config), overrides)
    workdir = workdir or f"runs/{config_lib.resolve_config_path(args.config).stem}_sweep"
    values = [v for v in (args.values or "").split(",") if v]
    summary = sweep.sweep(config, workdir, args.seeds, args.param, values,
                          steps_per_call=args.steps_per_call, progress=not args.no_progress)
    if summary is None:                                              # SIGTERM, checkpointed
      print("[jaxgan] sweep stopped without its summary; the same command resumes it")
      return
  print(json.dumps(summary["aggregate"], indent=1))
  print(f"[jaxgan] done: members and summary.json in {workdir}")


if __name__ == "__main__":
  sys.exit(main())
