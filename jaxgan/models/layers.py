"""Layers shared by the models: stride-2 4x4 convolutions written so that XLA:CPU runs them,
and their gradients, fast; the discriminators' minibatch standard deviation; the sub-pixel
shuffle.

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
"""
import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import lax

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
