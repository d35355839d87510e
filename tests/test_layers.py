"""models/layers.py and models/fir.py: the building blocks of the SNGAN / StyleGAN2 / R3GAN
models, each against a NumPy reference written from the definition (float64 loops)."""
import flax.linen as nn
from flax import traverse_util
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxgan.models import fir, layers

F1331 = fir.setup_filter()


# ----------------------------------------------------------------------- NumPy references

def upfirdn2d_ref(x, f, up=1, down=1, pad=(0, 0, 0, 0), flip_filter=False, gain=1.0):
  """StyleGAN2's upfirdn2d, literally: x [B, H, W, C]; pad [x0, x1, y0, y1] (x = width,
  negative = crop). 1. u[i*up] = x[i] (n*up long), 2. zero-pad, 3. convolve with f (a true
  convolution: correlate with the flipped f; flip_filter: correlate with f), keeping the outputs
  whose footprint is inside, 4. keep every down-th."""
  x, f = np.asarray(x, np.float64), np.asarray(f, np.float64)
  f = (np.outer(f, f) if f.ndim == 1 else f) * gain
  px0, px1, py0, py1 = pad
  b, h, w, c = x.shape
  u = np.zeros((b, h * up, w * up, c))
  u[:, ::up, ::up] = x
  p = np.pad(u, ((0, 0), (max(py0, 0), max(py1, 0)), (max(px0, 0), max(px1, 0)), (0, 0)))
  p = p[:, max(-py0, 0):p.shape[1] - max(-py1, 0), max(-px0, 0):p.shape[2] - max(-px1, 0)]
  k = f if flip_filter else f[::-1, ::-1]
  fh, fw = k.shape
  oh, ow = p.shape[1] - fh + 1, p.shape[2] - fw + 1
  o = np.zeros((b, oh, ow, c))
  for i in range(fh):
    for j in range(fw):
      o += k[i, j] * p[:, i:i + oh, j:j + ow]
  return o[:, ::down, ::down]


def conv_ref(x, w, groups=1, stride=1):
  """Valid correlation of x [B, H, W, Cin] with w [kh, kw, Cin/groups, Cout], by groups."""
  x, w = np.asarray(x, np.float64), np.asarray(w, np.float64)
  kh, kw, cig, co = w.shape
  oh, ow = x.shape[1] - kh + 1, x.shape[2] - kw + 1
  cog = co // groups
  out = np.zeros((x.shape[0], oh, ow, co))
  for g in range(groups):
    xg = x[..., g * cig:(g + 1) * cig]
    for i in range(kh):
      for j in range(kw):
        out[..., g * cog:(g + 1) * cog] += xg[:, i:i + oh, j:j + ow] @ w[i, j, :, g * cog:(g + 1) * cog]
  return out[:, ::stride, ::stride]


def conv_resample_ref(x, w, up=1, down=1, pad=None, flip_weight=True):
  """conv2d_resample from its definition: FIR-upsample (pad + StyleGAN2's [2, 1], gain 4) or
  FIR (pad + [1, 1]) for down, a valid conv with w (flipped when not flip_weight), stride."""
  k = w.shape[0]
  pad = k // 2 if pad is None else pad
  if up > 1:
    xr = upfirdn2d_ref(x, F1331, up=2, pad=[pad + 2, pad + 1] * 2, gain=4)
  elif down > 1:
    xr = upfirdn2d_ref(x, F1331, pad=[pad + 1] * 4)
  else:
    xr = np.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
  return conv_ref(xr, w if flip_weight else np.asarray(w)[::-1, ::-1], stride=down)


def lrelu(x, a=0.2):
  return np.where(x >= 0, x, a * x)


def normal(seed, *shape):
  return np.random.default_rng(seed).normal(size=shape).astype(np.float32)


def flat(tree):
  """{'a/b': array} of a nested dict of arrays."""
  tree = jax.tree_util.tree_map(np.asarray, tree)
  return {"/".join(k): v for k, v in traverse_util.flatten_dict(tree).items()}


def unflat(d):
  return traverse_util.unflatten_dict({tuple(k.split("/")): a for k, a in d.items()})


# ------------------------------------------------------------------------- minibatch std

def mbstd_stylegan2_ref(x, group):
  """StyleGAN2's MinibatchStdLayer (F = 1) in NCHW, literally, then back to NHWC."""
  y = np.asarray(x, np.float64).transpose(0, 3, 1, 2)                  # [N, C, H, W]
  n, c, h, w = y.shape
  g = min(group, n)
  z = y.reshape(g, -1, 1, c, h, w)
  z = z - z.mean(axis=0)
  z = np.sqrt(np.square(z).mean(axis=0) + 1e-8)
  z = z.mean(axis=(2, 3, 4)).reshape(-1, 1, 1, 1)
  z = np.tile(z, (g, 1, h, w))
  return np.concatenate([y, z], axis=1).transpose(0, 2, 3, 1)


def mbstd_consecutive_ref(x, group):
  x = np.asarray(x, np.float64)
  out = []
  for start in range(0, x.shape[0], group):
    grp = x[start:start + group]
    s = np.sqrt(grp.var(axis=0) + 1e-8).mean()
    out += [np.concatenate([e, np.full(e.shape[:-1] + (1,), s)], -1) for e in grp]
  return np.stack(out)


def test_minibatch_std_layouts():
  x = normal(25, 8, 4, 4, 3) * np.arange(1, 9, dtype=np.float32)[:, None, None, None]
  strided = layers.minibatch_std(x, 4, layout="strided")
  np.testing.assert_allclose(strided, mbstd_stylegan2_ref(x, 4), rtol=1e-5)
  consecutive = layers.minibatch_std(x, 4)                           # jaxgan's default
  np.testing.assert_allclose(consecutive, mbstd_consecutive_ref(x, 4), rtol=1e-5)
  assert np.abs(np.asarray(strided) - np.asarray(consecutive)).max() > 0.1  # other groups
  # one group = the whole batch: the two layouts agree; G = min(group, N)
  np.testing.assert_allclose(layers.minibatch_std(x, 32, layout="strided"),
                             layers.minibatch_std(x, 32), rtol=1e-6)
  np.testing.assert_allclose(layers.minibatch_std(x, 32, layout="strided"),
                             mbstd_stylegan2_ref(x, 32), rtol=1e-5)
  # a flat [B, F] input (the MLP's) works too
  np.testing.assert_allclose(layers.minibatch_std(x.reshape(8, -1), 2, layout="strided"),
                             mbstd_stylegan2_ref(x.reshape(8, 1, 1, -1), 2).reshape(8, -1),
                             rtol=1e-5)
