"""FID (MNIST classifier features, against all 5,000 embedded digits) of the limited-data
config for each fraction of the digits x each augmentation, mean +- std over seeds, each cell
one `jaxgan sweep` (its summary scores every member's final checkpoint, noise seed 12345).

  fractions     100% (data.limit 0), 10% (500 digits), 2% (100 digits), class-balanced
  augmentation  none | DiffAugment (color,translation,cutout) | ADA (experiments/mnist_limited.py)

Run (9 sweeps of 3 members):
  python experiments/limited_data_grid.py --workdir runs/limited --seeds 3 \\
      --out experiments/results/limited_data_grid.json

A cell whose sweep has a summary.json is not re-run (a re-run finishes an interrupted grid).
`--only 10%` (comma-separated fractions) runs only those rows.
"""
import argparse
import json
import shlex
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CONFIG = "experiments/mnist_limited.py"
FRACTIONS = {"100%": 0, "10%": 500, "2%": 100}                       # name -> data.limit
AUGMENT = {"none": "", "diffaugment": "color,translation,cutout", "ada": "ada"}
METRICS = ("fid", "kid", "precision", "recall", "augment_p")


def command(workdir: Path, seeds: int, frac: str, aug: str, extra=()) -> list[str]:
  return ["jaxgan", "sweep", "--config", CONFIG, "--seeds", str(seeds),
          f"--config.data.limit={FRACTIONS[frac]}", f"--config.augment.policy={AUGMENT[aug]}",
          *extra, "--workdir", str(workdir / f"{frac.rstrip('%')}pct_{aug}"), "--no-progress"]


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--workdir", default="runs/limited")
  p.add_argument("--seeds", type=int, default=3)
  p.add_argument("--only", default=",".join(FRACTIONS), help="fractions to run, e.g. 10%,2%")
  p.add_argument("--out", default=None, help="JSON of the table")
  args, extra = p.parse_known_args(argv)
  workdir = Path(args.workdir)
  rows = {}
  for frac in FRACTIONS:
    for aug in AUGMENT:
      cmd = command(workdir, args.seeds, frac, aug, extra)
      cell = Path(cmd[-2])
      if frac in args.only.split(",") and not (cell / "summary.json").exists():
        t0 = time.time()
        print("+", shlex.join(cmd), flush=True)
        subprocess.run([sys.executable, "-m", "jaxgan", *cmd[1:]], check=True, cwd=ROOT)
        print(f"  {time.time() - t0:.0f} s", flush=True)
      if (cell / "summary.json").exists():
        agg = json.loads((cell / "summary.json").read_text())["aggregate"]["all"]
        rows[f"{frac}/{aug}"] = dict(command=shlex.join(cmd[:-1]),
                                     **{k: agg[k] for k in METRICS if k in agg})
  print("| digits | none | DiffAugment | ADA |\n| --- | --- | --- | --- |")
  for frac in FRACTIONS:
    cells = [rows.get(f"{frac}/{aug}", {}).get("fid") for aug in AUGMENT]
    print(f"| {frac} | " + " | ".join(f"{c['mean']:.1f} +- {c['std']:.1f}" if c else "-"
                                      for c in cells) + " |")
  if args.out:
    Path(args.out).write_text(json.dumps(rows, indent=2) + "\n")
  return rows


if __name__ == "__main__":
  main()
