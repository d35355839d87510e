"""Trains the metrics' MNIST classifier (jaxgan/metrics/classifier.py) on the embedded 5k digits.

100 digits per class are held out (`holdout_split`, seed 0); the rest (4,000) train a small
CNN with Adam and random +-2 pixel shifts. Writes the Orbax checkpoint to
jaxgan/metrics/assets/mnist_classifier/ and the held-out accuracy to
jaxgan/metrics/assets/mnist_classifier.json.

Run:
  python experiments/train_mnist_classifier.py [--steps 2000] [--out DIR]
"""
import argparse
import functools
import json
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from jaxgan.data import load_embedded_images, load_embedded_labels  # noqa: E402
from jaxgan.metrics import classifier as clf  # noqa: E402


def _shift(key, x, max_shift: int = 2):
  """Random translation of each image by up to `max_shift` pixels (zero = -1 padding)."""
  b, h, w, _ = x.shape
  s = max_shift
  padded = jnp.pad(x, ((0, 0), (s, s), (s, s), (0, 0)), constant_values=-1.0)
  offsets = jax.random.randint(key, (b, 2), 0, 2 * s + 1)
  crop = lambda img, o: jax.lax.dynamic_slice(img, (o[0], o[1], 0), (h, w, img.shape[-1]))
  return jax.vmap(crop)(padded, offsets)                             # [B, H, W, 1]


def _loss(module, params, x, y):
  _, logits = module.apply({"params": params}, x)
  return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()


def _step(module, tx, params, opt_state, key, step, images, labels, batch_size):
  key = jax.random.fold_in(key, step)
  k_idx, k_shift = jax.random.split(key)
  idx = jax.random.randint(k_idx, (batch_size,), 0, images.shape[0])
  x = _shift(k_shift, images[idx])                                   # [B, 28, 28, 1]
  loss, grads = jax.value_and_grad(functools.partial(_loss, module))(params, x, labels[idx])
  updates, opt_state = tx.update(grads, opt_state, params)
  return optax.apply_updates(params, updates), opt_state, loss


def train_classifier(images, labels, steps: int = 2000, batch_size: int = 128,
                     lr: float = 1e-3, seed: int = 0):
  """Trains `MNISTClassifier` on images [N, 28, 28, 1] in [-1, 1] and int labels [N]."""
  module = clf.MNISTClassifier()
  params = clf.init_variables(module, jax.random.key(seed))["params"]
  tx = optax.adam(optax.cosine_decay_schedule(lr, steps))
  opt_state = tx.init(params)
  step = jax.jit(functools.partial(_step, module, tx, batch_size=batch_size),
                 donate_argnums=(0, 1))
  images, labels = jnp.asarray(images), jnp.asarray(labels)
  key = jax.random.key(seed + 1)
  for i in range(steps):
    params, opt_state, loss = step(params, opt_state, key, i, images, labels)
    if (i + 1) % 500 == 0:
      print(f"step {i + 1}: loss {float(loss):.4f}", flush=True)
  return {"params": params}


def accuracy(extractor, images, labels) -> float:
  return float(np.mean(extractor.predict(images) == np.asarray(labels)))


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--steps", type=int, default=2000)
  p.add_argument("--seed", type=int, default=0)
  p.add_argument("--out", default=str(clf.ASSET), help="checkpoint directory")
  args = p.parse_args(argv)
  x, y = load_embedded_images("mnist5k"), load_embedded_labels("mnist5k")
  train_idx, test_idx = clf.holdout_split(y)
  t0 = time.perf_counter()
  variables = train_classifier(x[train_idx], y[train_idx], args.steps, seed=args.seed)
  clf.save_classifier(args.out, variables)
  extractor = clf.load_mnist_classifier(args.out)
  record = dict(test_accuracy=accuracy(extractor, x[test_idx], y[test_idx]),
                train_accuracy=accuracy(extractor, x[train_idx], y[train_idx]),
                num_train=int(train_idx.size), num_test=int(test_idx.size),
                steps=args.steps, seed=args.seed, train_seconds=round(time.perf_counter() - t0, 1),
                command="python experiments/train_mnist_classifier.py"
                        + (f" --steps {args.steps}" if args.steps != 2000 else "")
                        + (f" --seed {args.seed}" if args.seed else ""))
  Path(args.out).absolute().with_suffix(".json").write_text(json.dumps(record, indent=2) + "\n")
  print(json.dumps(record))


if __name__ == "__main__":
  main()
