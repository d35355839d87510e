"""Differentiable augmentation of D's inputs: DiffAugment and ADA, as pure JAX functions.

Images are x [B, H, W, C] float in [-1, 1] (C = 1 or 3). Every function is differentiable in
x, jit / vmap friendly, and runs on the device (no host code, no per-sample Python loops).

Policies (`parse_policy`): "" is off, "ada" is ADA's 'bgc' pipeline at probability p, and any
comma-separated subset of "color,translation,cutout" is DiffAugment with those items, applied
in the given order. `augment(x, key, policy, p, row0)` dispatches on the parsed tuple.

Per-sample randomness. Sample i draws everything from its own key
    k_i = jax.random.fold_in(key, row0 + i)
(vmap over i), where row0 is the global index of x's first row (a traced int is fine). So the
augmentation of a row does not depend on how the batch is split over devices: augmenting
x[:4] with row0=0 and x[4:] with row0=4 and concatenating equals augmenting x with row0=0.
Inside a sample, a DiffAugment item draws from fold_in(k_i, its index in POLICIES), and ADA
draws one vector of uniforms and one of normals (`ada_draws`) in which each op reads fixed
slots; either way an op's draws do not depend on which other ops are enabled.

DiffAugment (Zhao et al. 2020; mit-han-lab/data-efficient-gans,
`DiffAugment-stylegan2-pytorch/DiffAugment_pytorch.py`), one draw per sample per op:
  color        brightness  x + (U - 0.5)
               saturation  (x - mean_C x) * (2 U) + mean_C x   (per pixel; identity for C = 1)
               contrast    (x - mean_CHW x) * (U + 0.5) + mean_CHW x
  translation  s = int(0.125 H + 0.5) (W likewise); t ~ randint[-s, s] per axis;
               out[i, j] = x[i + t_h, j + t_w], 0 outside (the code's zero pad + clamped gather)
  cutout       s = int(0.5 H + 0.5) (W likewise); o ~ randint[0, H + 1 - s % 2) per axis;
               zero rows [o - s//2, o - s//2 + s) x the same for columns, clipped to the image
               (the code scatters zeros at clamped indices; the clamped range always meets the
               image, so that is exactly the clipped square)
(The repository's top-level DiffAugment_pytorch.py is an older copy with s = H // 8, H // 2.)

ADA (Karras et al. 2020; NVlabs/stylegan2-ada-pytorch `training/augment.py`, preset 'bgc' =
xflip, rotate90, xint, scale, rotate, aniso, xfrac, brightness, contrast, lumaflip, hue,
saturation). Each op is applied to a sample with probability p (an independent Bernoulli per
op per sample; rotation twice, before and after aniso, each with p_rot = 1 - sqrt(1 - p), so
P(any rotation) = p). The order is ADA's: geometry, then colour.
  pixel blitting (exact gathers, applied in ADA's matrix order xflip, rotate90, xint):
    xflip     flip left-right with probability 1/2 (ADA's i = floor(2 U))
    rotate90  jnp.rot90 by k = floor(4 U) (ADA's rotate2d(pi/2 k)); needs H == W
    xint      out[i, j] = x[refl(i - t_h), refl(j - t_w)], t = round(U(-0.125, 0.125) * side),
              refl the reflect padding ADA pads with (so not a permutation near the border)
  general geometry (one 3x3 inverse matrix G per sample, output pixel -> input point, in
  pixel coordinates centred on the image, composed right to left as ADA's G_inv):
    scale   s = 2^(0.2 N)                 G @= diag(1/s, 1/s)
    rotate  theta ~ U(-pi, pi)            G @= rot(theta)           (pre and post aniso)
    aniso   s = 2^(0.2 N)                 G @= diag(1/s, s)
    xfrac   t = 0.125 N * (W, H)          G @= translate(-t)
    executed by `affine_resample`: bilinear sampling at G @ pixel, reflect padding at the
    borders (one reflection, zeros beyond: ADA clamps its reflect margin to side - 1 and
    grid_sample pads with zeros).
  colour (one 4x4 homogeneous matrix Cm per sample, composed left to right as ADA's C):
    brightness  b = 0.2 N                 Cm = translate3d(b, b, b) @ Cm
    contrast    c = 2^(0.5 N)             Cm = diag(c, c, c, 1) @ Cm
    lumaflip    prob 1/2                  Cm = (I - 2 v v^T) @ Cm,  v = (1, 1, 1, 0) / sqrt(3)
    hue         theta ~ U(-pi, pi)        Cm = rotate3d(v, theta) @ Cm          (C = 3 only)
    saturation  s = 2^N                   Cm = (v v^T + (I - v v^T) s) @ Cm    (C = 3 only)
    applied as rgb' = Cm[:3, :3] rgb + Cm[:3, 3]; for C = 1 as ADA: m = mean of Cm's first
    three rows, x' = x * sum(m[:3]) + m[3] (so only luma changes: x' = a x + b).
Simplified on purpose (the issue asks for bilinear resampling, and these keep it exact/cheap):
  - ADA resamples on a 2x upsampled image with its sym6 wavelet (upfirdn2d up, grid_sample,
    upfirdn2d down) to limit aliasing; here the resampling is plain bilinear on the image.
  - ADA folds xflip / rotate90 / xint into the same matrix as the general geometry and
    resamples once; here they are exact gathers done first (the same composition, but exact
    where ADA's is only as exact as its filters).
  - The 'bgc' preset only: no image-space filtering, noise or cutout (ADA's other presets).
    `ada_augment(..., ops=...)` enables a subset of its ops (AugmentPipe's 0/1 multipliers).

Exactness at p = 0: every gate is U < p, false for all U when p = 0; a non-applied op
contributes an identity (the image itself, a zero shift, an identity matrix chosen with
jnp.where, not a computed one), and the resampling / colour paths return x itself (jnp.where
per sample) when their matrix is exactly the identity. Small matrix products are elementwise
sums (no dot), so they are exact and do not depend on the backend's matmul precision.
"""
import math
from typing import Sequence, Tuple

import jax
import jax.numpy as jnp
import numpy as np

POLICIES = ("color", "translation", "cutout")   # DiffAugment items
ADA = "ada"
ADA_BGC = ("xflip", "rotate90", "xint", "scale", "rotate", "aniso", "xfrac",
           "brightness", "contrast", "lumaflip", "hue", "saturation")

TRANSLATION_RATIO = 0.125
CUTOUT_RATIO = 0.5

# ADA's defaults (AugmentPipe's *_std / *_max).
XINT_MAX = 0.125
SCALE_STD = 0.2
ROTATE_MAX = 1.0
ANISO_STD = 0.2
XFRAC_STD = 0.125
BRIGHTNESS_STD = 0.2
CONTRAST_STD = 0.5
HUE_MAX = 1.0
SATURATION_STD = 1.0

_VALID = (f"valid: '' (off), '{ADA}' (alone), or a comma-separated subset of "
          f"{', '.join(POLICIES)} (in the order to apply them)")


def parse_policy(policy: str) -> Tuple[str, ...]:
  """"" -> (); "ada" -> ("ada",); "color, translation" -> ("color", "translation")."""
  if not policy.strip():
    return ()
  items = tuple(item.strip() for item in policy.split(","))
  for item in items:
    if item not in POLICIES + (ADA,):
      raise ValueError(f"unknown augment policy item {item!r} in {policy!r}; {_VALID}")
  if ADA in items and len(items) > 1:
    raise ValueError(f"'{ADA}' cannot be combined with other items in {policy!r}; {_VALID}")
  if len(set(items)) != len(items):
    raise ValueError(f"duplicate item in augment policy {policy!r}; {_VALID}")
  return items


def sample_keys(key: jax.Array, batch: int, row0=0) -> jax.Array:
  """The per-sample keys fold_in(key, row0 + i), i < batch: [B] keys."""
  rows = jnp.asarray(row0, jnp.int32) + jnp.arange(batch, dtype=jnp.int32)   # [B]
  return jax.vmap(lambda r: jax.random.fold_in(key, r))(rows)


def _op_key(key: jax.Array, op_id: int) -> jax.Array:
  return jax.random.fold_in(key, op_id)


# ------------------------------------------------------------------------------------------
# DiffAugment. Each op works on one image x [H, W, C] with its parameters given; the rand_*
# wrappers draw the parameters from the sample's key.


def brightness(x, b):
  return x + b


def saturation(x, s):
  mean = jnp.mean(x, axis=-1, keepdims=True)                         # [H, W, 1]
  return (x - mean) * s + mean


def contrast(x, c):
  mean = jnp.mean(x)                                                 # []
  return (x - mean) * c + mean


def color_params(key: jax.Array):
  """The paper's draws: brightness offset U - 0.5, saturation 2 U, contrast U + 0.5."""
  u = jax.random.uniform(key, (3,))                                  # [3]
  return u[0] - 0.5, u[1] * 2.0, u[2] + 0.5


def rand_color(x, key):
  b, s, c = color_params(key)
  x = brightness(x, b.astype(x.dtype))
  x = saturation(x, s.astype(x.dtype))
  return contrast(x, c.astype(x.dtype))


def translation_size(h: int, w: int):
  return int(h * TRANSLATION_RATIO + 0.5), int(w * TRANSLATION_RATIO + 0.5)


def translate(x, dh, dw):
  """out[i, j] = x[i + dh, j + dw] where that is inside the image, else 0."""
  h, w = x.shape[:2]
  rows = jnp.arange(h) + dh                                          # [H]
  cols = jnp.arange(w) + dw                                          # [W]
  inside = (((rows >= 0) & (rows < h))[:, None] &
            ((cols >= 0) & (cols < w))[None, :])                     # [H, W]
  g = x[jnp.clip(rows, 0, h - 1)][:, jnp.clip(cols, 0, w - 1)]      # [H, W, C]
  return jnp.where(inside[..., None], g, jnp.zeros_like(g))


def translation_params(key: jax.Array, h: int, w: int):
  """Integer shifts (dh, dw), each uniform in [-s, s] with s = int(0.125 side + 0.5)."""
  s = jnp.asarray(translation_size(h, w))                            # [2]
  t = jax.random.randint(key, (2,), -s, s + 1)                       # [2]
  return t[0], t[1]


def rand_translation(x, key):
  return translate(x, *translation_params(key, *x.shape[:2]))


def cutout_size(h: int, w: int):
  return int(h * CUTOUT_RATIO + 0.5), int(w * CUTOUT_RATIO + 0.5)


def cutout_mask(h: int, w: int, oh, ow, dtype=jnp.float32):
  """1, except 0 on rows [oh - sh//2, oh - sh//2 + sh) x cols [ow - sw//2, ...): [H, W]."""
  sh, sw = cutout_size(h, w)
  rows = jnp.arange(h) - (oh - sh // 2)                              # [H]
  cols = jnp.arange(w) - (ow - sw // 2)                              # [W]
  cut = (((rows >= 0) & (rows < sh))[:, None] &
         ((cols >= 0) & (cols < sw))[None, :])                       # [H, W]
  return jnp.where(cut, 0, 1).astype(dtype)


def cutout_params(key: jax.Array, h: int, w: int):
  """Square centres (oh, ow), oh uniform in [0, H + 1 - sh % 2) (W likewise), as the code."""
  sh, sw = cutout_size(h, w)
  hi = jnp.asarray([h + (1 - sh % 2), w + (1 - sw % 2)])             # [2]
  o = jax.random.randint(key, (2,), 0, hi)                           # [2]
  return o[0], o[1]


def rand_cutout(x, key):
  h, w = x.shape[:2]
  mask = cutout_mask(h, w, *cutout_params(key, h, w), dtype=x.dtype)  # [H, W]
  return x * mask[..., None]


_DIFF_FNS = {"color": rand_color, "translation": rand_translation, "cutout": rand_cutout}


def _check_image(x):
  if x.ndim != 4 or x.shape[-1] not in (1, 3):
    raise ValueError(f"augment expects images [B, H, W, C] with C = 1 or 3, got {x.shape}")


def diff_augment(x, key, policy: Sequence[str], row0=0):
  """DiffAugment: the policy's items, in order, with per-sample draws. x [B, H, W, C]."""
  _check_image(x)
  for item in policy:
    if item not in _DIFF_FNS:
      raise ValueError(f"unknown DiffAugment item {item!r}; valid: {', '.join(POLICIES)}")
  if not policy:
    return x

  def one(xi, ki):                                                   # [H, W, C]
    for item in policy:
      xi = _DIFF_FNS[item](xi, _op_key(ki, POLICIES.index(item)))
    return xi

  return jax.vmap(one)(x, sample_keys(key, x.shape[0], row0))


# ------------------------------------------------------------------------------------------
# ADA. 3x3 (geometry) and 4x4 (colour) matrices for one sample; products are elementwise.


def _mm(a, b):
  """a @ b for small matrices, as broadcast multiply + sum (exact for identities, and
  independent of the backend's matmul precision)."""
  return jnp.sum(a[:, :, None] * b[None, :, :], axis=1)


def _mat(rows):
  return jnp.stack([jnp.stack([jnp.asarray(e, jnp.float32) for e in row]) for row in rows])


def translate2d(tx, ty):
  return _mat([[1, 0, tx], [0, 1, ty], [0, 0, 1]])


def scale2d(sx, sy):
  return _mat([[sx, 0, 0], [0, sy, 0], [0, 0, 1]])


def rotate2d(theta):
  c, s = jnp.cos(theta), jnp.sin(theta)
  return _mat([[c, -s, 0], [s, c, 0], [0, 0, 1]])


def translate3d(tx, ty, tz):
  return _mat([[1, 0, 0, tx], [0, 1, 0, ty], [0, 0, 1, tz], [0, 0, 0, 1]])


def scale3d(sx, sy, sz):
  return _mat([[sx, 0, 0, 0], [0, sy, 0, 0], [0, 0, sz, 0], [0, 0, 0, 1]])


def rotate3d(v, theta):
  """Rotation by theta about the unit axis v (homogeneous 4x4), as ADA's rotate3d."""
  vx, vy, vz = v[0], v[1], v[2]
  s, c = jnp.sin(theta), jnp.cos(theta)
  cc = 1 - c
  return _mat([[vx * vx * cc + c, vx * vy * cc - vz * s, vx * vz * cc + vy * s, 0],
               [vy * vx * cc + vz * s, vy * vy * cc + c, vy * vz * cc - vx * s, 0],
               [vz * vx * cc - vy * s, vz * vy * cc + vx * s, vz * vz * cc + c, 0],
               [0, 0, 0, 1]])


LUMA = np.array([1.0, 1.0, 1.0, 0.0], np.float32) / np.sqrt(3.0)  # ADA's luma axis v


def _reflect(i, n: int):
  """Reflect-padding index (no edge repeat, one reflection) and whether it is inside the
  padded image (ADA's reflect margin is at most n - 1; beyond it, zeros)."""
  valid = (i >= -(n - 1)) & (i <= 2 * (n - 1))
  r = jnp.where(i < 0, -i, i)
  r = jnp.where(r > n - 1, 2 * (n - 1) - r, r)
  return jnp.clip(r, 0, n - 1), valid


def xflip(x):
  return x[:, ::-1]


def int_translate_reflect(x, th, tw):
  """out[i, j] = x[refl(i - th), refl(j - tw)]: content moves by (th, tw), reflect padding."""
  h, w = x.shape[:2]
  rows, _ = _reflect(jnp.arange(h) - th, h)                          # [H]
  cols, _ = _reflect(jnp.arange(w) - tw, w)                          # [W]
  return x[rows][:, cols]


def affine_resample(x, g_inv):
  """Bilinear sample of one image x [H, W, C] at g_inv @ (u, v, 1) for each output pixel,
  (u, v) = (col - (W-1)/2, row - (H-1)/2): g_inv maps output to input, in centred pixel
  units, as ADA's G_inv. Reflect padding outside the image (zeros beyond one reflection)."""
  h, w = x.shape[:2]
  g = g_inv.astype(jnp.float32)
  cy, cx = (h - 1) / 2, (w - 1) / 2
  v, u = jnp.meshgrid(jnp.arange(h) - cy, jnp.arange(w) - cx, indexing="ij")  # [H, W]
  qx = g[0, 0] * u + g[0, 1] * v + g[0, 2] + cx                      # [H, W] input col
  qy = g[1, 0] * u + g[1, 1] * v + g[1, 2] + cy                      # [H, W] input row
  x0, y0 = jnp.floor(qx), jnp.floor(qy)
  fx, fy = (qx - x0)[..., None], (qy - y0)[..., None]                # [H, W, 1]
  x0, y0 = x0.astype(jnp.int32), y0.astype(jnp.int32)

  def tap(iy, ix):                                                   # [H, W, C]
    ry, vy = _reflect(iy, h)
    rx, vx = _reflect(ix, w)
    return jnp.where((vy & vx)[..., None], x[ry, rx], 0)

  top = tap(y0, x0) * (1 - fx) + tap(y0, x0 + 1) * fx
  bottom = tap(y0 + 1, x0) * (1 - fx) + tap(y0 + 1, x0 + 1) * fx
  return (top * (1 - fy) + bottom * fy).astype(x.dtype)


def apply_color_matrix(x, cm):
  """x [H, W, C] through the 4x4 colour matrix cm, as ADA (C = 3: cm[:3, :3] rgb + cm[:3, 3];
  C = 1: m = mean of cm's first three rows, x * sum(m[:3]) + m[3])."""
  cm = cm.astype(x.dtype)
  if x.shape[-1] == 3:
    return sum(x[..., k:k + 1] * cm[:3, k] for k in range(3)) + cm[:3, 3]
  m = jnp.mean(cm[:3], axis=0)                                       # [4]
  return x * jnp.sum(m[:3]) + m[3]


# One sample's random numbers: u ~ U(0, 1) [N_U] and n ~ N(0, 1) [N_N], drawn at once from the
# sample's key; each op reads fixed slots, so the ops are independent of each other and of
# which ops are enabled. Gates are u[op] < p (rotate_pre / rotate_post: < p_rot).
_GATES = ("xflip", "rotate90", "xint", "scale", "rotate_pre", "aniso", "rotate_post", "xfrac",
          "brightness", "contrast", "lumaflip", "hue", "saturation")
_U = {name: i for i, name in enumerate(
    _GATES + ("xflip_i", "rotate90_k", "xint_x", "xint_y", "rotate_pre_theta",
              "rotate_post_theta", "lumaflip_i", "hue_theta"))}
_N = {name: i for i, name in enumerate(
    ("scale", "aniso", "xfrac_x", "xfrac_y", "brightness", "contrast", "saturation"))}


def ada_draws(key: jax.Array):
  """The sample's uniforms u [N_U] and normals n [N_N]."""
  ku, kn = jax.random.split(key)
  return jax.random.uniform(ku, (len(_U),)), jax.random.normal(kn, (len(_N),))


def _pick(apply, m):
  """m where the op is applied, else the exact identity."""
  return jnp.where(apply, m, jnp.eye(m.shape[0], dtype=m.dtype))


def ada_pixel(x, u, p, ops):
  """xflip, rotate90, xint as exact gathers, in ADA's G_inv order (flip first)."""
  if "xflip" in ops:
    flip = (u[_U["xflip"]] < p) & (u[_U["xflip_i"]] >= 0.5)          # i = floor(2 U) = 1
    x = jnp.where(flip, xflip(x), x)
  if "rotate90" in ops:
    if x.shape[0] != x.shape[1]:
      raise ValueError(f"ADA rotate90 needs square images, got {x.shape[:2]}")
    k = jnp.clip(jnp.floor(u[_U["rotate90_k"]] * 4).astype(jnp.int32), 0, 3)
    k = jnp.where(u[_U["rotate90"]] < p, k, 0)
    x = jnp.stack([jnp.rot90(x, j) for j in range(4)])[k]            # [H, W, C]
  if "xint" in ops:
    h, w = x.shape[:2]
    t = (jnp.stack([u[_U["xint_x"]], u[_U["xint_y"]]]) * 2 - 1) * XINT_MAX  # [2] (x, y)
    t = jnp.where(u[_U["xint"]] < p, t, 0.0)
    tw, th = jnp.round(t[0] * w).astype(jnp.int32), jnp.round(t[1] * h).astype(jnp.int32)
    x = int_translate_reflect(x, th, tw)
  return x


def ada_geometry_matrix(u, n, p, ops, h: int, w: int):
  """The general geometric G_inv [3, 3] of one sample: scale, rotate, aniso, rotate, xfrac."""
  g = jnp.eye(3)
  p_rot = 1 - jnp.sqrt(jnp.clip(1 - p, 0, 1))                        # P(pre or post) = p
  theta = lambda slot: (u[_U[slot]] * 2 - 1) * math.pi * ROTATE_MAX
  if "scale" in ops:
    s = jnp.exp2(n[_N["scale"]] * SCALE_STD)
    g = _mm(g, _pick(u[_U["scale"]] < p, scale2d(1 / s, 1 / s)))
  if "rotate" in ops:                                                # rotate2d_inv(-theta)
    g = _mm(g, _pick(u[_U["rotate_pre"]] < p_rot, rotate2d(theta("rotate_pre_theta"))))
  if "aniso" in ops:
    s = jnp.exp2(n[_N["aniso"]] * ANISO_STD)
    g = _mm(g, _pick(u[_U["aniso"]] < p, scale2d(1 / s, s)))
  if "rotate" in ops:
    g = _mm(g, _pick(u[_U["rotate_post"]] < p_rot, rotate2d(theta("rotate_post_theta"))))
  if "xfrac" in ops:
    tx, ty = n[_N["xfrac_x"]] * XFRAC_STD * w, n[_N["xfrac_y"]] * XFRAC_STD * h
    g = _mm(g, _pick(u[_U["xfrac"]] < p, translate2d(-tx, -ty)))
  return g


def ada_color_matrix(u, n, p, ops, channels: int):
  """The colour matrix C [4, 4] of one sample (hue and saturation only for RGB, as ADA)."""
  cm = jnp.eye(4)
  v = jnp.asarray(LUMA)
  vv = jnp.outer(v, v)                                               # [4, 4]
  if "brightness" in ops:
    b = n[_N["brightness"]] * BRIGHTNESS_STD
    cm = _mm(_pick(u[_U["brightness"]] < p, translate3d(b, b, b)), cm)
  if "contrast" in ops:
    c = jnp.exp2(n[_N["contrast"]] * CONTRAST_STD)
    cm = _mm(_pick(u[_U["contrast"]] < p, scale3d(c, c, c)), cm)
  if "lumaflip" in ops:
    flip = (u[_U["lumaflip"]] < p) & (u[_U["lumaflip_i"]] >= 0.5)    # i = floor(2 U) = 1
    cm = _mm(_pick(flip, jnp.eye(4) - 2 * vv), cm)
  if "hue" in ops and channels > 1:
    theta = (u[_U["hue_theta"]] * 2 - 1) * math.pi * HUE_MAX
    cm = _mm(_pick(u[_U["hue"]] < p, rotate3d(v, theta)), cm)
  if "saturation" in ops and channels > 1:
    s = jnp.exp2(n[_N["saturation"]] * SATURATION_STD)
    cm = _mm(_pick(u[_U["saturation"]] < p, vv + (jnp.eye(4) - vv) * s), cm)
  return cm


def _is_identity(m):
  return jnp.all(m == jnp.eye(m.shape[0], dtype=m.dtype))


def _ada_one(x, key, p, ops):                                        # [H, W, C]
  h, w, c = x.shape
  u, n = ada_draws(key)
  x = ada_pixel(x, u, p, ops)
  g = ada_geometry_matrix(u, n, p, ops, h, w)
  x = jnp.where(_is_identity(g), x, affine_resample(x, g))
  cm = ada_color_matrix(u, n, p, ops, c)
  return jnp.where(_is_identity(cm), x, apply_color_matrix(x, cm))


def ada_augment(x, key, p, row0=0, *, ops: Sequence[str] = ADA_BGC):
  """ADA's 'bgc' pipeline at probability p (a scalar in [0, 1], may be traced). x [B, H, W, C].
  `ops` (a subset of ADA_BGC, default all) is AugmentPipe's per-op multiplier 0/1."""
  _check_image(x)
  ops = tuple(ops)
  for op in ops:
    if op not in ADA_BGC:
      raise ValueError(f"unknown ADA op {op!r}; valid: {', '.join(ADA_BGC)}")
  p = jnp.asarray(p, jnp.float32)
  return jax.vmap(lambda xi, ki: _ada_one(xi, ki, p, ops))(
      x, sample_keys(key, x.shape[0], row0))


# ------------------------------------------------------------------------------------------


def augment(x, key, policy: Sequence[str], p, row0=0):
  """() -> x; ("ada",) -> ada_augment(x, key, p, row0); else diff_augment (p unused)."""
  policy = tuple(policy)
  if not policy:
    return x
  if policy == (ADA,):
    return ada_augment(x, key, p, row0)
  return diff_augment(x, key, policy, row0)


def ada_update(p, r_t, batch_size: int, interval: int, target: float, kimg: float):
  """ADA's p heuristic: p += sign(r_t - target) * batch_size * interval / (kimg * 1000),
  clipped to [0, 1] (r_t = E[sign(D(real))] over the last `interval` steps)."""
  step = batch_size * interval / (kimg * 1000)
  return jnp.clip(p + jnp.sign(r_t - target) * step, 0.0, 1.0)
