"""models/layers.py and models/fir.py: the building blocks of the SNGAN / StyleGAN2 / R3GAN
models, each against a NumPy reference written from the definition (float64 loops)."""
import flax.linen as nn
from flax import traverse_util
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from benchmarks.hlo_convs import conv_kinds
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


# ------------------------------------------------------------------------- FIR resampling

def test_setup_filter_is_the_normalised_1331():
  np.testing.assert_allclose(F1331, [1 / 8, 3 / 8, 3 / 8, 1 / 8])
  f2 = fir.setup_filter(separable=False)
  np.testing.assert_allclose(f2, np.outer([1, 3, 3, 1], [1, 3, 3, 1]) / 64)
  np.testing.assert_allclose(fir.setup_filter(gain=4, separable=False).sum(), 4)


ASYM = np.array([1.0, 2.0, 5.0])                       # asymmetric: catches a wrong flip
ASYM2 = np.outer([1.0, 2.0, 5.0], [2.0, -1.0, 0.5, 3.0])


@pytest.mark.parametrize("impl", ["slices", "conv"])
@pytest.mark.parametrize("f,up,down,pad,flip", [
    (F1331, 1, 1, (0, 0, 0, 0), False), (F1331, 2, 1, (2, 1, 2, 1), False),
    (F1331, 1, 2, (1, 1, 1, 1), False), (ASYM, 2, 1, (3, 1, 0, 2), False),
    (ASYM, 1, 2, (2, 0, 1, 3), True), (ASYM2, 2, 1, (1, 2, 3, 0), False),
    (ASYM2, 3, 1, (1, 2, 3, 0), True), (ASYM, 1, 3, (1, 0, 2, 2), False),
    (ASYM, 2, 2, (1, 1, 1, 1), False)])
def test_upfirdn2d_matches_the_definition(impl, f, up, down, pad, flip):
  x = normal(0, 2, 7, 9, 3)
  ref = upfirdn2d_ref(x, f, up, down, pad, flip, gain=1.7)
  out = jax.jit(lambda x: fir.upfirdn2d(x, f, up, down, pad, flip, 1.7, impl=impl))(x)
  assert out.shape == ref.shape
  np.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-5 * np.abs(ref).max())


def test_upfirdn2d_crops_with_negative_padding():
  x = normal(1, 1, 6, 8, 2)
  ref = upfirdn2d_ref(x, ASYM, 2, 1, (3, -2, -1, 2))
  np.testing.assert_allclose(fir.upfirdn2d(x, ASYM, 2, 1, (3, -2, -1, 2)), ref, atol=1e-4)


def test_resamplers_use_stylegan2s_pads_and_gain():
  # upsample2d: padx0 = (fw + up - 1)//2 = 2, padx1 = (fw - up)//2 = 1, gain up^2 = 4;
  # downsample2d: (fw - down + 1)//2 = 1, (fw - down)//2 = 1
  x = normal(2, 3, 8, 6, 4)
  up = fir.upsample2d(x)
  assert up.shape == (3, 16, 12, 4)
  np.testing.assert_allclose(up, upfirdn2d_ref(x, F1331, up=2, pad=(2, 1, 2, 1), gain=4),
                             atol=1e-5)
  down = fir.downsample2d(x)
  assert down.shape == (3, 4, 3, 4)
  np.testing.assert_allclose(down, upfirdn2d_ref(x, F1331, down=2, pad=(1, 1, 1, 1)), atol=1e-5)
  np.testing.assert_allclose(fir.filter2d(x, F1331), upfirdn2d_ref(x, F1331, pad=(2, 1, 2, 1)),
                             atol=1e-5)
  # the closed form of the [1,3,3,1] resamplers along one axis (x constant along W)
  col = normal(3, 1, 8, 1, 1)
  xc = np.broadcast_to(col, (1, 8, 6, 1))
  u, xp = np.asarray(fir.upsample2d(xc))[0, :, 5, 0], np.pad(col[0, :, 0, 0], 1)
  np.testing.assert_allclose(u[0::2], (xp[:-2] + 3 * xp[1:-1]) / 4, atol=1e-6)
  np.testing.assert_allclose(u[1::2], (3 * xp[1:-1] + xp[2:]) / 4, atol=1e-6)


def test_resamplers_keep_a_constant_image():
  x = np.full((2, 8, 8, 3), 1.7, np.float32)
  # the zero padding darkens one pixel at the borders only
  np.testing.assert_allclose(fir.upsample2d(x)[:, 1:-1, 1:-1], 1.7, rtol=1e-6)
  np.testing.assert_allclose(fir.downsample2d(x)[:, 1:-1, 1:-1], 1.7, rtol=1e-6)
  np.testing.assert_allclose(fir.upsample2d(x)[:, 0, 1:-1], 1.7 * 0.75, rtol=1e-6)


def test_upsample_then_downsample_of_a_smooth_image_is_near_identity():
  # per axis down(up(x)) = (6 x[m-1] + 20 x[m] + 6 x[m+1]) / 32: ~identity on low frequencies
  i = np.arange(32)
  img = (np.sin(2 * np.pi * i / 32)[:, None] * np.cos(2 * np.pi * i / 32)[None, :])
  x = img[None, :, :, None].astype(np.float32)
  back = np.asarray(fir.downsample2d(fir.upsample2d(x)))
  assert np.abs(back - x)[:, 2:-2, 2:-2].max() < 0.03


def test_fir_gradients_match_the_depthwise_conv_impl():
  x = normal(4, 2, 8, 8, 3)
  for op in (fir.upsample2d, fir.downsample2d):
    d = lambda x, impl: jnp.sum(jnp.tanh(op(x, impl=impl)) * jnp.arange(3.0))
    r1 = lambda x, impl: jnp.sum(jax.grad(d)(x, impl) ** 2)          # R1's double backward
    for fn in (jax.grad(d), jax.grad(r1)):
      np.testing.assert_allclose(fn(x, "slices"), fn(x, "conv"), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("k", [1, 3, 4])
@pytest.mark.parametrize("up,down", [(1, 1), (2, 1), (1, 2)])
@pytest.mark.parametrize("flip_weight", [True, False])
def test_conv2d_resample_matches_the_definition(k, up, down, flip_weight):
  x, w = normal(5, 2, 7, 9, 3), normal(6, k, k, 3, 4)
  out = jax.jit(lambda x, w: fir.conv2d_resample(x, w, up=up, down=down, padding=k // 2,
                                                 flip_weight=flip_weight))(x, w)
  ref = conv_resample_ref(x, w, up, down, flip_weight=flip_weight)
  assert out.shape == ref.shape
  np.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-5 * np.abs(ref).max())


def test_conv2d_resample_groups():
  x, w = normal(7, 2, 8, 8, 4), normal(8, 3, 3, 2, 6)
  out = fir.conv2d_resample(x, w, down=2, padding=1, groups=2)
  xr = upfirdn2d_ref(x, F1331, pad=[2] * 4)
  np.testing.assert_allclose(out, conv_ref(xr, w, groups=2, stride=2), atol=1e-4)
  out = fir.conv2d_resample(x, w, up=2, padding=1, groups=2)
  xr = upfirdn2d_ref(x, F1331, up=2, pad=[3, 2, 3, 2], gain=4)
  np.testing.assert_allclose(out, conv_ref(xr, w, groups=2), atol=1e-4)


def test_resampling_compiles_no_input_dilated_conv():
  """The forward, backward and R1 double backward of the resampling convs and FIRs use
  stride-1 convs, slices and pads only (XLA:CPU runs input-dilated convs slowly)."""
  x, w = jnp.zeros((2, 8, 8, 4)), jnp.zeros((3, 3, 4, 4))

  def d(x, w):
    h = fir.conv2d_resample(fir.upsample2d(x), w, down=2, padding=1)
    h = fir.conv2d_resample(h, w, up=2, padding=1, flip_weight=False)
    return jnp.sum(jnp.tanh(fir.downsample2d(h)))

  r1 = lambda x, w: jnp.sum(jax.grad(d)(x, w) ** 2)
  text = jax.jit(jax.grad(r1, argnums=(0, 1))).lower(x, w).compile().as_text()
  kinds = conv_kinds(text)                                           # the compiled convs
  assert kinds["stride 1"] > 0
  assert set(kinds) == {"stride 1"}, kinds                           # no dilated, no strided


# ---------------------------------------------------------------- equalised learning rate

@pytest.mark.parametrize("lr_mul,act", [(1.0, None), (0.01, "lrelu")])
def test_equal_dense(lr_mul, act):
  layer = layers.EqualDense(64, lr_mul=lr_mul, bias_init=0.5, activation=act)
  x = normal(9, 5, 256)
  v = layer.init(jax.random.key(0), x)
  wt, b = np.asarray(v["params"]["weight"], np.float64), np.asarray(v["params"]["bias"])
  assert wt.shape == (256, 64)
  np.testing.assert_allclose(wt.std() * lr_mul, 1.0, rtol=0.02)     # stored ~ N(0, 1)/lr_mul
  np.testing.assert_array_equal(b, 0.5)
  v = {"params": {"weight": wt, "bias": normal(10, 64)}}
  eff_w, eff_b = wt * lr_mul / np.sqrt(256), v["params"]["bias"] * lr_mul
  ref = x @ eff_w + eff_b
  ref = lrelu(ref) * np.sqrt(2) if act == "lrelu" else ref
  np.testing.assert_allclose(jax.jit(layer.apply)(v, x), ref, rtol=1e-5, atol=1e-5)
  # the effective weight has unit-variance outputs for unit-variance inputs (equalised lr)
  assert abs((x @ (wt * lr_mul / np.sqrt(256))).std() - 1) < 0.1


@pytest.mark.parametrize("up,down", [(False, False), (False, True), (True, False)])
def test_equal_conv(up, down):
  layer = layers.EqualConv(6, 3, up=up, down=down, activation="lrelu")
  x = normal(11, 2, 8, 8, 5)
  v = layer.init(jax.random.key(1), x)
  wt = np.asarray(v["params"]["weight"])
  assert wt.shape == (3, 3, 5, 6)
  v = {"params": {"weight": wt, "bias": normal(12, 6)}}
  # StyleGAN2 runs up layers with flip_weight=False: a true convolution
  ref = conv_resample_ref(x, wt / np.sqrt(5 * 9), int(up) + 1, int(down) + 1, flip_weight=not up)
  ref = lrelu(ref + v["params"]["bias"]) * np.sqrt(2) * 0.5
  out = jax.jit(lambda v, x: layer.apply(v, x, gain=0.5))(v, x)
  side = 16 if up else 4 if down else 8
  assert out.shape == ref.shape == (2, side, side, 6)
  np.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-5)
  clamped = layers.EqualConv(6, 3, up=up, down=down, activation="lrelu", conv_clamp=0.1)
  assert np.abs(clamped.apply(v, x, gain=0.5)).max() <= 0.05 + 1e-7  # clamp * gain


# ------------------------------------------------------------------------ modulated conv

def modconv_ref(x, weight, styles, demodulate, up=False, flip_weight=True):
  """Per-sample weights w''_b, each sample convolved on its own."""
  out = []
  for b in range(x.shape[0]):
    w = weight.astype(np.float64) * styles[b].astype(np.float64)[None, None, :, None]
    if demodulate:
      w = w / np.sqrt(np.sum(w ** 2, axis=(0, 1, 2)) + 1e-8)
    out.append(conv_resample_ref(x[b:b + 1], w, 2 if up else 1, flip_weight=flip_weight)[0])
  return np.stack(out)


@pytest.mark.parametrize("demodulate", [True, False])
@pytest.mark.parametrize("up,k", [(False, 3), (True, 3), (False, 1)])
def test_modulated_conv_is_the_per_sample_weight_conv(demodulate, up, k):
  x, weight, styles = normal(13, 3, 6, 6, 4), normal(14, k, k, 4, 5), normal(15, 3, 4) + 1
  out = jax.jit(lambda *a: layers.modulated_conv(*a, demodulate=demodulate, up=up,
                                                 flip_weight=not up))(x, weight, styles)
  ref = modconv_ref(x, weight, styles, demodulate, up, flip_weight=not up)
  np.testing.assert_allclose(out, ref, rtol=1e-4, atol=1e-5)


def test_synthesis_layer():
  layer = layers.SynthesisLayer(5, up=True)
  x, w = normal(16, 2, 4, 4, 6), normal(17, 2, 8)
  v = layer.init(jax.random.key(2), x, w)
  p = flat(v["params"])
  assert p["noise_strength"] == 0 and v["constants"]["noise_const"].shape == (8, 8)
  np.testing.assert_array_equal(p["affine/bias"], 1.0)              # styles start near 1
  apply = jax.jit(layer.apply, static_argnames="noise_mode")
  out = apply(v, x, w, rngs={"noise": jax.random.key(3)})
  assert out.shape == (2, 8, 8, 5)
  # at init the noise adds exactly 0, whatever the key and mode
  for key in (4, 5):
    np.testing.assert_array_equal(apply(v, x, w, rngs={"noise": jax.random.key(key)}), out)
  np.testing.assert_array_equal(apply(v, x, w, noise_mode="none"), out)
  np.testing.assert_array_equal(apply(v, x, w, noise_mode="const"), out)
  # the NumPy reference: affine, modulated demodulated up-conv, bias, lrelu * sqrt(2)
  styles = w @ (p["affine/weight"] / np.sqrt(8)) + p["affine/bias"]
  ref = modconv_ref(x, p["weight"], styles, True, up=True, flip_weight=False)
  np.testing.assert_allclose(out, lrelu(ref + p["bias"]) * np.sqrt(2), rtol=1e-4, atol=1e-5)


def test_synthesis_noise():
  layer = layers.SynthesisLayer(3, activation="linear")
  x, w = normal(18, 2, 8, 8, 4), normal(19, 2, 8)
  v = layer.init(jax.random.key(6), x, w)
  v = jax.tree_util.tree_map(lambda a: a, v)
  v["params"]["noise_strength"] = jnp.asarray(0.5)
  none = layer.apply(v, x, w, noise_mode="none")
  k = jax.random.key(7)
  rnd = layer.apply(v, x, w, rngs={"noise": k}) - none                 # [B, H, W, C]
  # one N(0, 1) map per sample, shared by the channels, times the strength
  np.testing.assert_allclose(rnd, rnd[..., :1] * np.ones(3), atol=1e-5)
  assert np.abs(rnd[0] - rnd[1]).max() > 0.1
  np.testing.assert_allclose(np.std(np.asarray(rnd[..., 0])), 0.5, rtol=0.3)
  np.testing.assert_array_equal(layer.apply(v, x, w, rngs={"noise": k}) - none, rnd)
  assert np.abs(layer.apply(v, x, w, rngs={"noise": jax.random.key(8)}) - none - rnd).max() > 0.1
  const = layer.apply(v, x, w, noise_mode="const") - none
  np.testing.assert_allclose(const, 0.5 * v["constants"]["noise_const"][None, :, :, None]
                             * np.ones((2, 1, 1, 3)), atol=1e-5)
  with pytest.raises(Exception, match="noise"):                       # 'random' needs the rng
    layer.apply(v, x, w)


def test_to_rgb():
  layer = layers.ToRGB(3)
  x, w = normal(20, 2, 4, 4, 6), normal(21, 2, 8)
  v = layer.init(jax.random.key(9), x, w)
  p = flat(v["params"])
  p["bias"] = normal(22, 3)
  styles = (w @ (p["affine/weight"] / np.sqrt(8)) + p["affine/bias"]) / np.sqrt(6)
  ref = modconv_ref(x, p["weight"], styles, demodulate=False) + p["bias"]
  params = unflat(p)
  np.testing.assert_allclose(layer.apply({"params": params}, x, w), ref, rtol=1e-4, atol=1e-5)


def test_stylegan2_layers_in_bfloat16():
  x, w = normal(23, 2, 4, 4, 6), normal(24, 2, 8)
  for make in (lambda dt: layers.SynthesisLayer(5, up=True, dtype=dt),
               lambda dt: layers.ToRGB(3, dtype=dt)):
    v = make(jnp.float32).init(jax.random.key(10), x, w)
    kw = {"noise_mode": "none"} if isinstance(make(jnp.float32), layers.SynthesisLayer) else {}
    f32 = make(jnp.float32).apply(v, x, w, **kw)
    bf16 = make(jnp.bfloat16).apply(v, x, w, **kw)
    assert bf16.dtype == jnp.bfloat16
    np.testing.assert_allclose(np.asarray(bf16, np.float32), f32, rtol=0.05, atol=0.05)
  v = layers.EqualConv(4, down=True).init(jax.random.key(11), x)
  out = layers.EqualConv(4, down=True, dtype=jnp.bfloat16).apply(v, x)
  assert out.dtype == jnp.bfloat16 and out.shape == (2, 2, 2, 4)


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


# ------------------------------------------------------------------------- spectral norm

class SNWrap(nn.Module):
  layer: nn.Module

  @nn.compact
  def __call__(self, x, train: bool = True):
    return layers.spectral_norm(self.layer, x, train)


def power_step(w, u):
  """One power-iteration step of Flax's SpectralNorm on w [-1, F] from u [1, F] -> sigma."""
  l2n = lambda a: a / np.sqrt(np.sum(a ** 2) + 1e-12)
  v = l2n(u @ w.T)
  u = l2n(v @ w)
  return float((v @ w @ u.T)[0, 0])


@pytest.mark.parametrize("kind", ["dense", "conv"])
def test_spectral_norm_converges_to_the_top_singular_value(kind):
  if kind == "dense":
    layer, x = nn.Dense(8, use_bias=False), normal(26, 4, 12)
  else:
    layer, x = nn.Conv(8, (3, 3), padding="SAME", use_bias=False), normal(26, 2, 5, 5, 4)
  model = SNWrap(layer)
  v = v0 = model.init(jax.random.key(12), x, train=False)
  kernel = np.asarray(v["params"]["layer"]["kernel"], np.float64)
  mat = kernel.reshape(-1, kernel.shape[-1])                         # [k*k*Cin, F]
  top = np.linalg.svd(mat, compute_uv=False)[0]
  step = jax.jit(lambda v, x: model.apply(v, x, train=True, mutable=["batch_stats"]))
  for _ in range(50):                                                # one step per train call
    out, stats = step(v, x)
    v = {"params": v["params"], **stats}
  sigma = float(flat(v["batch_stats"])["SpectralNorm_0/layer/kernel/sigma"])
  np.testing.assert_allclose(sigma, top, rtol=1e-3)
  if kind == "dense":
    np.testing.assert_allclose(out, x @ (mat / top), rtol=2e-3, atol=1e-5)
  # eval: the stored u is used (one step from it, as Chainer) and nothing is written back;
  # checked both at init (u random: far from the top singular vector) and converged
  for v in (v0, v):
    u = flat(v["batch_stats"])["SpectralNorm_0/layer/kernel/u"]
    out_eval, new = model.apply(v, x, train=False, mutable=["batch_stats"])
    for a, b in zip(jax.tree_util.tree_leaves(new), jax.tree_util.tree_leaves(v["batch_stats"])):
      np.testing.assert_array_equal(a, b)
    ref = layer.apply({"params": {"kernel": kernel / power_step(mat, u)}}, x)
    np.testing.assert_allclose(out_eval, ref, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(model.apply(v, x, train=False), out_eval)


def test_sn_embed():
  model = layers.SNEmbed(10, 16)
  y = jnp.array([0, 3, 3, 9])
  v = model.init(jax.random.key(13), y, train=False)
  table = np.asarray(v["params"]["Embed_0"]["embedding"], np.float64)
  assert table.shape == (10, 16) and "batch_stats" in v
  step = jax.jit(lambda v, y: model.apply(v, y, train=True, mutable=["batch_stats"]))
  for _ in range(50):
    out, stats = step(v, y)
    v = {"params": v["params"], **stats}
  top = np.linalg.svd(table, compute_uv=False)[0]
  np.testing.assert_allclose(out, table[np.asarray(y)] / top, rtol=1e-3, atol=1e-6)
  plain = layers.SNEmbed(10, 16, spectral_norm=False)
  np.testing.assert_allclose(plain.apply({"params": v["params"]}, y), table[np.asarray(y)],
                             rtol=1e-6)


# ------------------------------------------------------------ conditional BN, projection

def test_conditional_batch_norm():
  bn = layers.ConditionalBatchNorm(num_classes=3)
  x = normal(27, 6, 4, 4, 5) * 2 + 1
  y = np.array([0, 1, 2, 2, 1, 0])
  v = bn.init(jax.random.key(14), x, y, train=False)
  np.testing.assert_array_equal(v["params"]["gamma"], 1.0)          # SNP's init
  np.testing.assert_array_equal(v["params"]["beta"], 0.0)
  gamma, beta = normal(28, 3, 5), normal(29, 3, 5)
  v = {"params": {"gamma": gamma, "beta": beta}, "batch_stats": v["batch_stats"]}
  out, stats = bn.apply(v, x, y, train=True, mutable=["batch_stats"])
  mean, var = x.mean(axis=(0, 1, 2)), x.var(axis=(0, 1, 2))
  x_hat = (x - mean) / np.sqrt(var + 2e-5)
  ref = gamma[y][:, None, None] * x_hat + beta[y][:, None, None]
  np.testing.assert_allclose(out, ref, rtol=1e-4, atol=1e-5)
  ra = flat(stats["batch_stats"])
  np.testing.assert_allclose(ra["BatchNorm_0/mean"], 0.1 * mean, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(ra["BatchNorm_0/var"], 0.9 + 0.1 * var, rtol=1e-5)
  # eval: the running statistics, not the batch's
  v = {"params": v["params"], **stats}
  out = bn.apply(v, x, y, train=False)
  x_hat = (x - ra["BatchNorm_0/mean"]) / np.sqrt(ra["BatchNorm_0/var"] + 2e-5)
  np.testing.assert_allclose(out, gamma[y][:, None, None] * x_hat + beta[y][:, None, None],
                             rtol=1e-4, atol=1e-5)


def test_projection_logits():
  h, y = normal(30, 4, 6), np.array([1, 0, 2, 1])
  embed, w = normal(31, 3, 6), normal(32, 6, 1)
  ref = (h @ w)[:, 0] + np.sum(embed[y] * h, axis=1)
  np.testing.assert_allclose(layers.projection_logits(h, y, embed, w), ref, rtol=1e-5)
  np.testing.assert_allclose(layers.projection_logits(h, y, embed, w, 0.5), ref + 0.5, rtol=1e-5)


def test_projection_head():
  h, y = normal(33, 4, 6), jnp.array([1, 0, 2, 1])
  head = layers.ProjectionHead(3, spectral_norm=False, use_bias=True)
  v = head.init(jax.random.key(15), h, y)
  p = flat(v["params"])
  ref = h @ p["psi/kernel"][:, 0] + p["psi/bias"][0] + np.sum(p["embed/Embed_0/embedding"][y] * h, 1)
  np.testing.assert_allclose(head.apply(v, h, y), ref, rtol=1e-5)
  # spectrally normalised (SNP: no bias): after the power iteration converges
  head = layers.ProjectionHead(3, spectral_norm=True)
  v = head.init(jax.random.key(16), h, y, train=False)
  assert "psi" in v["params"] and "bias" not in v["params"]["psi"]
  step = jax.jit(lambda v: head.apply(v, h, y, train=True, mutable=["batch_stats"]))
  for _ in range(50):
    out, stats = step(v)
    v = {"params": v["params"], **stats}
  p = flat(v["params"])
  w, e = p["psi/kernel"], p["embed/Embed_0/embedding"]
  ref = layers.projection_logits(h, y, e / np.linalg.svd(e, compute_uv=False)[0],
                                 w / np.linalg.norm(w))
  np.testing.assert_allclose(out, ref, rtol=1e-3, atol=1e-5)
  uncond = layers.ProjectionHead(0, spectral_norm=False)
  v = uncond.init(jax.random.key(17), h)
  np.testing.assert_allclose(uncond.apply(v, h), h @ v["params"]["psi"]["kernel"][:, 0], rtol=1e-5)


# ---------------------------------------------------------------------------- R3GAN

def test_msr_grouped_conv():
  conv = layers.MSRConv(8, kernel=3, groups=4, gain=2.0)
  x = normal(34, 2, 6, 6, 12)
  v = conv.init(jax.random.key(18), x)
  k = np.asarray(v["params"]["kernel"])
  assert k.shape == (3, 3, 3, 8)                                     # [k, k, Cin/G, F]
  ref = conv_ref(np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0))), k, groups=4)
  np.testing.assert_allclose(jax.jit(conv.apply)(v, x), ref, rtol=1e-5, atol=1e-5)
  # group g only sees its own input channels
  x2 = x.copy()
  x2[..., :3] += 1.0
  diff = np.abs(np.asarray(conv.apply(v, x2) - conv.apply(v, x)))
  assert diff[..., 2:].max() == 0 and diff[..., :2].max() > 0
  # MSR init: N(0, gain / sqrt(Cin/G * k^2))
  big = layers.MSRConv(256, kernel=3, groups=4, gain=2.0).init(jax.random.key(19),
                                                                np.zeros((1, 3, 3, 64)))
  np.testing.assert_allclose(np.std(big["params"]["kernel"]), 2.0 / np.sqrt(16 * 9), rtol=0.02)


def test_r3_residual_block():
  block = layers.R3ResidualBlock(cardinality=4, expansion=2, kernel=3, variance_scaling=8)
  x = normal(35, 2, 6, 6, 32)
  v = block.init(jax.random.key(20), x)
  p = flat(v["params"])
  np.testing.assert_array_equal(block.apply(v, x), x)                # the identity at init
  np.testing.assert_array_equal(p["LinearLayer3/kernel"], 0.0)
  gain = np.sqrt(2 / (1 + 0.2 ** 2)) * 8 ** (-1 / 4)
  assert p["LinearLayer1/kernel"].shape == (1, 1, 32, 64)
  assert p["LinearLayer2/kernel"].shape == (3, 3, 16, 64)           # 64 / 4 groups
  np.testing.assert_allclose(p["LinearLayer1/kernel"].std(), gain / np.sqrt(32), rtol=0.05)
  np.testing.assert_allclose(p["LinearLayer2/kernel"].std(), gain / np.sqrt(16 * 9), rtol=0.05)
  # with a non-zero last conv and biases: the NumPy block
  p["LinearLayer3/kernel"] = normal(36, 1, 1, 64, 32) * 0.1
  p["NonLinearity1/bias"], p["NonLinearity2/bias"] = normal(37, 64), normal(38, 64)
  params = unflat(p)
  y = lrelu(conv_ref(x, p["LinearLayer1/kernel"]) + p["NonLinearity1/bias"])
  y = lrelu(conv_ref(np.pad(y, ((0, 0), (1, 1), (1, 1), (0, 0))), p["LinearLayer2/kernel"], 4)
            + p["NonLinearity2/bias"])
  ref = x + conv_ref(y, p["LinearLayer3/kernel"])
  np.testing.assert_allclose(jax.jit(block.apply)({"params": params}, x), ref, rtol=1e-4, atol=1e-4)
