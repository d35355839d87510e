"""One interface for the networks that embed images for the metrics.

  extractor = load_mnist_classifier()              # or load_fid_inception("fid_inception.npz")
  f = extractor.features(images)                   # [N, D] (penultimate / pool features)
  y = extractor.logits(images)                     # [N, C]

`images` are [N, H, W, C] in [-1, 1] (the data's own range); each network resizes and converts
channels itself, inside its jitted apply. Work is done in fixed-size batches (the last one is
padded), so one compilation serves any N.
"""
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jaxgan.data import as_images


class FeatureExtractor:
  """A Flax module `images -> (features [B, D], logits [B, C])` with its variables."""

  def __init__(self, name: str, module: nn.Module, variables: Any, batch_size: int = 256):
    self.name = name
    self.module = module
    self.variables = variables
    self.batch_size = int(batch_size)
    self._apply = jax.jit(lambda v, x: module.apply(v, x))

  def features_and_logits(self, images) -> tuple[np.ndarray, np.ndarray]:
    """(features [N, D], logits [N, C]) as float32 host arrays."""
    x = as_images(images, f"{self.name} input")                     # [N, H, W, C] in [-1, 1]
    n, b = x.shape[0], self.batch_size
    feats, logits = [], []
    for i in range(0, n, b):
      chunk = x[i:i + b]
      pad = b - chunk.shape[0]
      if pad:
        chunk = np.concatenate([chunk, np.zeros((pad, *chunk.shape[1:]), chunk.dtype)])
      f, y = self._apply(self.variables, jnp.asarray(chunk))
      feats.append(np.asarray(f)[:b - pad])
      logits.append(np.asarray(y)[:b - pad])
    return np.concatenate(feats), np.concatenate(logits)

  def features(self, images) -> np.ndarray:
    return self.features_and_logits(images)[0]

  def logits(self, images) -> np.ndarray:
    return self.features_and_logits(images)[1]

  def predict(self, images) -> np.ndarray:
    """Arg-max class labels [N]."""
    return np.argmax(self.logits(images), axis=1)


def resize_to(x: jax.Array, size: int, channels: int) -> jax.Array:
  """Bilinear resize of [B, H, W, C] to [B, size, size, C'] (gray -> RGB by repetition)."""
  if x.shape[-1] != channels:
    if x.shape[-1] == 1:
      x = jnp.repeat(x, channels, axis=-1)
    else:
      raise ValueError(f"expected images with 1 or {channels} channels, got shape {x.shape}")
  if x.shape[1:3] != (size, size):
    x = jax.image.resize(x, (x.shape[0], size, size, channels), "bilinear")
  return x
