"""A small CNN digit classifier for MNIST-like 28x28x1 images, shipped as an Orbax checkpoint.

Its 128-d penultimate features give the 'MNIST-5k FID (classifier features)'; its predictions
give class coverage and the Stacked MNIST modes. It is trained by
`experiments/train_mnist_classifier.py` on the embedded 5k MNIST digits minus a held-out
100 per class (`holdout_split`), and its held-out accuracy is recorded next to the weights in
`assets/mnist_classifier.json`.
"""
import json
from pathlib import Path
from typing import Optional

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jaxgan.metrics.features import FeatureExtractor, resize_to

ASSET = Path(__file__).resolve().parent / "assets" / "mnist_classifier"
NUM_CLASSES = 10


class MNISTClassifier(nn.Module):
  """[B, H, W, 1] in [-1, 1] (resized to 28x28) -> (features [B, 128], logits [B, 10])."""
  width: int = 32
  feature_dim: int = 128

  @nn.compact
  def __call__(self, x):
    x = resize_to(x, 28, 1)                                          # [B, 28, 28, 1]
    for _ in range(2):
      x = nn.relu(nn.Conv(self.width, (3, 3))(x))
      x = nn.max_pool(x, (2, 2), (2, 2))                             # 28 -> 14 -> 7
    x = x.reshape((x.shape[0], -1))                                  # [B, 7*7*w]
    features = nn.relu(nn.Dense(self.feature_dim)(x))                # [B, 128]
    return features, nn.Dense(NUM_CLASSES)(features)                 # [B, 10]


def holdout_split(labels: np.ndarray, per_class: int = 100, seed: int = 0):
  """(train indices, held-out indices): `per_class` examples of each class held out, chosen
  by a seeded permutation (the split the shipped classifier was trained and tested with)."""
  labels = np.asarray(labels)
  perm = np.random.default_rng(seed).permutation(labels.shape[0])
  test = np.concatenate([perm[labels[perm] == c][:per_class] for c in np.unique(labels)])
  train = np.setdiff1d(np.arange(labels.shape[0]), test)
  return train, np.sort(test)


def init_variables(module: nn.Module, key: jax.Array):
  return module.init(key, jnp.zeros((1, 28, 28, 1), jnp.float32))


def save_classifier(path, variables) -> None:
  import orbax.checkpoint as ocp
  with ocp.StandardCheckpointer() as ckptr:
    ckptr.save(Path(path).absolute(), variables, force=True)


def load_mnist_classifier(path: Optional[str] = None, batch_size: int = 500) -> FeatureExtractor:
  """The shipped classifier (or one saved by `save_classifier` at `path`) as an extractor."""
  import orbax.checkpoint as ocp
  path = Path(path or ASSET).absolute()
  if not path.is_dir():
    raise FileNotFoundError(f"no classifier checkpoint at {path}; train one with "
                            f"`python experiments/train_mnist_classifier.py`")
  module = MNISTClassifier()
  # on this process's first device: the saved sharding names a device (cpu:0) that another
  # process of a multi-process run does not have
  device = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
  template = jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=device),
                          jax.eval_shape(lambda: init_variables(module, jax.random.key(0))))
  with ocp.StandardCheckpointer() as ckptr:
    variables = ckptr.restore(path, template)
  return FeatureExtractor("mnist_classifier", module, variables, batch_size)


def shipped_accuracy() -> dict:
  """The held-out accuracy record written by the training script next to the weights."""
  return json.loads(ASSET.with_suffix(".json").read_text())
