"""Why a mode benchmark falls short: where a run's samples land, beyond the headline metrics.

For a 2D mixture (grid25, ring8), of the samples that `jaxgan.metrics.modes` scores:
  far_percent         % beyond 5 std of every mean (between modes: "bridges", not wide modes)
  dist_std_q50/90/99  quantiles of the distance to the nearest mean, in units of the data std
                      (real data: 1.18 / 2.15 / 3.03, a 2D Gaussian's radius)
  cluster_std_ratio   median over modes of the generated cluster's std (samples within 3 std)
                      over the data's std: < 1 means the modes are sharper than the data's
For Stacked MNIST: each channel's digit frequencies and the classifier's mean top probability
  on generated digits (damaged digits are read with low confidence), beside its mean top
  probability on the 5,000 embedded real digits.

Samples use the summaries' noise seed (jaxgan.sweep.EVAL_NOISE_SEED), EMA generator.

Run (a run directory, or a sweep directory for all its members):
  python experiments/mode_diagnostics.py runs/grid25_sweep [--out FILE.json]
"""
import argparse
import functools
import json
import sys
from pathlib import Path
from typing import Optional

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from jaxgan.data import MIXTURE_STD, load_embedded_images, mixture_means  # noqa: E402
from jaxgan.eval import Evaluator  # noqa: E402
from jaxgan.metrics.classifier import load_mnist_classifier  # noqa: E402
from jaxgan.sweep import EVAL_NOISE_SEED  # noqa: E402
from jaxgan.runs import load_run  # noqa: E402


def mixture_diagnostics(x: np.ndarray, name: str) -> dict:
  """x: samples [N, 2] of the mixture `name`."""
  means, std = mixture_means(name), MIXTURE_STD[name]
  dist = np.sqrt(((x[:, None, :] - means[None]) ** 2).sum(-1))      # [N, K]
  nearest, r = dist.argmin(1), dist.min(1) / std                     # [N], [N]
  ratios = [np.sqrt(np.mean((x[(nearest == k) & (r <= 3)] - means[k]) ** 2)) / std
            for k in range(len(means)) if np.any((nearest == k) & (r <= 3))]
  q = np.percentile(r, [50, 90, 99])
  return dict(far_percent=float(100 * np.mean(r > 5)), dist_std_q50=float(q[0]),
              dist_std_q90=float(q[1]), dist_std_q99=float(q[2]),
              cluster_std_ratio=float(np.median(ratios)) if ratios else float("nan"))


def _softmax(logits):
  p = np.exp(logits - logits.max(1, keepdims=True))
  return p / p.sum(1, keepdims=True)                                 # [M, 10]


def _probs(classifier, digits):
  return _softmax(classifier.features_and_logits(digits)[1])         # [M, 10]


@functools.lru_cache(maxsize=1)
def _real_top_prob(classifier) -> float:
  """The classifier's mean top probability on the 5,000 embedded real digits."""
  return float(_probs(classifier, load_embedded_images("mnist5k")).max(1).mean())


def stacked_diagnostics(x: np.ndarray, classifier, probs: Optional[np.ndarray] = None) -> dict:
  """x: stacked digits [N, H, W, 3]; `probs`: the classifier's probabilities for its digits
  [3N, 10] in `jaxgan.metrics.modes.stacked_modes`'s order, where already computed."""
  if probs is None:
    digits = x.transpose(0, 3, 1, 2).reshape(-1, x.shape[1], x.shape[2], 1)  # [3N, H, W, 1]
    probs = _probs(classifier, digits)                               # [3N, 10]
  labels = probs.argmax(1).reshape(-1, 3)                            # [N, 3]
  freq = [np.bincount(labels[:, c], minlength=10) / len(labels) for c in range(3)]
  return dict(channel_digit_freq=[f.round(4).tolist() for f in freq],
              mean_top_prob=float(probs.max(1).mean()),
              real_mean_top_prob=_real_top_prob(classifier))


class _KeepProbs:
  """`classify` for the Evaluator that keeps the probabilities behind its labels, so that the
  diagnostics read the metrics' own pass over the 78,000 digits instead of a second one."""

  def __init__(self, classifier):
    self.classifier, self.probs = classifier, None

  def __call__(self, digits):                                        # [M, H, W, 1] -> [M]
    _, logits = self.classifier.features_and_logits(digits)          # [M, 10]
    self.probs = _softmax(logits)
    return logits.argmax(1)                                          # = classifier.predict


@functools.lru_cache(maxsize=1)
def _classifier():
  return load_mnist_classifier()


def diagnose(workdir) -> dict:
  config, spec, state, meta = load_run(workdir)
  stacked = config.data.name == "stacked_mnist"
  keep = _KeepProbs(_classifier()) if stacked else None              # one classifier per process
  ev = Evaluator(config, spec, meta, seed=EVAL_NOISE_SEED, classify=keep)
  x = ev.samples(state)
  out = dict(workdir=str(workdir), step=int(state.step), **ev.score(x))
  if ev.kind == "mixture":
    out.update(mixture_diagnostics(x, ev.name))
  elif stacked:
    out.update(stacked_diagnostics(x, keep.classifier, keep.probs))
  return out


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("workdir")
  p.add_argument("--out", help="also write the results as JSON")
  a = p.parse_args(argv)
  wd = Path(a.workdir)
  dirs = ([wd / m for m in json.loads((wd / "sweep.json").read_text())["members"]]
          if (wd / "sweep.json").is_file() else [wd])
  rows = [diagnose(d) for d in dirs]
  for r in rows:
    print(json.dumps(r))
  if len(rows) > 1:
    keys = [k for k, v in rows[0].items() if isinstance(v, float)]
    print(json.dumps({k: dict(mean=float(np.mean([r[k] for r in rows])),
                              std=float(np.std([r[k] for r in rows], ddof=1))) for k in keys}))
  if a.out:
    Path(a.out).write_text(json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
  main()
