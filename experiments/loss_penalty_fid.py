"""MNIST-5k FID (classifier features) for each loss x penalty of the default GAN.

For every loss in `jaxgan.losses.LOSSES` and every penalty in PENALTIES, trains
experiments/mnist_mlp.py with `--config.loss=L --config.penalty.name=P
--config.penalty.weight=PENALTY_WEIGHTS[P]` for `--steps` steps into WORKDIR/L/P/ (a normal run
directory), then scores its final checkpoint with `jaxgan eval` (`jaxgan.eval.evaluate_run`:
FID, KID, precision/recall, density/coverage, Inception Score and classes covered, all in the
shipped MNIST classifier's features, on `--num` samples of noise seed 0).

Run (24 training runs of the default GAN, each followed by its eval):
  python experiments/loss_penalty_fid.py --workdir runs/loss_penalty --steps 4000 \\
      --out experiments/results/loss_penalty_fid.json \\
      --markdown experiments/results/loss_penalty_fid.md

Each cell records the two commands that regenerate its numbers (`jaxgan train ...` and
`jaxgan eval ...`). Re-running continues an interrupted table: a cell whose run has its
checkpoint at `--steps` and whose eval JSON has `--num` samples is neither retrained nor
re-evaluated, a cell recorded as non-finite is not retrained, and a cell stopped mid-training
resumes from its last checkpoint. `--only L/P,...` trains only those cells; the table always
shows every cell of WORKDIR done at these settings. `--config.KEY=VALUE` overrides the base
config for every cell (e.g. a smaller model), as in `jaxgan train`.

A run that meets a NaN/Inf does not stop the table: jaxgan's `NonFiniteError` is recorded as
status `non_finite` with its first bad step; a run whose final samples are non-finite is
recorded as `non_finite_samples` (not scored).
"""
import argparse
import datetime
import importlib.metadata
import json
import platform
import shlex
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import jax  # noqa: E402

from jaxgan import config as config_lib  # noqa: E402
from jaxgan.eval import NUM_IMAGE_SAMPLES, evaluate_run, result_path  # noqa: E402
from jaxgan.checkpoint import COMMIT_MARKER  # noqa: E402
from jaxgan.losses import LOSSES  # noqa: E402
from jaxgan.penalties import PENALTIES as PENALTY_FNS  # noqa: E402
from jaxgan.train import NonFiniteError, train  # noqa: E402
from jaxgan.writers import last_metrics  # noqa: E402

CONFIG = "experiments/mnist_mlp.py"
PENALTIES = ("none", *PENALTY_FNS)                                   # none, r1, r2, wgan_gp
# The weight of each penalty; None keeps the config's (1.0 in mnist_mlp.py, its R1 lambda).
# r1/r2 share that scale (both E||grad D||^2, on real or on fake data); WGAN-GP uses the
# conventional lambda = 10 of Gulrajani et al. (2017); 'none' has no penalty term.
PENALTY_WEIGHTS = {"none": 0.0, "r1": None, "r2": None, "wgan_gp": 10.0}
TABLE_KEYS = ("loss", "penalty.name", "penalty.weight", "steps")     # set per cell, not by hand
METRICS = ("fid", "kid", "precision", "recall", "density", "coverage", "inception_score",
           "classes_covered")
CELL_FILE = "loss_penalty_cell.json"       # each cell's record (training, status, commands)


def cell_overrides(base, loss: str, penalty: str, steps: int) -> list[str]:
  """The `--config.*` overrides of one cell (besides the user's)."""
  weight = PENALTY_WEIGHTS[penalty]
  weight = base.penalty.weight if weight is None else weight
  return [f"loss={loss}", f"penalty.name={penalty}", f"penalty.weight={weight}",
          f"steps={steps}"]


def parse_only(text: str) -> list[tuple[str, str]]:
  """'hinge/r1,minimax/none' -> [(loss, penalty)]; unknown names are refused."""
  cells = []
  for item in filter(None, (t.strip() for t in text.split(","))):
    loss, _, penalty = item.partition("/")
    if loss not in LOSSES or penalty not in PENALTIES:
      raise config_lib.ConfigError(
          f"--only {item!r}: expected LOSS/PENALTY with LOSS in {', '.join(LOSSES)} and "
          f"PENALTY in {', '.join(PENALTIES)}")
    cells.append((loss, penalty))
  return list(dict.fromkeys(cells))


def _commands(args, user: list[str], cell: list[str], workdir: Path) -> dict:
  """The `jaxgan` commands that regenerate a cell's run and its metrics."""
  tr = ["jaxgan", "train", "--config", args.config, "--workdir", str(workdir),
        *(f"--config.{o}" for o in [*user, *cell])]
  ev = ["jaxgan", "eval", "--workdir", str(workdir), "--num", str(args.num)]
  return dict(train=shlex.join(tr), eval=shlex.join(ev))


def _read_json(path: Path):
  return json.loads(path.read_text()) if path.exists() else None


def _write_json(path: Path, obj) -> None:
  """Whole or not at all: a kill mid-write leaves the previous file."""
  path.parent.mkdir(parents=True, exist_ok=True)
  tmp = path.with_name(path.name + ".tmp")
  tmp.write_text(json.dumps(obj, indent=2) + "\n")
  tmp.replace(path)


def _checkpoint_steps(workdir: Path) -> list[int]:
  """The committed checkpoint steps of a run (no Orbax manager: a file check)."""
  ckpts = workdir / "checkpoints"
  return sorted(int(p.name) for p in ckpts.iterdir()
                if p.name.isdigit() and (p / COMMIT_MARKER).exists()) if ckpts.is_dir() else []


def _final_losses(workdir: Path) -> dict:
  """d_loss and g_loss of the last logged row (non-finite values are logged as strings)."""
  row = last_metrics(workdir)
  return dict(d_loss=row.get("d_loss"), g_loss=row.get("g_loss"), loss_step=row.get("step"))


def _same_config(workdir: Path, config) -> bool:
  """Whether `workdir` holds no run, or a run of `config` (the resumable keys aside)."""
  path = workdir / "config.json"
  return not path.exists() or not config_lib.config_diff(
      config_lib.config_from_json(path.read_text()), config)


def trained(workdir: Path, config):
  """The cell's training record if its run is finished for this config and steps (at its
  final checkpoint, or stopped by a NaN/Inf); else None."""
  record = _read_json(workdir / CELL_FILE)
  if record is None or record["steps"] != config.steps or not _same_config(workdir, config):
    return None
  if record["status"] == "non_finite" or config.steps in _checkpoint_steps(workdir):
    return record
  return None


def evaluated(workdir: Path, data: str, steps: int, num: int):
  """The eval metrics of the cell's final checkpoint on `num` samples of noise seed 0, or
  None."""
  metrics = _read_json(result_path(workdir, steps, data, num))
  return metrics if metrics is not None and metrics.get("num_samples") == num else None


def train_cell(config, workdir: Path, progress: bool) -> dict:
  """Trains (or resumes) one cell; returns its training record."""
  if not _same_config(workdir, config):
    raise config_lib.ConfigError(
        f"{workdir} holds a run of another config (other --config.* overrides?); use another "
        f"--workdir or delete that cell")
  start = max(_checkpoint_steps(workdir), default=0)
  record = dict(loss=config.loss, penalty=config.penalty.name,
                penalty_weight=config.penalty.weight, steps=config.steps, workdir=str(workdir))
  t0 = time.perf_counter()
  try:
    state = train(config, workdir, progress=progress)
  except NonFiniteError as e:                                        # recorded, not raised
    record.update(status="non_finite", non_finite_step=e.step, error=str(e))
  else:
    if int(state.step) != config.steps:
      raise RuntimeError(f"{workdir}: training stopped at step {int(state.step)} of "
                         f"{config.steps} (SIGTERM, or checkpoints beyond --steps); re-run to "
                         f"resume the table")
    record["status"] = "trained"
  # wall seconds of this call (compilation included); train_start_step > 0: a resumed run
  return dict(record, train_seconds=time.perf_counter() - t0, train_start_step=start,
              **_final_losses(workdir))


def run_cell(args, base, user: list[str], loss: str, penalty: str) -> dict:
  """One cell, trained and evaluated where not done yet; returns its record with its metrics
  (the record is also written to WORKDIR/LOSS/PENALTY/CELL_FILE)."""
  cell = cell_overrides(base, loss, penalty, args.steps)
  config = config_lib.apply_overrides(base, cell)
  workdir = Path(args.workdir) / loss / penalty
  done = done_cell(args, base, loss, penalty)
  if done is not None:                                       # neither retrained nor re-evaluated
    return done
  commands = _commands(args, user, cell, workdir)
  record, metrics = trained(workdir, config), None
  if record is None:
    print(f"[table] {loss}/{penalty}: training {args.steps} steps", flush=True)
    record = dict(train_cell(config, workdir, not args.no_progress), commands=commands)
    _write_json(workdir / CELL_FILE, record)                 # a kill before the eval keeps it
  if record["status"] != "non_finite":
    metrics = evaluate_run(workdir, args.num)
    record["status"] = eval_status(metrics)
  record["commands"] = commands
  _write_json(workdir / CELL_FILE, record)
  return with_metrics(record, metrics)


def done_cell(args, base, loss: str, penalty: str):
  """The cell's result if it was trained and evaluated earlier at these settings, else None."""
  config = config_lib.apply_overrides(base, cell_overrides(base, loss, penalty, args.steps))
  workdir = Path(args.workdir) / loss / penalty
  record = trained(workdir, config)
  metrics = None if record is None else evaluated(workdir, base.data.name, args.steps, args.num)
  if record is not None and (metrics is not None or record["status"] == "non_finite"):
    return with_metrics(record, metrics)
  return None


def eval_status(metrics: dict) -> str:
  """ok, or non_finite_samples when the Evaluator met NaN/Inf samples (then no scores)."""
  return "non_finite_samples" if "non_finite_samples" in metrics else "ok"


def with_metrics(record: dict, metrics) -> dict:
  """A cell's result: its record, the table's metrics at the top (None where not scored),
  `diverged`, and the whole eval JSON under `eval`."""
  if record["status"] == "trained":                  # killed after its eval, before the record
    record = dict(record, status=eval_status(metrics))
  scored = record["status"] == "ok"
  return dict(record, diverged=not scored,
              **{k: metrics[k] if scored else None for k in METRICS}, eval=metrics)


def environment(args, argv: list[str], data: str) -> dict:
  """Where and how the table was made."""
  try:
    commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                            cwd=Path(__file__).resolve().parents[1], check=True).stdout.strip()
  except (OSError, subprocess.CalledProcessError):
    commit = None
  dev = jax.devices()[0]
  return dict(date=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
              jax=jax.__version__, jaxlib=importlib.metadata.version("jaxlib"),
              device=dev.device_kind if dev.device_kind.lower().startswith(dev.platform)
              else f"{dev.platform} {dev.device_kind}", device_count=jax.device_count(),
              python=platform.python_version(), machine=platform.platform(), git_commit=commit,
              command=shlex.join(["python", "experiments/loss_penalty_fid.py", *argv]),
              config=args.config, data=data, steps=args.steps, num=args.num, eval_seed=0,
              penalty_weights=PENALTY_WEIGHTS)


def _fmt(v, spec=".3g") -> str:
  if v is None:
    return "-"
  if isinstance(v, str):
    return v
  return format(v, spec)


def _fid_cell(record) -> str:
  if record is None:
    return "-"
  if record["status"] == "non_finite":
    return f"NaN (step {record['non_finite_step']})"
  if record["status"] == "non_finite_samples":
    return "NaN samples"
  return f"{record['fid']:.2f}"


def _train_time(record) -> str:
  """Wall seconds of training; a resumed run's only cover the steps after its restart."""
  start = record["train_start_step"]
  return f"{record['train_seconds']:.0f}" + (f" (from step {start})" if start else "")


def markdown(cells: dict, env: dict) -> str:
  """Table 1: FID, rows = loss, columns = penalty; table 2: every metric of every cell."""
  weights = ", ".join(f"{p} {_fmt(w) if w is not None else 'config'}"
                      for p, w in PENALTY_WEIGHTS.items())
  data = "MNIST-5k" if env["data"] == "mnist5k" else env["data"]
  lines = [f"{data} FID (the shipped MNIST classifier's features, {env['num']} samples), "
           f"{env['steps']} steps; penalty weights: {weights}.", "",
           f"Command: `{env['command']}` ({env['date']}, jax {env['jax']}, {env['device']})", "",
           "| loss | " + " | ".join(PENALTIES) + " |",
           "| --- |" + " --- |" * len(PENALTIES)]
  for loss in LOSSES:
    lines.append(f"| {loss} | " + " | ".join(_fid_cell(cells.get(f"{loss}/{p}"))
                                            for p in PENALTIES) + " |")
  cols = ("KID", "precision", "recall", "density", "coverage", "IS", "classes", "d_loss",
          "g_loss", "train s", "status")
  lines += ["", "| loss | penalty | " + " | ".join(cols) + " |",
            "| --- | --- |" + " --- |" * len(cols)]
  for loss in LOSSES:
    for p in PENALTIES:
      r = cells.get(f"{loss}/{p}")
      if r is None:
        continue
      vals = [_fmt(r[k]) for k in METRICS[1:]] + [
          _fmt(r["d_loss"]), _fmt(r["g_loss"]), _train_time(r), r["status"]]
      lines.append(f"| {loss} | {p} | " + " | ".join(vals) + " |")
  return "\n".join(lines) + "\n"


def _parser() -> argparse.ArgumentParser:
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                              epilog="--config.KEY=VALUE overrides the base config of every "
                                     "cell (not loss, penalty.name, penalty.weight or steps: "
                                     "the table sets them)")
  p.add_argument("--workdir", default="runs/loss_penalty",
                 help="one run per cell: DIR/LOSS/PENALTY (default %(default)s)")
  p.add_argument("--config", default=CONFIG, help="base config (default %(default)s)")
  p.add_argument("--steps", type=int, default=None, help="training steps (default: the config's)")
  p.add_argument("--num", type=int, default=NUM_IMAGE_SAMPLES,
                 help="eval samples (default %(default)s)")
  p.add_argument("--only", default="", help="train only these cells: LOSS/PENALTY[,LOSS/PENALTY]")
  p.add_argument("--out", default=None, help="results JSON (default WORKDIR/loss_penalty_fid.json)")
  p.add_argument("--markdown", default=None, help="also write the markdown tables here")
  p.add_argument("--no-progress", action="store_true", help="no progress bar while training")
  return p


def split_overrides(argv: list[str]) -> tuple[list[str], list[str]]:
  """(the script's arguments, the `--config.KEY=VALUE` overrides as KEY=VALUE)."""
  rest = [a for a in argv if not a.startswith("--config.")]
  user = [a[len("--config."):] for a in argv if a.startswith("--config.")]
  bad = [o for o in user if "=" not in o]
  if bad:
    raise config_lib.ConfigError(f"--config.{bad[0]}: write overrides as --config.KEY=VALUE")
  fixed = [o for o in user if o.split("=", 1)[0] in TABLE_KEYS]
  if fixed:
    raise config_lib.ConfigError(f"{', '.join(fixed)}: the table sets loss, penalty.name, "
                                 f"penalty.weight and steps (use --steps; the weights are "
                                 f"PENALTY_WEIGHTS in this script)")
  return rest, user


def main(argv=None) -> dict:
  """Runs the missing cells, writes --out (and --markdown); returns the results."""
  argv = sys.argv[1:] if argv is None else list(argv)
  rest, user = split_overrides(argv)
  args = _parser().parse_args(rest)
  base = config_lib.apply_overrides(config_lib.load_config_file(args.config), user)
  args.steps = args.steps or base.steps
  if args.steps < 1 or args.num < 2:
    raise config_lib.ConfigError(f"--steps must be >= 1 and --num >= 2, got {args.steps} and "
                                 f"{args.num}")
  todo = parse_only(args.only) or [(l, p) for l in LOSSES for p in PENALTIES]
  cells = {}
  for loss, penalty in todo:
    r = cells[f"{loss}/{penalty}"] = run_cell(args, base, user, loss, penalty)
    print(f"[table] {loss}/{penalty}: {r['status']}, FID {_fid_cell(r)}", flush=True)
  for loss in LOSSES:                       # cells done earlier at these settings (not --only)
    for penalty in PENALTIES:
      r = None if f"{loss}/{penalty}" in cells else done_cell(args, base, loss, penalty)
      if r is not None:
        cells[f"{loss}/{penalty}"] = r
  env = environment(args, argv, base.data.name)
  missing = [f"{l}/{p}" for l in LOSSES for p in PENALTIES if f"{l}/{p}" not in cells]
  results = dict(environment=env, cells={k: cells[k] for k in sorted(cells)}, missing=missing)
  _write_json(Path(args.out or Path(args.workdir) / "loss_penalty_fid.json"), results)
  table = markdown(cells, env)
  print(table)
  if args.markdown:
    Path(args.markdown).parent.mkdir(parents=True, exist_ok=True)
    Path(args.markdown).write_text(table)
  return results


if __name__ == "__main__":
  try:
    main()
  except config_lib.ConfigError as e:
    print(f"loss_penalty_fid: error: {e}", file=sys.stderr)
    sys.exit(2)
