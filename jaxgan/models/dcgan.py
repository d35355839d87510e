"""DCGAN generator and discriminator for 32x32 and 64x64 images (Radford et al., 2016).

DCGAN-32: z -> Dense 4x4x4w -> up 2w -> up w -> up C, BatchNorm + ReLU in G, tanh out;
D: 4x4 stride-2 convs w -> 2w -> 4w with LeakyReLU(0.2) and no norm, then a linear logit.
DCGAN-64 adds one more stage (8w).

`upsample` picks how G doubles resolution:
  - "transpose": 4x4 stride-2 transposed conv (the paper's layer), computed as four 2x2 convs
    (one per output phase) and an interleave (models/layers.py: the same function and
    parameters as nn.ConvTranspose, with no input-dilated conv, which XLA:CPU runs slowly);
  - "subpixel": 3x3 conv to 4x the channels + depth-to-space. Every 4x4 stride-2 transposed
    conv is one of these (each output phase reads a 2x2 input window, inside the 3x3 one),
    so the function class contains the paper's, at 2.25x its multiply-adds.
Conditional (`num_classes` > 0): G's BatchNorms become class-conditional BatchNorms (per-class
gain 1 and bias 0 at init on the normalised activations, layers.ConditionalBatchNorm); D is a
projection discriminator: logit = psi(flatten(h)) + <E(y), sum_{HW} h> on the last conv
features h [B, 4, 4, C] (psi the unconditional linear logit; E [num_classes, C], spectrally
normalised when D is, layers.SNEmbed).

D's stride-2 convs are plain nn.Conv with a custom VJP (models/layers.py) whose input
gradient avoids dilated convs: the G step and the gradient penalties backprop through it.
"""
from typing import Any, Sequence

import flax.linen as nn
import jax.numpy as jnp

from jaxgan.models import layers


UPSAMPLE = ("transpose", "subpixel")


class Upsample2x(nn.Module):
  features: int
  method: str = "transpose"
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x):                                             # [B, H, W, Cin]
    if self.method == "transpose":
      return layers.ConvTranspose4x4(self.features, self.dtype,
                                     name="ConvTranspose_0")(x)      # [B, 2H, 2W, F]
    if self.method == "subpixel":
      x = nn.Conv(4 * self.features, (3, 3), padding=((1, 1), (1, 1)), use_bias=False,
                  dtype=self.dtype)(x)
      return layers.depth_to_space(x, 2)                             # [B, 2H, 2W, F]
    raise ValueError(f"unknown upsample method {self.method!r}; valid: {', '.join(UPSAMPLE)}")


class DCGANGenerator(nn.Module):
  """z [B, latent] (, y [B]) -> images [B, R, R, C] in [-1, 1], R = 4 * 2**len(mults)."""
  out_shape: Sequence[int]                 # (R, R, C)
  width: int = 64
  upsample: str = "transpose"
  dtype: Any = jnp.float32       # compute dtype; params and BatchNorm statistics stay float32
  num_classes: int = 0           # > 0: class-conditional BatchNorm, G(z, y)

  @nn.compact
  def __call__(self, z, y=None, train: bool = True):
    res, _, channels = self.out_shape
    stages = {32: (4, 2, 1), 64: (8, 4, 2, 1)}
    if res not in stages:
      raise ValueError(f"DCGAN supports 32x32 and 64x64 images, got out_shape {tuple(self.out_shape)}")
    mults = stages[res]
    if self.num_classes:
      norm = lambda h: layers.ConditionalBatchNorm(self.num_classes, momentum=0.9, epsilon=1e-5,
                                                   dtype=self.dtype)(h, y, train)
    else:
      norm = lambda h: nn.BatchNorm(use_running_average=not train, momentum=0.9,
                                    dtype=self.dtype)(h)
    h = nn.Dense(4 * 4 * mults[0] * self.width, use_bias=False, dtype=self.dtype)(z)
    h = h.reshape(z.shape[0], 4, 4, mults[0] * self.width)           # [B, 4, 4, m0*w]
    h = nn.relu(norm(h))
    for m in mults[1:]:
      h = nn.relu(norm(Upsample2x(m * self.width, self.upsample, self.dtype)(h)))
    h = Upsample2x(channels, self.upsample, self.dtype)(h)           # [B, R, R, C]
    return jnp.tanh(h).astype(jnp.float32)


class DCGANDiscriminator(nn.Module):
  """images [B, R, R, C] (, y [B]) -> logits [B]."""
  width: int = 64
  spectral_norm: bool = False
  dtype: Any = jnp.float32       # compute dtype; params stay float32, logits are float32
  minibatch_std: int = 0         # > 0: a minibatch-std channel over groups of this many
                                 # examples, into the last conv (layers.minibatch_std)
  num_classes: int = 0           # > 0: class-conditional (projection), D(x, y)

  @nn.compact
  def __call__(self, x, y=None, train: bool = True):
    mults = {32: (1, 2, 4), 64: (1, 2, 4, 8)}.get(x.shape[1])
    if mults is None:
      raise ValueError(f"DCGAN supports 32x32 and 64x64 images, got {x.shape[1:]}")
    h = x
    for i, m in enumerate(mults):
      if self.minibatch_std and i == len(mults) - 1:
        h = layers.minibatch_std(h, self.minibatch_std)              # [B, r, r, C + 1]
      h = nn.leaky_relu(self._layer(nn.Conv(m * self.width, (4, 4), strides=(2, 2),
                                            padding=((1, 1), (1, 1)), dtype=self.dtype,
                                            conv_general_dilated=layers.conv_general_dilated),
                                h, train), 0.2)
    pooled = jnp.sum(h, axis=(1, 2))                                 # [B, m*w]
    h = h.reshape((h.shape[0], -1))                                  # [B, 4*4*m*w]
    out = self._layer(nn.Dense(1, dtype=self.dtype), h, train)[:, 0]  # [B]
    if self.num_classes:
      e = layers.SNEmbed(self.num_classes, pooled.shape[-1], self.spectral_norm,
                         name="class_embed")(y, train)               # [B, m*w]
      out = out + jnp.sum(e.astype(pooled.dtype) * pooled, axis=-1)  # + <E(y), sum_HW h>
    return out.astype(jnp.float32)                                   # [B]

  def _layer(self, layer, h, train):
    if self.spectral_norm:
      return nn.SpectralNorm(layer)(h, update_stats=train)
    return layer(h)
