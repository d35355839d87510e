"""How the shipped MNIST classifier reads damaged digits: accuracy and class frequencies.

Stacked MNIST's modes and KL are the classifier's readings of generated digits. A generator's
digit imbalance could be the classifier's, not the generator's: if the classifier read every
noisy or blurred digit as a 3, "too many 3s" would say nothing about G. This script damages
the 1,000 held-out real digits (`holdout_split`, the classifier never trained on them) in the
ways generated digits are damaged -- speckle, blur, noise, a second digit's ghost, broken
strokes -- and prints the accuracy and the predicted class frequencies (real: 0.10 each).

Run:
  python experiments/classifier_robustness.py [--out FILE.json]
"""
import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from jaxgan.data import load_embedded_images, load_embedded_labels  # noqa: E402
from jaxgan.metrics.classifier import holdout_split, load_mnist_classifier  # noqa: E402


def blur(x: np.ndarray, sigma: float) -> np.ndarray:
  """Separable Gaussian blur of x [N, H, W, 1] in [-1, 1]; the border reads as background."""
  r = int(np.ceil(3 * sigma))
  k = np.exp(-0.5 * (np.arange(-r, r + 1) / sigma) ** 2)
  k /= k.sum()                                                       # [2r + 1]
  h, w = x.shape[1:3]
  p = np.pad(x + 1.0, ((0, 0), (r, r), (r, r), (0, 0)))              # background 0 after +1
  p = sum(k[i] * p[:, i:i + h] for i in range(2 * r + 1))            # [N, H, W + 2r, 1]
  p = sum(k[i] * p[:, :, i:i + w] for i in range(2 * r + 1))         # [N, H, W, 1]
  return p - 1.0


def corruptions(x: np.ndarray, seed: int = 0) -> dict:
  """{name: damaged copy of x [N, H, W, 1] in [-1, 1]}."""
  rng = np.random.default_rng(seed)
  speckle = lambda f: np.where(rng.random(x.shape) < f, rng.uniform(-1, 1, x.shape), x)
  ghost = lambda a: np.maximum(x, -1 + a * (x[rng.permutation(len(x))] + 1))
  out = {"clean": x, "speckle 3%": speckle(0.03), "speckle 8%": speckle(0.08),
         "blur sigma 0.7": blur(x, 0.7), "blur sigma 1.2": blur(x, 1.2),
         "gaussian noise 0.4": x + rng.normal(0, 0.4, x.shape),
         "ghost of a 2nd digit 0.3": ghost(0.3), "ghost of a 2nd digit 0.5": ghost(0.5),
         "20% of stroke pixels off": np.where((rng.random(x.shape) < 0.2) & (x > 0), -1.0, x)}
  return {k: np.clip(v, -1, 1).astype(np.float32) for k, v in out.items()}


def robustness(classifier, x: np.ndarray, y: np.ndarray) -> list[dict]:
  rows = []
  for name, xc in corruptions(x).items():
    pred = classifier.predict(xc)                                    # [N]
    freq = np.bincount(pred, minlength=10) / len(pred)
    rows.append(dict(corruption=name, accuracy=float(np.mean(pred == y)),
                     class_freq=freq.round(3).tolist()))
  return rows


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--out", help="also write the rows as JSON")
  a = p.parse_args(argv)
  labels = load_embedded_labels("mnist5k")
  _, test = holdout_split(labels)
  rows = robustness(load_mnist_classifier(), load_embedded_images("mnist5k")[test], labels[test])
  print(f"{'held-out digits (1,000)':26s} {'accuracy':>8s}   predicted class frequency 0..9")
  for r in rows:
    print(f"{r['corruption']:26s} {r['accuracy']:8.3f}   "
          + " ".join(f"{f:.2f}" for f in r["class_freq"]))
  if a.out:
    Path(a.out).write_text(json.dumps(rows, indent=1) + "\n")
  return rows


if __name__ == "__main__":
  main()
