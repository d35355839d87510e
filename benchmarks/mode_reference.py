"""The mode metrics of the real data: what a perfect generator would score.

  python benchmarks/mode_reference.py [--seeds 10] [--out benchmarks/mode_reference.json]

Draws the benchmark's sample count (2,500 for grid25/ring8, 26,000 for Stacked MNIST) from
the data source itself, per seed, and scores it exactly as `jaxgan sweep` scores a generator
(Stacked MNIST with the shipped MNIST classifier). Even the data has KL > 0: a finite sample's
histogram is not exactly uniform, and the classifier errs on some digits.
"""
import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from jaxgan import data as data_lib  # noqa: E402
from jaxgan.metrics import modes  # noqa: E402
from jaxgan.metrics.classifier import load_mnist_classifier  # noqa: E402


def reference(name: str, seed: int, classify=None) -> dict:
  if name == "stacked_mnist":
    x = np.asarray(data_lib.stacked_mnist_source(modes.NUM_STACKED_SAMPLES, seed).batch(0)["image"])
    return modes.stacked_mnist_metrics(x, classify)
  x = np.asarray(data_lib.mixture_source(name, modes.NUM_MIXTURE_SAMPLES, seed).batch(0)["image"])
  return modes.mixture_metrics(x, name)


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--seeds", type=int, default=10)
  p.add_argument("--out", default=str(Path(__file__).with_suffix(".json")))
  args = p.parse_args(argv)
  classify = load_mnist_classifier().predict
  result = {}
  for name in ("grid25", "ring8", "stacked_mnist"):
    rows = [reference(name, s, classify) for s in range(args.seeds)]
    result[name] = {k: dict(mean=float(np.mean([r[k] for r in rows])),
                            std=float(np.std([r[k] for r in rows], ddof=1)))
                    for k in rows[0]}
    print(name, {k: f"{v['mean']:.4g} +- {v['std']:.2g}" for k, v in result[name].items()})
  result["command"] = f"python benchmarks/mode_reference.py --seeds {args.seeds}"
  Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
  print(f"wrote {args.out}")


if __name__ == "__main__":
  main()
