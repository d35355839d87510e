"""The seed article's MLP generator and discriminator.

Models are plain Flax linen modules: they map noise to data and data to logits and know
nothing of losses, optimizers or meshes.
"""
from typing import Any, Sequence

import flax.linen as nn
import jax.numpy as jnp
import numpy as np

from jaxgan.models.layers import SNEmbed, depth_to_space, minibatch_std

ACTIVATIONS = {"tanh": jnp.tanh, "none": lambda x: x}
# Hidden-layer activations of the discriminator (G's hidden layers are ReLU).
D_ACTIVATIONS = {"relu": nn.relu, "leaky_relu": lambda x: nn.leaky_relu(x, 0.2)}


class MLPGenerator(nn.Module):
  """z [B, latent] (, y [B]) -> x [B, *out_shape]; the seed's 100 -> 128 -> 256 -> 784, tanh.

  Conditional (`num_classes` > 0): a learned class embedding [num_classes, class_embed]
  (N(0, 1) init, as torch's nn.Embedding) is concatenated to z: G([z, E(y)]).

  With `out_conv = F > 0` (images [H, W, C] only, H and W even) the last Dense layer makes a
  [H/2, W/2, F] ReLU feature map instead of the pixels, and a 3x3 conv to 4C channels +
  depth-to-space makes the image: each 2x2 block of pixels reads a 3x3 neighbourhood of
  features, so neighbouring pixels share their inputs (an MLP's output pixels share none).
  """
  out_shape: Sequence[int]
  hidden: Sequence[int] = (128, 256)
  out_activation: str = "tanh"
  dtype: Any = jnp.float32       # compute dtype; params stay float32, the output is float32
  batch_norm: bool = False       # BatchNorm before each hidden ReLU (G's 'batch_stats')
  out_conv: int = 0              # > 0: feature maps of the sub-pixel conv output layer
  num_classes: int = 0           # > 0: class-conditional, G(z, y)
  class_embed: int = 32          # width of the class embedding concatenated to z

  @nn.compact
  def __call__(self, z, y=None, train: bool = True):
    h = z
    if self.num_classes:
      e = nn.Embed(self.num_classes, self.class_embed, embedding_init=nn.initializers.normal(1.0),
                   name="class_embed")(y)                            # [B, class_embed]
      h = jnp.concatenate([z, e.astype(z.dtype)], axis=-1)           # [B, latent + class_embed]
    for width in self.hidden:
      h = nn.Dense(width, dtype=self.dtype)(h)
      if self.batch_norm:
        h = nn.BatchNorm(use_running_average=not train, momentum=0.9, dtype=self.dtype)(h)
      h = nn.relu(h)
    if self.out_conv:
      x = self._subpixel_out(h)                                      # [B, H, W, C]
    else:
      x = nn.Dense(int(np.prod(self.out_shape)), dtype=self.dtype)(h)  # [B, prod(out_shape)]
    x = ACTIVATIONS[self.out_activation](x).astype(jnp.float32)
    return x.reshape((z.shape[0], *self.out_shape))                  # [B, *out_shape]

  def _subpixel_out(self, h):
    if len(self.out_shape) != 3 or self.out_shape[0] % 2 or self.out_shape[1] % 2:
      raise ValueError(f"MLPGenerator(out_conv > 0) makes images [H, W, C] with even H and W; "
                       f"out_shape is {tuple(self.out_shape)}")
    rows, cols, channels = self.out_shape[0] // 2, self.out_shape[1] // 2, self.out_shape[2]
    h = nn.Dense(rows * cols * self.out_conv, dtype=self.dtype)(h)
    h = nn.relu(h.reshape(h.shape[0], rows, cols, self.out_conv))    # [B, H/2, W/2, F]
    x = nn.Conv(4 * channels, (3, 3), padding=((1, 1), (1, 1)), dtype=self.dtype)(h)
    return depth_to_space(x, 2)                                      # [B, H, W, C]


class MLPDiscriminator(nn.Module):
  """x [B, ...] (, y [B]) -> logits [B]; the seed's 784 -> 256 -> 128 -> 1.

  Conditional (`num_classes` > 0): a projection discriminator on the last hidden layer h,
  logit = psi(h) + <E(y), h> (Miyato & Koyama 2018), E [num_classes, F] spectrally normalised
  when `spectral_norm` (layers.SNEmbed); psi is the unconditional output layer."""
  hidden: Sequence[int] = (256, 128)
  spectral_norm: bool = False
  dtype: Any = jnp.float32       # compute dtype; params stay float32, logits are float32
  activation: str = "relu"       # hidden layers: "relu" (the seed's) or "leaky_relu" (0.2)
  minibatch_std: int = 0         # > 0: a minibatch-std feature over groups of this many
                                 # examples, into the last hidden layer (layers.minibatch_std)
  num_classes: int = 0           # > 0: class-conditional (projection), D(x, y)

  @nn.compact
  def __call__(self, x, y=None, train: bool = True):
    act = D_ACTIVATIONS[self.activation]
    h = x.reshape((x.shape[0], -1))                                  # [B, D]
    for i, width in enumerate(self.hidden):
      if self.minibatch_std and i == len(self.hidden) - 1:
        h = minibatch_std(h, self.minibatch_std)                     # [B, F + 1]
      h = act(self._dense(width, h, train))
    if self.minibatch_std and not self.hidden:
      h = minibatch_std(h, self.minibatch_std)                       # [B, D + 1]
    out = self._dense(1, h, train)[:, 0]                             # [B]
    if self.num_classes:
      e = SNEmbed(self.num_classes, h.shape[-1], self.spectral_norm, name="class_embed")(y, train)
      out = out + jnp.sum(e.astype(h.dtype) * h, axis=-1)            # + <E(y), h>
    return out.astype(jnp.float32)                                   # [B]

  def _dense(self, width, h, train):
    layer = nn.Dense(width, dtype=self.dtype)
    if self.spectral_norm:
      return nn.SpectralNorm(layer)(h, update_stats=train)
    return layer(h)
