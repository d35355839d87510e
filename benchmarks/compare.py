"""The CPU comparison grid: jaxgan and PyTorch eager side by side, one command.

  python benchmarks/compare.py --out benchmarks/results/cpu.json --write

Runs benchmarks/train_step.py for each row of GRID with --peer jaxgan,torch,torch-1thread
(interleaved in one process, so load from other processes hits all alike), writes all
results to one JSON and prints the table; --write also puts it into benchmarks/RESULTS.md.
About 6-8 minutes on a loaded 2-core machine.
"""
import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import report  # noqa: E402
from benchmarks import train_step as bench  # noqa: E402

PEERS = "jaxgan,torch,torch-1thread"
GRID = [
    "--model mlp --batch-size 64 --penalty none",
    "--model mlp --batch-size 64 --penalty r1",
    "--model dcgan32 --batch-size 64 --penalty none",
    "--model dcgan32 --batch-size 64 --penalty r1",
    # what the speed-ups below are worth, one at a time
    "--model mlp --batch-size 64 --penalty r1 --steps-per-call 8",
    "--model dcgan32 --batch-size 64 --penalty r1 --penalty-every 16",
    "--model dcgan32 --batch-size 64 --penalty none --precision bf16",
    # the before state: plain Flax convs (the old default G upsampling was 3x3 sub-pixel)
    "--model dcgan32 --batch-size 64 --penalty none --upsample subpixel --layers plain",
    "--model dcgan32 --batch-size 64 --penalty r1 --upsample subpixel --layers plain",
]


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  p.add_argument("--out", default="benchmarks/results/cpu.json")
  p.add_argument("--repeats", type=int, default=5)
  p.add_argument("--rows", default=None, help="comma list of GRID row numbers (1-based)")
  p.add_argument("--write", action="store_true", help="update the table in RESULTS.md")
  args = p.parse_args(argv)
  rows = [int(i) for i in args.rows.split(",")] if args.rows else range(1, len(GRID) + 1)
  results = []
  for i in rows:
    # plain layers patch jaxgan's module for the rest of the process: run them last
    results.append(bench.main(GRID[i - 1].split() + ["--peer", PEERS,
                                                     "--repeats", str(args.repeats)]))
  Path(args.out).parent.mkdir(parents=True, exist_ok=True)
  Path(args.out).write_text(json.dumps(results, indent=1))
  text = report.table(results)
  print(text)
  if args.write:
    report.write_results_md(text)


if __name__ == "__main__":
  main()
