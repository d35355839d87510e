"""The seed article's MLP generator and discriminator.

Models are plain Flax linen modules: they map noise to data and data to logits and know
nothing of losses, optimizers or meshes.
"""
from typing import Any, Sequence

import flax.linen as nn
import jax.numpy as jnp
import numpy as np

from jaxgan.models.layers import minibatch_std

ACTIVATIONS = {"tanh": jnp.tanh, "none": lambda x: x}
# Hidden-layer activations of the discriminator (G's hidden layers are ReLU).
D_ACTIVATIONS = {"relu": nn.relu, "leaky_relu": lambda x: nn.leaky_relu(x, 0.2)}


class MLPGenerator(nn.Module):
  """z [B, latent] -> x [B, *out_shape]; the seed's 100 -> 128 -> 256 -> 784, tanh."""
  out_shape: Sequence[int]
  hidden: Sequence[int] = (128, 256)
  out_activation: str = "tanh"
  dtype: Any = jnp.float32       # compute dtype; params stay float32, the output is float32
  batch_norm: bool = False       # BatchNorm before each hidden ReLU (G's 'batch_stats')

  @nn.compact
  def __call__(self, z, train: bool = True):
    h = z
    for width in self.hidden:
      h = nn.Dense(width, dtype=self.dtype)(h)
      if self.batch_norm:
        h = nn.BatchNorm(use_running_average=not train, momentum=0.9, dtype=self.dtype)(h)
      h = nn.relu(h)
    x = nn.Dense(int(np.prod(self.out_shape)), dtype=self.dtype)(h)  # [B, prod(out_shape)]
    x = ACTIVATIONS[self.out_activation](x).astype(jnp.float32)
    return x.reshape((z.shape[0], *self.out_shape))                  # [B, *out_shape]


class MLPDiscriminator(nn.Module):
  """x [B, ...] -> logits [B]; the seed's 784 -> 256 -> 128 -> 1."""
  hidden: Sequence[int] = (256, 128)
  spectral_norm: bool = False
  dtype: Any = jnp.float32       # compute dtype; params stay float32, logits are float32
  activation: str = "relu"       # hidden layers: "relu" (the seed's) or "leaky_relu" (0.2)
  minibatch_std: int = 0         # > 0: a minibatch-std feature over groups of this many
                                 # examples, into the last hidden layer (layers.minibatch_std)

  @nn.compact
  def __call__(self, x, train: bool = True):
    act = D_ACTIVATIONS[self.activation]
    h = x.reshape((x.shape[0], -1))                                  # [B, D]
    for i, width in enumerate(self.hidden):
      if self.minibatch_std and i == len(self.hidden) - 1:
        h = minibatch_std(h, self.minibatch_std)                     # [B, F + 1]
      h = act(self._dense(width, h, train))
    if self.minibatch_std and not self.hidden:
      h = minibatch_std(h, self.minibatch_std)                       # [B, D + 1]
    return self._dense(1, h, train)[:, 0].astype(jnp.float32)        # [B]

  def _dense(self, width, h, train):
    layer = nn.Dense(width, dtype=self.dtype)
    if self.spectral_norm:
      return nn.SpectralNorm(layer)(h, update_stats=train)
    return layer(h)
