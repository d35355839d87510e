"""Layers shared by the models.

DCGAN's fast stride-2 convolutions (below), and the building blocks of the SNGAN ResNet,
StyleGAN2 (--cfg=cifar) and R3GAN models: equalised-learning-rate dense/conv layers with
StyleGAN2's bias_act, the modulated conv with demodulation and its synthesis / ToRGB layers,
minibatch std, spectrally normalised embeddings, conditional BatchNorm, the projection head,
and R3GAN's MSR-initialised grouped convs and residual block. The FIR [1,3,3,1] resampling
(upfirdn2d, upsample2d, downsample2d, conv2d_resample) lives in models/fir.py and is
re-exported here. Every layer is NHWC; parameters are float32, `dtype` is the compute dtype.

XLA:CPU lowers a convolution with input dilation (a transposed conv, and the input gradient
of every strided conv) to a slow generic loop, several times slower than a plain conv. Both
layers below compute exactly the same function as the plain Flax layer, with the same
parameters, through stride-1 convolutions only:

  - `conv_transpose_4x4_s2`: = `nn.ConvTranspose(F, (4, 4), strides=(2, 2), padding="SAME")`.
    Output pixel (2m + a, 2n + b) reads the 2x2 input window starting at (m - 1 + a, n - 1 + b),
    with kernel taps (a + 2s, b + 2u): four 2x2 convs (one per output phase, each with its own
    one-sided padding) and an interleave, the transposed conv's multiply-adds and no more.
    (One 2x2 conv with padding 1 giving all phases as 4F channels is exact too, but XLA:CPU
    runs its backward about 20x slower.)
  - `conv_4x4_s2`: = the 4x4 stride-2 conv with padding 1 of DCGAN's D (forward unchanged),
    with a custom VJP whose input gradient is the transposed conv above, so D's backward to
    its input (the G step, gradient penalties) and the penalties' double backward avoid
    dilated convs too.
  - `minibatch_std`: ProGAN's batch-diversity feature for a discriminator.
  - `depth_to_space`: the sub-pixel shuffle of the generators' 3x3-conv upsampling.
The resampling convs of models/fir.py follow the same rule (polyphase stride-1 convs).
"""
from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from jaxgan.models import fir

_DN = ("NHWC", "HWIO", "NHWC")


def conv_transpose_4x4_s2(x, kernel):
  """x [B, H, W, Cin], kernel [4, 4, Cin, F] (Flax ConvTranspose layout) -> [B, 2H, 2W, F]."""
  b, h, w, c_in = x.shape
  f = kernel.shape[-1]
  k = kernel.reshape(2, 2, 2, 2, c_in, f)                            # [s, a, u, b, Cin, F]
  phase = lambda a, c: lax.conv_general_dilated(                     # [B, H, W, F]
      x, k[:, a, :, c], (1, 1), ((1 - a, a), (1 - c, c)), dimension_numbers=_DN)
  rows = [jnp.stack([phase(a, c) for c in (0, 1)], axis=3) for a in (0, 1)]  # [B, H, W, 2, F]
  return jnp.stack(rows, axis=2).reshape(b, 2 * h, 2 * w, f)         # [B, 2H, 2W, F]


def _conv_s2(x, kernel):
  return lax.conv_general_dilated(x, kernel, (2, 2), ((1, 1), (1, 1)), dimension_numbers=_DN)


@jax.custom_vjp
def conv_4x4_s2(x, kernel):
  """x [B, H, W, Cin], kernel [4, 4, Cin, F] -> [B, H/2, W/2, F]; stride 2, padding 1."""
  return _conv_s2(x, kernel)


def _conv_4x4_s2_fwd(x, kernel):
  return _conv_s2(x, kernel), (x, kernel)


def _conv_4x4_s2_bwd(res, ct):
  x, kernel = res
  # the input gradient is the transposed conv with the spatially flipped, in/out-swapped kernel
  dx = conv_transpose_4x4_s2(ct, jnp.flip(kernel, (0, 1)).swapaxes(2, 3))
  _, kernel_vjp = jax.vjp(lambda k: _conv_s2(x, k), kernel)
  return dx.astype(x.dtype), kernel_vjp(ct)[0]


conv_4x4_s2.defvjp(_conv_4x4_s2_fwd, _conv_4x4_s2_bwd)


def conv_general_dilated(lhs, rhs, window_strides, padding, lhs_dilation=None,
                         rhs_dilation=None, dimension_numbers=None, feature_group_count=1,
                         **kwargs):
  """`lax.conv_general_dilated` for `nn.Conv(conv_general_dilated=...)`: routes NHWC 4x4
  stride-2 padding-1 convs to `conv_4x4_s2`, everything else to lax unchanged."""
  fast = (tuple(window_strides) == (2, 2) and rhs.shape[:2] == (4, 4)
          and [tuple(p) for p in padding] == [(1, 1), (1, 1)]
          and all(d in (None, 1, (1, 1)) for d in (lhs_dilation, rhs_dilation))
          and feature_group_count == 1 and not kwargs.get("preferred_element_type")
          and dimension_numbers == lax.conv_dimension_numbers(lhs.shape, rhs.shape, _DN))
  if fast:
    return conv_4x4_s2(lhs, rhs)
  return lax.conv_general_dilated(lhs, rhs, window_strides, padding, lhs_dilation, rhs_dilation,
                                  dimension_numbers, feature_group_count, **kwargs)


class ConvTranspose4x4(nn.Module):
  """= nn.ConvTranspose(features, (4, 4), strides=(2, 2), padding="SAME", use_bias=False):
  same parameter ('kernel' [4, 4, Cin, F]), same initialiser, same function."""
  features: int
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, x):                                             # [B, H, W, Cin]
    kernel = self.param("kernel", nn.initializers.lecun_normal(),
                        (4, 4, x.shape[-1], self.features), jnp.float32)
    x, kernel = nn.dtypes.promote_dtype(x, kernel, dtype=self.dtype)
    return conv_transpose_4x4_s2(x, kernel)                          # [B, 2H, 2W, F]


def depth_to_space(x, block: int = 2):
  """[B, H, W, C*b*b] -> [B, H*b, W*b, C]."""
  b, h, w, c = x.shape
  c_out = c // (block * block)
  x = x.reshape(b, h, w, block, block, c_out)
  x = x.transpose(0, 1, 3, 2, 4, 5)                                  # [B, H, b, W, b, C]
  return x.reshape(b, h * block, w * block, c_out)


def minibatch_std(x, group: int, layout: str = "consecutive"):
  """ProGAN's minibatch standard deviation (Karras et al., 2018) for D's features x [B, ..., C]:
  the std of every feature across a group of G = min(group, B) examples, averaged over
  the features, appended to each example of the group as one more channel (constant over any
  spatial axes) -> [B, ..., C + 1]. D can then see how diverse a batch is.

    y = sqrt(mean_G((x - mean_G x)^2) + 1e-8)   (biased variance over the group)
    s = mean over (..., C) of y, one number per group, tiled over its members and pixels.

  `layout` says which examples form a group:
    - "consecutive" (jaxgan's, the default; used by the existing configs): examples
      [g*G, (g+1)*G), i.e. x.reshape(B/G, G, ...). On D's [real; fake] batch the groups never
      mix the two halves when G divides B/2.
    - "strided" (StyleGAN2's MinibatchStdLayer, `x.reshape(G, -1, F, c, H, W)`, F = 1): the
      members of group j are j, j + B/G, j + 2B/G, ... . StyleGAN2 runs D on reals and fakes
      in separate calls; on a concatenated [real; fake] batch these groups take G/2 reals and
      G/2 fakes each.
  Both are the same statistic on a different partition of the batch (the same function when
  B = G). The epsilon keeps the double backward of a gradient penalty finite where a group's
  features coincide (d sqrt at 0).
  """
  b = x.shape[0]
  group = min(group, b)
  if b % group:
    raise ValueError(f"minibatch_std: the group ({group}) must divide the discriminator's "
                     f"batch ({b}: per device, after packing)")
  if layout not in ("consecutive", "strided"):
    raise ValueError(f"minibatch_std: unknown layout {layout!r}; valid: consecutive, strided")
  dtype = jnp.promote_types(x.dtype, jnp.float32)                    # bf16 in: f32 statistics
  n = b // group
  if layout == "consecutive":
    y = x.astype(dtype).reshape(n, group, *x.shape[1:])               # [B/G, G, ..., C]
    std = jnp.sqrt(jnp.var(y, axis=1) + 1e-8)                         # [B/G, ..., C]
    s = jnp.repeat(std.reshape(n, -1).mean(axis=1), group)            # [B]
  else:
    y = x.astype(dtype).reshape(group, n, *x.shape[1:])               # [G, B/G, ..., C]
    std = jnp.sqrt(jnp.var(y, axis=0) + 1e-8)                         # [B/G, ..., C]
    s = jnp.tile(std.reshape(n, -1).mean(axis=1), group)              # [B]: s[g*n + j] = s_j
  s = s.astype(x.dtype).reshape(b, *[1] * (x.ndim - 1))               # [B, 1, ..., 1]
  return jnp.concatenate([x, jnp.broadcast_to(s, (*x.shape[:-1], 1))], axis=-1)  # [B, ..., C+1]


# ---------------------------------------------------------------- FIR resampling (fir.py)

setup_filter = fir.setup_filter
upfirdn2d = fir.upfirdn2d
filter2d = fir.filter2d
upsample2d = fir.upsample2d
downsample2d = fir.downsample2d
conv2d_resample = fir.conv2d_resample
FIR_1331 = fir.FIR_1331


# -------------------------------------------------- StyleGAN2: equalised lr and bias_act

ACT_GAINS = {"linear": 1.0, "lrelu": float(np.sqrt(2.0)), "relu": float(np.sqrt(2.0))}


def bias_act(x, b=None, act: str = "linear", alpha: float = 0.2, gain=None, clamp=None):
  """StyleGAN2's bias_act (torch_utils/ops/bias_act.py) on x [B, ..., C]:
  y = act(x + b) * gain, then clipped to [-clamp, clamp]; gain defaults to the activation's
  def_gain (linear 1, lrelu(alpha=0.2) and relu sqrt(2), which keep unit second moment)."""
  if act not in ACT_GAINS:
    raise ValueError(f"unknown activation {act!r}; valid: {', '.join(ACT_GAINS)}")
  if b is not None:
    x = x + b.astype(x.dtype)
  if act == "lrelu":
    x = nn.leaky_relu(x, alpha)
  elif act == "relu":
    x = nn.relu(x)
  gain = ACT_GAINS[act] if gain is None else gain
  if gain != 1:
    x = x * gain
  if clamp is not None:
    x = jnp.clip(x, -clamp, clamp)
  return x


class EqualDense(nn.Module):
  """StyleGAN2's FullyConnectedLayer (training/networks.py), equalised learning rate:
  the stored weight [Cin, F] ~ N(0, 1) / lr_mul is used as weight * lr_mul / sqrt(Cin), the
  stored bias (init bias_init, as StyleGAN2) as bias * lr_mul;
  y = bias_act(x @ W_eff, b_eff, activation) (lrelu: leaky_relu(0.2) * sqrt(2)). With Adam, lr_mul scales the effective lr of
  the layer (the mapping network uses 0.01)."""
  features: int
  lr_mul: float = 1.0
  bias_init: float = 0.0
  activation: str | None = None           # None / 'linear', 'lrelu', 'relu'
  use_bias: bool = True
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x):                                             # [B, Cin]
    c_in = x.shape[-1]
    weight = self.param("weight", lambda k, s: jax.random.normal(k, s) / self.lr_mul,
                        (c_in, self.features))                        # [Cin, F]
    w = weight * (self.lr_mul / np.sqrt(c_in))
    b = None
    if self.use_bias:
      b = self.param("bias", nn.initializers.constant(self.bias_init), (self.features,))
      b = b * self.lr_mul
    x, w = nn.dtypes.promote_dtype(x, w, dtype=self.dtype)
    return bias_act(x @ w, b, self.activation or "linear")           # [B, F]


class EqualConv(nn.Module):
  """StyleGAN2's Conv2dLayer: weight [k, k, Cin, F] ~ N(0, 1) used as weight / sqrt(Cin k^2),
  padding k // 2, the conv (optionally up=2: transposed conv + FIR; down=2: FIR + stride 2,
  models/fir.py conv2d_resample with the [1,3,3,1] filter), then bias_act with the
  activation's gain times `gain` and clamp conv_clamp * gain. As StyleGAN2, an up layer uses
  flip_weight=False (a true convolution), every other a correlation, so a torch weight
  [F, Cin, k, k] ports by transpose(2, 3, 1, 0) alone."""
  features: int
  kernel: int = 3
  up: bool = False
  down: bool = False
  activation: str | None = None
  use_bias: bool = True
  conv_clamp: float | None = None
  resample_filter: Sequence[float] = fir.FIR_1331
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, gain: float = 1.0):                          # [B, H, W, Cin]
    c_in, k = x.shape[-1], self.kernel
    weight = self.param("weight", nn.initializers.normal(1.0), (k, k, c_in, self.features))
    w = weight * (1 / np.sqrt(c_in * k * k))
    x, w = nn.dtypes.promote_dtype(x, w, dtype=self.dtype)
    x = fir.conv2d_resample(x, w, fir.setup_filter(self.resample_filter),
                            up=2 if self.up else 1, down=2 if self.down else 1,
                            padding=k // 2, flip_weight=not self.up)  # [B, H', W', F]
    b = self.param("bias", nn.initializers.zeros, (self.features,)) if self.use_bias else None
    act = self.activation or "linear"
    clamp = self.conv_clamp * gain if self.conv_clamp is not None else None
    return bias_act(x, b, act, gain=ACT_GAINS[act] * gain, clamp=clamp)


# ------------------------------------------------------- StyleGAN2: modulated convolution

def modulated_conv(x, weight, styles, demodulate: bool = True, up: bool = False, padding=None,
                   resample_filter=None, flip_weight: bool = True):
  """StyleGAN2's modulated_conv2d (training/networks.py) on x [B, H, W, Cin] with the shared
  weight [k, k, Cin, Cout] and styles [B, Cin] -> [B, H', W', Cout] (H' = 2H when up):

    w'_{b,k,i,o} = W_{k,i,o} s_{b,i},   d_{b,o} = 1 / sqrt(sum_{k,i} w'^2_{b,k,i,o} + 1e-8),
    w''_{b,k,i,o} = w'_{b,k,i,o} d_{b,o}   (demodulate; else w'' = w'),
    y_b = conv(x_b, w''_b)   (up: conv2d_resample with the [1,3,3,1] FIR).

  Computed in the fused form x * s -> conv(W) -> * d (StyleGAN2's fused_modconv=False path):
  the same numbers, one shared conv for the batch and no per-sample weights; d = rsqrt(s^2 @
  sum_k W^2 + 1e-8) in float32. padding defaults to k // 2. (StyleGAN2's fp16
  pre-normalisation of W and s by their inf-norms is not done.)"""
  k = weight.shape[0]
  padding = k // 2 if padding is None else padding
  f = fir.setup_filter() if resample_filter is None else resample_filter
  s = styles.astype(x.dtype)[:, None, None, :]                       # [B, 1, 1, Cin]
  y = fir.conv2d_resample(x * s, weight.astype(x.dtype), f, up=2 if up else 1,
                          padding=padding, flip_weight=flip_weight)  # [B, H', W', Cout]
  if demodulate:
    w2 = jnp.sum(jnp.square(weight.astype(jnp.float32)), axis=(0, 1))  # [Cin, Cout]
    d = jax.lax.rsqrt(jnp.square(styles.astype(jnp.float32)) @ w2 + 1e-8)  # [B, Cout]
    y = y * d.astype(y.dtype)[:, None, None, :]
  return y


NOISE_MODES = ("random", "const", "none")


class SynthesisLayer(nn.Module):
  """StyleGAN2's SynthesisLayer: styles = EqualDense(Cin, bias_init=1)(w); the modulated,
  demodulated k x k conv of x (weight ~ N(0, 1), no 1/sqrt(fan_in): demodulation normalises;
  up=True: the first conv of a block, 2x); + noise * noise_strength; then
  bias_act(lrelu, sqrt(2) * gain, clamp conv_clamp * gain).

  Noise N(0, 1) [B, H, W, 1] (one map per sample, shared by the channels), scaled by the
  learned scalar 'noise_strength' (init 0: at init the noise adds exactly 0):
    - noise_mode 'random' draws it from the Flax rng stream 'noise', so the caller passes
      `rngs={'noise': key}` to apply (e.g. key = fold_in(fold_in(state.key, step), ...));
      init needs nothing (Flax falls back to the 'params' rng);
    - 'const' uses the fixed map 'noise_const' [H, W] (collection 'constants', drawn at init,
      StyleGAN2's buffer), 'none' adds nothing: both are deterministic and need no rng.
  The const map takes its shape from the output; apply needs the 'constants' collection with
  the params (as `{"params": ..., **g_state}` has it)."""
  features: int
  kernel: int = 3
  up: bool = False
  use_noise: bool = True
  activation: str = "lrelu"
  conv_clamp: float | None = None
  resample_filter: Sequence[float] = fir.FIR_1331
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, w, noise_mode: str = "random", gain: float = 1.0):  # x [B, H, W, Cin]
    if noise_mode not in NOISE_MODES:
      raise ValueError(f"unknown noise_mode {noise_mode!r}; valid: {', '.join(NOISE_MODES)}")
    c_in, k = x.shape[-1], self.kernel
    styles = EqualDense(c_in, bias_init=1.0, name="affine")(w)       # [B, Cin]
    weight = self.param("weight", nn.initializers.normal(1.0), (k, k, c_in, self.features))
    x = x.astype(self.dtype)
    x = modulated_conv(x, weight, styles, demodulate=True, up=self.up, padding=k // 2,
                       resample_filter=fir.setup_filter(self.resample_filter),
                       flip_weight=not self.up)                      # [B, H', W', F]
    b, h, wd, _ = x.shape
    if self.use_noise:
      strength = self.param("noise_strength", nn.initializers.zeros, ())
      const = self.variable("constants", "noise_const",
                            lambda: jax.random.normal(self.make_rng("params"), (h, wd)))
      if noise_mode == "random":
        noise = jax.random.normal(self.make_rng("noise"), (b, h, wd, 1))  # [B, H, W, 1]
        x = x + (noise * strength).astype(x.dtype)
      elif noise_mode == "const":
        x = x + (const.value[None, :, :, None] * strength).astype(x.dtype)
    bias = self.param("bias", nn.initializers.zeros, (self.features,))
    clamp = self.conv_clamp * gain if self.conv_clamp is not None else None
    return bias_act(x, bias, self.activation, gain=ACT_GAINS[self.activation] * gain,
                    clamp=clamp)


class ToRGB(nn.Module):
  """StyleGAN2's ToRGBLayer: styles = EqualDense(Cin, bias_init=1)(w) / sqrt(Cin k^2); the
  modulated k x k (default 1 x 1) conv without demodulation; + bias (linear, clamp)."""
  features: int = 3
  kernel: int = 1
  conv_clamp: float | None = None
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, w):                                          # x [B, H, W, Cin]
    c_in, k = x.shape[-1], self.kernel
    styles = EqualDense(c_in, bias_init=1.0, name="affine")(w) * (1 / np.sqrt(c_in * k * k))
    weight = self.param("weight", nn.initializers.normal(1.0), (k, k, c_in, self.features))
    x = modulated_conv(x.astype(self.dtype), weight, styles, demodulate=False)
    bias = self.param("bias", nn.initializers.zeros, (self.features,))
    return bias_act(x, bias, "linear", clamp=self.conv_clamp)        # [B, H, W, F]


# ------------------------------------------- SNGAN: spectral norm, conditional BN, projection

def spectral_norm(layer: nn.Module, x, train: bool, enabled: bool = True):
  """layer(x), spectrally normalised when `enabled` (Flax nn.SpectralNorm, as DCGAN's D):
  the kernel, viewed as [-1, F] (the same singular values as Chainer's W.reshape(out, -1)),
  is divided by sigma = v W u^T from one power-iteration step from the stored u (collection
  'batch_stats': '<layer>/kernel/u' [1, F] ~ N(0, 1) and '.../sigma'). train=True writes the
  new u and sigma back (one step per call, as SNGAN's Ip=1); train=False runs the same step
  from the stored u without writing it (as Chainer's SN layers in test mode; torch's
  spectral_norm instead reuses its stored u and v as they are), so eval is deterministic."""
  if not enabled:
    return layer(x)
  return nn.SpectralNorm(layer)(x, update_stats=train)


class SNEmbed(nn.Module):
  """A class embedding [num_classes, features] looked up by integer labels y [B] -> [B, F],
  spectrally normalised by its top singular value when `spectral_norm` (SNGAN-projection's
  SNEmbedID; nn.SpectralNorm over nn.Embed, u [1, F]: the matrix's top singular value as
  with Chainer's u [1, num_classes]). Init Glorot uniform, as SNP."""
  num_classes: int
  features: int
  spectral_norm: bool = True
  embedding_init: Any = nn.initializers.glorot_uniform()

  @nn.compact
  def __call__(self, y, train: bool = True):                         # [B] int
    embed = nn.Embed(self.num_classes, self.features, embedding_init=self.embedding_init,
                     name="Embed_0")
    return spectral_norm(embed, y, train, self.spectral_norm)        # [B, F]


class ConditionalBatchNorm(nn.Module):
  """Class-conditional BatchNorm (de Vries et al. 2017; SNGAN-projection's
  CategoricalConditionalBatchNormalization): x_hat = BN(x) with no affine of its own
  (statistics over B, H, W; running stats shared by all classes, in 'batch_stats'), then
    out = gamma[y] * x_hat + beta[y],  gamma [num_classes, C] init 1, beta init 0 (SNP).
  train=True normalises with the batch mean and (biased) variance and updates the running
  averages (Flax: ra <- momentum * ra + (1 - momentum) * batch stat, decay 0.9 as Chainer;
  note Flax's running variance is the biased one, Chainer's and torch's the unbiased one);
  train=False uses the running averages. epsilon 2e-5 as SNP (Chainer's default)."""
  num_classes: int
  momentum: float = 0.9
  epsilon: float = 2e-5
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, y, train: bool = True):                      # x [B, ..., C], y [B]
    c = x.shape[-1]
    x_hat = nn.BatchNorm(use_running_average=not train, momentum=self.momentum,
                         epsilon=self.epsilon, use_scale=False, use_bias=False,
                         dtype=self.dtype)(x)
    gamma = self.param("gamma", nn.initializers.ones, (self.num_classes, c))
    beta = self.param("beta", nn.initializers.zeros, (self.num_classes, c))
    shape = (x.shape[0],) + (1,) * (x.ndim - 2) + (c,)
    g, b = gamma[y].reshape(shape), beta[y].reshape(shape)           # [B, 1, ..., C]
    return (g.astype(x_hat.dtype) * x_hat + b.astype(x_hat.dtype))   # [B, ..., C]


def projection_logits(h, y, embed, w, b=None):
  """The projection discriminator's logit (Miyato & Koyama 2018):
  psi(h) + <embed[y], h> = h @ w (+ b) + sum_c embed[y, c] h_c, for h [B, C] (SNGAN: the
  ReLU'd, sum-pooled features), y [B] int, embed [K, C], w [C, 1] -> [B]."""
  out = (h @ w)[:, 0] + jnp.sum(embed[y] * h, axis=-1)
  return out if b is None else out + jnp.reshape(b, ())


class ProjectionHead(nn.Module):
  """psi(h) + <E(y), h> -> [B]: psi = Dense(1) (SNP: no bias; StudioGAN: with a bias:
  `use_bias`), E = SNEmbed(num_classes, C); both spectrally normalised when
  `spectral_norm`, Glorot-uniform init (SNP). num_classes = 0: the unconditional psi(h)."""
  num_classes: int
  spectral_norm: bool = True
  use_bias: bool = False
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, h, y=None, train: bool = True):                 # h [B, C], y [B]
    dense = nn.Dense(1, use_bias=self.use_bias, dtype=self.dtype,
                     kernel_init=nn.initializers.glorot_uniform(), name="psi")
    out = spectral_norm(dense, h, train, self.spectral_norm)[:, 0]   # [B]
    if self.num_classes:
      e = SNEmbed(self.num_classes, h.shape[-1], self.spectral_norm, name="embed")(y, train)
      out = out + jnp.sum(e.astype(h.dtype) * h, axis=-1)
    return out.astype(jnp.float32)


# ----------------------------------------------------------------------- R3GAN blocks

R3_ACT_GAIN = float(np.sqrt(2 / (1 + 0.2 ** 2)))   # R3GAN BiasedActivation.Gain (init only)


def msr_init(gain: float = 1.0):
  """R3GAN's MSRInitializer for a kernel [..., Cin/groups, Cout] (HWIO / [Cin, Cout]):
  N(0, gain / sqrt(fan_in)), fan_in = Cin/groups * k*k (the product of all but the last axis)."""
  def init(key, shape, dtype=jnp.float32):
    fan_in = int(np.prod(shape[:-1]))
    return jax.random.normal(key, shape, dtype) * (gain / np.sqrt(fan_in))
  return init


class MSRConv(nn.Module):
  """R3GAN's Convolution: a k x k stride-1 conv, padding (k-1)//2, `groups` channel groups
  (feature_group_count: group g maps input channels [g Cin/G, (g+1) Cin/G) to output
  channels [g F/G, (g+1) F/G)), no bias, MSR init with `gain` (0: zero init)."""
  features: int
  kernel: int = 1
  groups: int = 1
  gain: float = 1.0
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x):                                             # [B, H, W, Cin]
    c_in, k = x.shape[-1], self.kernel
    if c_in % self.groups or self.features % self.groups:
      raise ValueError(f"MSRConv: {self.groups} groups must divide Cin={c_in} and "
                       f"F={self.features}")
    w = self.param("kernel", msr_init(self.gain), (k, k, c_in // self.groups, self.features))
    x, w = nn.dtypes.promote_dtype(x, w, dtype=self.dtype)
    p = (k - 1) // 2
    return lax.conv_general_dilated(x, w, (1, 1), ((p, k - 1 - p), (p, k - 1 - p)),
                                    dimension_numbers=_DN, feature_group_count=self.groups)


class BiasedLeakyReLU(nn.Module):
  """R3GAN's BiasedActivation: leaky_relu(x + b, 0.2), b [C] init 0, gain 1 (its Gain constant
  sqrt(2 / (1 + 0.2^2)) is used only to initialise the convs)."""

  @nn.compact
  def __call__(self, x):
    b = self.param("bias", nn.initializers.zeros, (x.shape[-1],))
    return nn.leaky_relu(x + b.astype(x.dtype), 0.2)


class R3ResidualBlock(nn.Module):
  """R3GAN's ResidualBlock (R3GAN/Networks.py) on x [B, H, W, C]:
    y = conv1x1(C -> eC, gain a) -> BiasedLReLU -> conv kxk(eC -> eC, groups, gain a)
        -> BiasedLReLU -> conv1x1(eC -> C, gain 0: zero init);  out = x + y,
  a = R3_ACT_GAIN * L ** (-1 / (2 * 3 - 2)) = R3_ACT_GAIN * L ** (-1/4), L = the network's
  total number of residual blocks (`variance_scaling`, sum(BlocksPerStage); 8 at CIFAR).
  No normalisation. At init y = 0, so the block is the identity."""
  cardinality: int
  expansion: int = 2
  kernel: int = 3
  variance_scaling: float = 1.0
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x):
    c = x.shape[-1]
    e = c * self.expansion
    gain = R3_ACT_GAIN * self.variance_scaling ** (-1 / (2 * 3 - 2))
    y = MSRConv(e, 1, gain=gain, dtype=self.dtype, name="LinearLayer1")(x)
    y = BiasedLeakyReLU(name="NonLinearity1")(y)
    y = MSRConv(e, self.kernel, self.cardinality, gain, self.dtype, name="LinearLayer2")(y)
    y = BiasedLeakyReLU(name="NonLinearity2")(y)
    y = MSRConv(c, 1, gain=0.0, dtype=self.dtype, name="LinearLayer3")(y)
    return x + y.astype(x.dtype)
