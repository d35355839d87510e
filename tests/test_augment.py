"""augment: DiffAugment and ADA against NumPy references of the papers' code, exact
identities (p = 0, policy off), per-sample independence of the device split, and gradients.

Geometry is checked without knowing how the draws are made: each augmented sample must equal
the reference op for *some* parameter in the paper's range (and the parameters seen must vary).
Compiles dominate the runtime, so each jitted function is built once and shared."""
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxgan import augment as A

KEY = jax.random.key(0)


def images(shape, seed=0, away_from_zero=False):
  """Distinct values in [-1, 1] (|x| >= 0.1 when away_from_zero: zeros mean cut)."""
  rng = np.random.default_rng(seed)
  x = rng.uniform(-1, 1, shape)
  if away_from_zero:
    x = np.sign(x) * (0.1 + 0.9 * np.abs(x))
  return jnp.asarray(x, jnp.float32)


@functools.lru_cache(maxsize=None)
def _diff_jit(policy):
  return jax.jit(lambda x, k, r: A.diff_augment(x, k, policy, r))


@functools.lru_cache(maxsize=None)
def _ada_jit(ops):
  return jax.jit(lambda x, k, p, r: A.ada_augment(x, k, p, r, ops=ops))


def diff_fn(policy):
  """jitted diff_augment(x, key, policy, row0), row0 traced (one compile per shape)."""
  return lambda x, k, r: _diff_jit(policy)(x, k, jnp.int32(r))


def ada_fn(ops=A.ADA_BGC):
  """jitted ada_augment(x, key, p, row0, ops=ops), p and row0 traced."""
  return lambda x, k, p, r: _ada_jit(ops)(x, k, jnp.float32(p), jnp.int32(r))


def luma(x):                                                         # [..., 1]
  return np.mean(x, axis=-1, keepdims=True)


# ---------------------------------------------------------------------------------- policy


def test_parse_policy_valid():
  assert A.parse_policy("") == ()
  assert A.parse_policy("  ") == ()
  assert A.parse_policy("ada") == ("ada",)
  assert A.parse_policy("color,translation,cutout") == ("color", "translation", "cutout")
  assert A.parse_policy(" cutout , color ") == ("cutout", "color")
  assert A.parse_policy("translation") == ("translation",)


@pytest.mark.parametrize("bad", ["colour", "ada,color", "color,color", "color,", "zoom,cutout"])
def test_parse_policy_invalid_names_the_valid_items(bad):
  with pytest.raises(ValueError) as e:
    A.parse_policy(bad)
  assert "color, translation, cutout" in str(e.value) and "'ada'" in str(e.value)


def test_augment_dispatch(monkeypatch):
  x = images((2, 4, 4, 3))
  assert A.augment(x, KEY, (), 0.7) is x
  monkeypatch.setattr(A, "ada_augment", lambda x, k, p, r: ("ada", p, r))
  monkeypatch.setattr(A, "diff_augment", lambda x, k, pol, r: ("diff", pol, r))
  assert A.augment(x, KEY, ("ada",), 0.7, 3) == ("ada", 0.7, 3)
  assert A.augment(x, KEY, ("cutout", "color"), 0.7, 3) == ("diff", ("cutout", "color"), 3)


def test_ada_p0_is_exactly_the_identity():
  x = images((8, 8, 8, 3))
  p = jnp.float32(0.0)                                               # traced under jit
  np.testing.assert_array_equal(ada_fn()(x, KEY, p, 0), x)
  assert not np.array_equal(ada_fn()(x, KEY, jnp.float32(1.0), 0), x)


# ------------------------------------------------------------------------------ DiffAugment


def test_translation_is_a_zero_filled_integer_shift():
  x = images((32, 16, 24, 3))
  out = np.asarray(diff_fn(("translation",))(x, KEY, 0))
  sh, sw = int(16 * 0.125 + 0.5), int(24 * 0.125 + 0.5)             # 2, 3
  seen = set()
  for xi, oi in zip(np.asarray(x), out):
    pad = np.pad(xi, ((sh, sh), (sw, sw), (0, 0)))                   # zeros
    hits = [(dh, dw) for dh in range(-sh, sh + 1) for dw in range(-sw, sw + 1)
            if np.array_equal(oi, pad[sh + dh:sh + dh + 16, sw + dw:sw + dw + 24])]
    assert len(hits) == 1                                            # out[i, j] = x[i+dh, j+dw]
    seen.add(hits[0])
  assert len(seen) >= 10
  assert {dh for dh, _ in seen} == set(range(-sh, sh + 1))
  assert {dw for _, dw in seen} == set(range(-sw, sw + 1))


@pytest.mark.parametrize("h,w", [(16, 24), (13, 10)])                 # even / odd cut sizes
def test_cutout_zeroes_exactly_a_clipped_square(h, w):
  x = np.asarray(images((32, h, w, 3), away_from_zero=True))
  out = np.asarray(diff_fn(("cutout",))(jnp.asarray(x), KEY, 0))
  sh, sw = int(h * 0.5 + 0.5), int(w * 0.5 + 0.5)

  def span(o, s, n):                                                 # the code's clamped range
    return set(range(max(o - s // 2, 0), min(o - s // 2 + s, n)))

  clipped = 0
  for xi, oi in zip(x, out):
    cut = np.all(oi == 0, axis=-1)                                   # [H, W]
    np.testing.assert_array_equal(oi[~cut], xi[~cut])
    rows, cols = set(np.where(cut.any(1))[0]), set(np.where(cut.any(0))[0])
    assert cut.sum() == len(rows) * len(cols)                        # a rectangle
    assert any(rows == span(o, sh, h) for o in range(h + 1 - sh % 2))
    assert any(cols == span(o, sw, w) for o in range(w + 1 - sw % 2))
    clipped += (len(rows), len(cols)) != (sh, sw)
  assert 0 < clipped < len(x)                                        # both full and clipped


def test_color_is_the_papers_formula_with_factors_in_range():
  x = np.asarray(images((64, 8, 8, 3), seed=1), np.float64)
  out = np.asarray(diff_fn(("color",))(jnp.asarray(x, jnp.float32), KEY, 0), np.float64)
  factors = []
  for xi, oi in zip(x, out):
    b = oi.mean() - xi.mean()                                        # sat/contrast keep mean
    m = xi.mean() + b
    lx, lo = luma(xi).ravel(), luma(oi).ravel()
    c = np.polyfit(lx + b - m, lo - m, 1)[0]                         # per-pixel means
    cs = np.sum((oi - luma(oi)) * (xi - luma(xi))) / np.sum((xi - luma(xi)) ** 2)
    s = cs / c
    x1 = xi + b                                                      # brightness
    x2 = (x1 - luma(x1)) * s + luma(x1)                              # saturation
    x3 = (x2 - x2.mean()) * c + x2.mean()                            # contrast
    np.testing.assert_allclose(x3, oi, atol=2e-5)
    factors.append((b, s, c))
  b, s, c = np.array(factors).T
  assert -0.5 <= b.min() < -0.35 and 0.35 < b.max() <= 0.5
  assert 0.0 <= s.min() < 0.3 and 1.7 < s.max() <= 2.0
  assert 0.5 <= c.min() < 0.65 and 1.35 < c.max() <= 1.5


def test_diff_augment_gradients_flow():
  x = images((4, 16, 16, 3), seed=2)
  w = images((4, 16, 16, 3), seed=3)

  @jax.jit
  def grads(x):
    gs = [jax.grad(lambda x_: jnp.sum(A.diff_augment(x_, KEY, (item,)) * w))(x)
          for item in A.POLICIES]
    return gs, A.diff_augment(x, KEY, ("cutout",)) == 0

  gs, cut = grads(x)
  for item, g in zip(A.POLICIES, gs):
    assert np.all(np.isfinite(g)) and np.abs(g).sum() > 0, item
  np.testing.assert_array_equal(gs[2], np.where(cut, 0, w))        # d(x mask w)/dx = mask w


def test_diff_augment_independent_of_the_split():
  policy = ("color", "translation", "cutout")
  x = images((8, 16, 16, 3), seed=4)
  whole = diff_fn(policy)(x, KEY, 0)
  halves = [diff_fn(policy)(x[:4], KEY, 0), diff_fn(policy)(x[4:], KEY, 4)]
  np.testing.assert_allclose(np.concatenate(halves), whole, rtol=0, atol=1e-6)
  assert not np.allclose(halves[0], diff_fn(policy)(x[4:], KEY, 0)[:4])


# ------------------------------------------------------------------------------------- ADA


def test_ada_flip_rot90_are_dihedral_permutations():
  x = np.asarray(images((32, 8, 8, 3), seed=5))
  out = np.asarray(ada_fn(("xflip", "rotate90"))(jnp.asarray(x), KEY, 1.0, 0))
  seen = set()
  for xi, oi in zip(x, out):
    np.testing.assert_array_equal(np.sort(oi, None), np.sort(xi, None))
    hits = [(f, k) for f in (0, 1) for k in range(4)
            if np.array_equal(oi, np.rot90(xi[:, ::-1] if f else xi, k))]
    assert len(hits) == 1
    seen.add(hits[0])
  assert len(seen) >= 6 and (0, 0) in seen                           # i, k also draw 0


def test_ada_xint_is_a_reflect_padded_integer_shift():
  x = np.asarray(images((32, 16, 16, 1), seed=6))
  out = np.asarray(ada_fn(("xint",))(jnp.asarray(x), KEY, 1.0, 0))
  m = round(0.125 * 16)                                              # 2
  seen = set()
  for xi, oi in zip(x, out):
    assert np.isin(oi, xi).all()                                     # values copied, exactly
    pad = np.pad(xi, ((m, m), (m, m), (0, 0)), mode="reflect")
    hits = [(th, tw) for th in range(-m, m + 1) for tw in range(-m, m + 1)
            if np.array_equal(oi, pad[m - th:m - th + 16, m - tw:m - tw + 16])]
    assert len(hits) == 1                                            # out = x[i - th, j - tw]
    seen.add(hits[0])
  assert len(seen) >= 8


def test_affine_resample():
  x = images((8, 8, 2), seed=7)
  mats = jnp.stack([jnp.eye(3), A.rotate2d(jnp.pi / 2), A.translate2d(-2.0, 1.0),
                    A.translate2d(0.5, 0.0)])
  ident, rot, shift, half = jax.jit(jax.vmap(A.affine_resample, (None, 0)))(x, mats)
  np.testing.assert_array_equal(ident, x)
  np.testing.assert_allclose(rot, jnp.rot90(x), atol=1e-5)
  # input point = output + (-2, 1) (x, y): out[i, j] = x[i + 1, j - 2], reflect padded (no
  # edge repeat) past the border
  pad = np.pad(np.asarray(x), ((2, 2), (2, 2), (0, 0)), mode="reflect")
  np.testing.assert_allclose(shift, pad[3:11, 0:8], atol=1e-6)
  np.testing.assert_allclose(half[:, :-1], (x[:, :-1] + x[:, 1:]) / 2, atol=1e-6)


def test_ada_gates_fire_with_probability_p():
  p, n = 0.3, 4000
  keys = A.sample_keys(KEY, n)
  x = images((4, 4, 1), seed=8)

  @jax.jit
  def fired(keys):
    def one(k):
      u, nn = A.ada_draws(k)
      eye3, eye4 = jnp.eye(3), jnp.eye(4)
      c = lambda op: jnp.any(A.ada_color_matrix(u, nn, p, (op,), 3) != eye4)
      g = lambda op: jnp.any(A.ada_geometry_matrix(u, nn, p, (op,), 8, 8) != eye3)
      flip = jnp.any(A.ada_pixel(x, u, p, ("xflip",)) != x)
      return jnp.stack([c("brightness"), c("lumaflip"), g("rotate"), g("xfrac"), flip])
    return jax.vmap(one)(keys)

  freq = np.asarray(fired(keys)).mean(0)
  # lumaflip and xflip flip half of the time they are applied; rotate = pre or post (p_rot)
  np.testing.assert_allclose(freq, [p, p / 2, p, p, p / 2], atol=0.03)


def test_ada_color_on_one_channel_changes_luma_only():
  ops = ("brightness", "contrast", "lumaflip", "hue", "saturation")
  x = np.asarray(images((16, 8, 8, 1), seed=9), np.float64)
  np.testing.assert_array_equal(ada_fn(ops)(jnp.asarray(x, jnp.float32), KEY, 0.0, 0), x)
  out = np.asarray(ada_fn(ops)(jnp.asarray(x, jnp.float32), KEY, 1.0, 0), np.float64)
  slopes = []
  for xi, oi in zip(x, out):
    a, b = np.polyfit(xi.ravel(), oi.ravel(), 1)
    np.testing.assert_allclose(a * xi + b, oi, atol=1e-5)            # x' = a x + b
    slopes.append(a)
  assert min(slopes) < 0 < max(slopes)                               # luma flipped sometimes
  assert np.ptp(np.abs(slopes)) > 0.5                                # contrast varies


def test_ada_color_on_rgb_is_adas_matrix():
  """out = M rgb + t per sample, with ADA's structure: t = beta (1, 1, 1) (brightness), the
  luma axis an eigenvector of M with eigenvalue +-c (contrast, luma flip), and on the chroma
  plane M = c s R(theta) (saturation, hue rotation about the luma axis)."""
  ops = ("brightness", "contrast", "lumaflip", "hue", "saturation")
  x = np.asarray(images((16, 8, 8, 3), seed=10), np.float64)
  out = np.asarray(ada_fn(ops)(jnp.asarray(x, jnp.float32), KEY, 1.0, 0), np.float64)
  v = np.ones(3) / np.sqrt(3)
  plane = np.eye(3) - np.outer(v, v)
  e1 = np.array([1.0, -1.0, 0.0]) / np.sqrt(2)
  flips, sats, cosines = [], [], []
  for xi, oi in zip(x, out):
    xa = np.concatenate([xi.reshape(-1, 3), np.ones((64, 1))], 1)  # [HW, 4]
    w = np.linalg.lstsq(xa, oi.reshape(-1, 3), rcond=None)[0]         # [4, 3]
    np.testing.assert_allclose(xa @ w, oi.reshape(-1, 3), atol=1e-5)
    m, t = w[:3].T, w[3]
    np.testing.assert_allclose(t, t.mean(), atol=1e-5)
    lam = v @ m @ v
    np.testing.assert_allclose(m @ v, lam * v, atol=1e-5)
    mp = m @ plane
    np.testing.assert_allclose(plane @ mp, mp, atol=1e-5)             # chroma stays chroma
    mu2 = np.trace(mp.T @ mp) / 2
    np.testing.assert_allclose(mp.T @ mp, mu2 * plane, atol=1e-4)    # a similarity
    flips.append(lam < 0)
    sats.append(np.sqrt(mu2) / abs(lam))
    cosines.append(e1 @ m @ e1 / np.linalg.norm(m @ e1))
  assert 0 < sum(flips) < len(flips)
  assert np.ptp(np.log2(sats)) > 1
  assert min(cosines) < 0 < max(cosines)


def test_ada_gradients_flow_at_p1():
  x = images((4, 8, 8, 3), seed=12)
  w = images((4, 8, 8, 3), seed=13)
  g = jax.jit(jax.grad(lambda x_: jnp.sum(A.ada_augment(x_, KEY, 1.0) * w)))(x)
  assert np.all(np.isfinite(g)) and np.all(np.abs(g).reshape(4, -1).sum(1) > 0)


def test_ada_independent_of_the_split():
  x = images((8, 8, 8, 3), seed=14)
  p = jnp.float32(0.8)
  whole = ada_fn()(x, KEY, p, 0)
  halves = [ada_fn()(x[:4], KEY, p, 0), ada_fn()(x[4:], KEY, p, 4)]
  np.testing.assert_allclose(np.concatenate(halves), whole, rtol=0, atol=1e-6)
  assert not np.allclose(whole, x)


def test_ada_update():
  step = 32 * 4 / (100 * 1000)
  np.testing.assert_allclose(A.ada_update(0.5, 0.7, 32, 4, 0.6, 100), 0.5 + step, rtol=1e-6)
  np.testing.assert_allclose(A.ada_update(0.5, 0.5, 32, 4, 0.6, 100), 0.5 - step, rtol=1e-6)
  assert float(A.ada_update(0.0, 0.1, 32, 4, 0.6, 100)) == 0.0      # clipped at 0
  assert float(A.ada_update(0.9999, 0.9, 32, 4, 0.6, 100)) == 1.0   # clipped at 1
  assert float(A.ada_update(0.25, 0.6, 32, 4, 0.6, 100)) == 0.25    # sign(0) = 0
