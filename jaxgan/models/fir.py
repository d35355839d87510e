"""FIR resampling of images (StyleGAN2's upfirdn2d and conv2d_resample, NHWC), written for
XLA:CPU: stride-1 convolutions, slices and adds only, so no input-dilated (transposed) or
strided convolution appears in the forward, the backward or the double backward (R1).

Source: NVlabs/stylegan2-ada-pytorch `torch_utils/ops/upfirdn2d.py` (`upfirdn2d`,
`setup_filter`, `filter2d`, `upsample2d`, `downsample2d`) and `conv2d_resample.py`.
R3GAN (`R3GAN/Resamplers.py`: InterpolativeUpsampler / InterpolativeDownsampler) calls the
same `upsample2d` / `downsample2d` with `CreateLowpassKernel([1, 2, 1])` =
outer(conv([1,2,1], [1,1])) / sum = the normalised outer product of [1, 3, 3, 1], so both
use `upsample2d(x, FIR_1331)` / `downsample2d(x, FIR_1331)` here (R3GAN's slow torch
"Reference" classes, a stride-2 conv_transpose2d / conv2d with padding 1 and the kernel times
4 / 1, compute the same numbers; its "Inplace" resamplers, a pixel-shuffle + blur, are not
used by its networks and are not here).

upfirdn2d(x, f, up, down, padding) per channel (`padding` = [x0, x1, y0, y1], x = width):
  1. upsample by inserting up-1 zeros after each pixel:  u[i*up] = x[i]   (length n*up),
  2. pad with zeros (negative = crop):  p[j] = u[j - pad0],
  3. convolve with f (a true convolution unless flip_filter; the outputs whose footprint
     lies inside p): o[q] = gain * sum_k f[K-1-k] * p[q + k],
  4. keep every down-th pixel: out[m] = o[m * down].
The resamplers pad so that the output is n*up (n/down) long, as StyleGAN2:
  upsample2d:   pad0 = (fw + up - 1) // 2,  pad1 = (fw - up) // 2,  gain up**2  -> [2, 1] for fw=4
  downsample2d: pad0 = (fw - down + 1) // 2, pad1 = (fw - down) // 2           -> [1, 1] for fw=4
  filter2d:     pad0 = fw // 2,  pad1 = (fw - 1) // 2                          -> [2, 1] for fw=4
(plus any user padding on top). With [1, 3, 3, 1]/8 per axis, upsample2d makes
  out[2m] = (x[m-1] + 3 x[m]) / 4,  out[2m+1] = (3 x[m] + x[m+1]) / 4
and downsample2d  out[m] = (x[2m-1] + 3 x[2m] + 3 x[2m+1] + x[2m+2]) / 8, separably in H, W.

Implementations (`impl=`), the same function:
  - "slices" (default): separable filters run as two 1-D passes, each output phase a weighted
    sum of shifted slices of the (zero-extended) input, phases interleaved by a reshape: the
    polyphase form of the zero-insert + filter, with no multiply by an inserted zero. Its
    gradients are slices, pads and adds again.
  - "conv": one depth-wise 2-D conv (`feature_group_count=C`), input dilation `up` and window
    stride `down`: the textbook form, and what XLA:CPU runs slowly.
Measured on XLA:CPU (2 shared cores), x [64, 32, 32, 128] float32, median ms, by
`python -m benchmarks.layers` (it prints the table and writes benchmarks/results/layers_cpu.json):

  | op                                      | slices | conv  |
  |-----------------------------------------|--------|-------|
  BENCH_TABLE

conv2d_resample (StyleGAN2's conv with up/down, the modulated and equalised convs use it):
  - up=2: a stride-2 transposed conv computed as one stride-1 conv per output phase
    (polyphase, the transposed conv's multiply-adds and no more) + interleave, then the FIR
    with the pads of the fused op and gain 4;
  - down=2: the FIR with pads (no down), then a stride-2 valid conv computed as the sum of
    one stride-1 conv per input phase (x[a::2, b::2] with kernel w[a::2, b::2]);
  - 1x1 kernels: down = downsample then conv, up = conv then upsample (StyleGAN2's fast paths).
The reference definition it is tested against: x_up = upfirdn2d(x, f, up, pad + resample pads,
gain up**2), then a valid conv with w (correlation when flip_weight, as lax/torch conv2d),
then upfirdn2d(., f, down) -- convolutions commute, so the order is free.
"""
import functools

import jax.numpy as jnp
import numpy as np
from jax import lax

_DN = ("NHWC", "HWIO", "NHWC")
FIR_1331 = (1.0, 3.0, 3.0, 1.0)


def setup_filter(f=FIR_1331, normalize: bool = True, flip_filter: bool = False,
                 gain: float = 1.0, separable=None) -> np.ndarray:
  """StyleGAN2's `setup_filter` as a NumPy constant: 1-D taps stay 1-D (separable) when
  `separable` (default: a 1-D f), else the outer product; normalised to sum 1 (DC gain 1),
  optionally flipped, times gain ** (ndim / 2) (so the 2-D filter's gain is `gain`).
  Note StyleGAN2 keeps 1-D filters of < 8 taps as the 2-D outer product; the function is the
  same, the separable form is just cheaper."""
  f = np.asarray(f, np.float64)
  if f.ndim == 0:
    f = f[None]
  if separable is None:
    separable = f.ndim == 1
  if f.ndim == 1 and not separable:
    f = np.outer(f, f)
  if normalize:
    f = f / f.sum()
  if flip_filter:
    f = np.flip(f)
  return (f * gain ** (f.ndim / 2)).astype(np.float32)


def _parse_padding(padding):
  if isinstance(padding, int):
    padding = [padding, padding]
  if len(padding) == 2:
    px, py = padding
    padding = [px, px, py, py]
  return tuple(int(p) for p in padding)                               # x0, x1, y0, y1


def _taps(f):
  """The separable 1-D taps of f (1-D as given; a 2-D rank-1 f split exactly), or None."""
  f = np.asarray(f, np.float64)
  if f.ndim == 1:
    return f, f
  u, s, vt = np.linalg.svd(f)
  if s.size > 1 and s[1] > 1e-7 * s[0]:
    return None
  return u[:, 0] * np.sqrt(s[0]), vt[0] * np.sqrt(s[0])               # rows (H), cols (W)


def _shift(x, axis, start, length):
  """x[start : start + length] along `axis`, zeros where the range leaves x."""
  n = x.shape[axis]
  lo, hi = max(0, -start), max(0, start + length - n)
  if lo or hi:
    pads = [(0, 0)] * x.ndim
    pads[axis] = (lo, hi)
    x = jnp.pad(x, pads)
  return lax.slice_in_dim(x, start + lo, start + lo + length, axis=axis)


def _upfirdn1d(x, taps, axis, up, down, pad0, pad1, gain):
  """upfirdn along one axis; taps are correlation taps (already flipped for a convolution)."""
  n, k = x.shape[axis], len(taps)
  full = n * up + pad0 + pad1 - k + 1                                  # length before `down`
  if full <= 0:
    raise ValueError(f"upfirdn2d: the output would be empty (n={n}, up={up}, pad=({pad0}, "
                     f"{pad1}), filter {k})")
  taps = [float(t) * gain for t in taps]
  # o[q] = sum_k taps[k] * u[q + k - pad0], u[i*up] = x[i]
  if up == 1:
    n_out = (full - 1) // down + 1
    # out[m] = sum_k taps[k] x[m*down + k - pad0]
    start = -pad0
    lo, hi = max(0, -start), max(0, start + (n_out - 1) * down + k - n)
    pads = [(0, 0)] * x.ndim
    pads[axis] = (lo, hi)
    xp = jnp.pad(x, pads) if lo or hi else x
    out = None
    for j, t in enumerate(taps):
      if t == 0.0:
        continue
      s = start + lo + j
      term = t * lax.slice_in_dim(xp, s, s + (n_out - 1) * down + 1, stride=down, axis=axis)
      out = term if out is None else out + term
    return out if out is not None else jnp.zeros_like(lax.slice_in_dim(xp, 0, n_out, axis=axis))
  # phase r of o (q = up*m + r) takes the taps k = pad0 - r (mod up), reading x[m + s]
  m_len = -(-full // up)
  phases = []
  for r in range(up):
    acc = None
    for j, t in enumerate(taps):
      if (r + j - pad0) % up or t == 0.0:
        continue
      term = t * _shift(x, axis, (r + j - pad0) // up, m_len)
      acc = term if acc is None else acc + term
    if acc is None:
      acc = jnp.zeros_like(_shift(x, axis, 0, m_len))
    phases.append(acc)
  y = jnp.stack(phases, axis=axis + 1)                                 # [..., M, up, ...]
  shape = list(x.shape)
  shape[axis] = m_len * up
  y = lax.slice_in_dim(y.reshape(shape), 0, full, axis=axis)           # [..., full, ...]
  if down > 1:
    y = lax.slice_in_dim(y, 0, full, stride=down, axis=axis)
  return y


def _upfirdn2d_conv(x, f, up, down, padding, gain):
  """One depth-wise conv: input dilation `up`, stride `down` (f: 2-D correlation taps)."""
  px0, px1, py0, py1 = padding
  c = x.shape[-1]
  # the zero-inserted signal is n*up long: up-1 trailing zeros more than lhs_dilation makes
  pad = ((py0, py1 + up - 1), (px0, px1 + up - 1))
  kernel = jnp.broadcast_to(jnp.asarray(f * gain, x.dtype)[:, :, None, None], (*f.shape, 1, c))
  return lax.conv_general_dilated(x, kernel, (down, down), pad, lhs_dilation=(up, up),
                                  dimension_numbers=_DN, feature_group_count=c)


def upfirdn2d(x, f, up: int = 1, down: int = 1, padding=0, flip_filter: bool = False,
              gain: float = 1.0, impl: str = "slices"):
  """StyleGAN2's upfirdn2d on x [B, H, W, C] -> [B, H', W', C] (see the module docstring);
  f: setup_filter's 1-D (separable) or 2-D taps (NumPy, static); padding = int, [px, py] or
  [x0, x1, y0, y1] (x = width), relative to the upsampled image."""
  px0, px1, py0, py1 = _parse_padding(padding)
  f = np.asarray(f, np.float64)
  if not flip_filter:                      # a convolution = correlation with the flipped f
    f = np.flip(f)
  separable = _taps(f)
  if impl == "slices" and separable is not None:
    fy, fx = separable
    g = float(gain) ** 0.5
    y = _upfirdn1d(x, fx, 2, up, down, px0, px1, g)                    # [B, H, W', C]
    return _upfirdn1d(y, fy, 1, up, down, py0, py1, g)                 # [B, H', W', C]
  if impl not in ("slices", "conv"):
    raise ValueError(f"unknown upfirdn2d impl {impl!r}; valid: slices, conv")
  f2 = f if f.ndim == 2 else np.outer(f, f)
  if min(px0, px1, py0, py1) < 0:
    raise ValueError("upfirdn2d(impl='conv') takes no negative padding")
  return _upfirdn2d_conv(x, f2.astype(np.float32), up, down, (px0, px1, py0, py1), gain)


def _filter_size(f):
  f = np.asarray(f)
  return (f.shape[-1], f.shape[0]) if f.ndim else (1, 1)              # fw, fh


def filter2d(x, f, padding=0, flip_filter=False, gain=1.0, impl="slices"):
  """Filters x [B, H, W, C] with f, output the size of x (plus `padding`)."""
  px0, px1, py0, py1 = _parse_padding(padding)
  fw, fh = _filter_size(f)
  p = [px0 + fw // 2, px1 + (fw - 1) // 2, py0 + fh // 2, py1 + (fh - 1) // 2]
  return upfirdn2d(x, f, padding=p, flip_filter=flip_filter, gain=gain, impl=impl)


def upsample2d(x, f=None, up: int = 2, padding=0, flip_filter=False, gain=1.0, impl="slices"):
  """x [B, H, W, C] -> [B, up*H, up*W, C]: zero-insert, pad [(fw+up-1)//2, (fw-up)//2]
  (+ padding), filter with f (default the normalised [1,3,3,1]), gain up**2 (so a constant
  image stays constant)."""
  f = setup_filter() if f is None else f
  px0, px1, py0, py1 = _parse_padding(padding)
  fw, fh = _filter_size(f)
  p = [px0 + (fw + up - 1) // 2, px1 + (fw - up) // 2,
       py0 + (fh + up - 1) // 2, py1 + (fh - up) // 2]
  return upfirdn2d(x, f, up=up, padding=p, flip_filter=flip_filter, gain=gain * up * up,
                   impl=impl)


def downsample2d(x, f=None, down: int = 2, padding=0, flip_filter=False, gain=1.0,
                 impl="slices"):
  """x [B, H, W, C] -> [B, H/down, W/down, C]: pad [(fw-down+1)//2, (fw-down)//2]
  (+ padding), filter with f (default the normalised [1,3,3,1]), keep every down-th pixel."""
  f = setup_filter() if f is None else f
  px0, px1, py0, py1 = _parse_padding(padding)
  fw, fh = _filter_size(f)
  p = [px0 + (fw - down + 1) // 2, px1 + (fw - down) // 2,
       py0 + (fh - down + 1) // 2, py1 + (fh - down) // 2]
  return upfirdn2d(x, f, down=down, padding=p, flip_filter=flip_filter, gain=gain, impl=impl)


# ------------------------------------------------------------------ convs with resampling

def _conv(x, w, padding, groups=1):
  return lax.conv_general_dilated(x, w, (1, 1), padding, dimension_numbers=_DN,
                                  feature_group_count=groups)


def conv_transpose_s2(x, w, groups: int = 1):
  """The full stride-2 transposed conv: zero-insert x [B, H, W, Cin] (u[2i] = x[i], length 2n),
  pad kh-1 / kw-1 on each side, correlate with w [kh, kw, Cin/groups, Cout]
  -> [B, 2H + kh - 1, 2W + kw - 1, Cout] (the last row/column is 0 for odd k). Computed as one
  stride-1 conv per output phase: phase r reads the taps j = kw-1-r (mod 2), x[m + s]."""
  b, h, wd, _ = x.shape
  kh, kw = w.shape[:2]
  cout = w.shape[-1]
  lh, lw = 2 * h + kh - 1, 2 * wd + kw - 1
  mh, mw = -(-lh // 2), -(-lw // 2)

  def phase_taps(k, r):        # first tap j0 and the shift of x at that tap: s0 = (r+j0-k+1)/2
    j0 = (k - 1 - r) % 2
    return j0, (r + j0 - k + 1) // 2

  rows = []
  for ry in (0, 1):
    cols = []
    for rx in (0, 1):
      jy, sy = phase_taps(kh, ry)
      jx, sx = phase_taps(kw, rx)
      sub = w[jy::2, jx::2]                                            # [th, tw, Cin/g, Cout]
      if sub.shape[0] == 0 or sub.shape[1] == 0:
        cols.append(jnp.zeros((b, mh, mw, cout), x.dtype))
        continue
      th, tw = sub.shape[:2]
      # out[m] = sum_t sub[t] x[m + sy + t], m in [0, mh): pad lo = -sy, hi = mh-1+sy+th-1-(h-1)
      pad = ((-sy, mh + sy + th - 1 - h), (-sx, mw + sx + tw - 1 - wd))
      cols.append(_conv(x, sub, pad, groups))                          # [B, mh, mw, Cout]
    rows.append(jnp.stack(cols, axis=3))                               # [B, mh, mw, 2, Cout]
  y = jnp.stack(rows, axis=2).reshape(b, 2 * mh, 2 * mw, cout)         # [B, 2mh, 2mw, Cout]
  return y[:, :lh, :lw]                                                # [B, lh, lw, Cout]


def conv_s2(x, w, groups: int = 1):
  """The stride-2 valid conv (correlation) of x [B, H, W, Cin] with w [kh, kw, Cin/g, Cout]:
  out[m] = sum_j w[j] x[2m + j], computed as the sum over the four input phases of stride-1
  convs: x[a::2, b::2] with w[a::2, b::2]. -> [B, (H-kh)//2 + 1, (W-kw)//2 + 1, Cout]."""
  kh, kw = w.shape[:2]
  oh, ow = (x.shape[1] - kh) // 2 + 1, (x.shape[2] - kw) // 2 + 1
  out = 0
  for a in range(min(2, kh)):
    for c in range(min(2, kw)):
      sub = w[a::2, c::2]                                              # [th, tw, Cin/g, Cout]
      th, tw = sub.shape[:2]
      xs = x[:, a::2, c::2][:, :oh + th - 1, :ow + tw - 1]             # [B, oh+th-1, ow+tw-1, C]
      out = out + _conv(xs, sub, ((0, 0), (0, 0)), groups)
  return out


def conv2d_resample(x, w, f=None, up: int = 1, down: int = 1, padding=0, groups: int = 1,
                    flip_weight: bool = True, flip_filter: bool = False):
  """StyleGAN2's conv2d_resample on x [B, H, W, Cin] with w [kh, kw, Cin/groups, Cout] (HWIO),
  f = setup_filter taps (default [1,3,3,1]) -> the conv of the up-sampled (FIR, gain up**2) x,
  down-sampled (FIR, stride) after. padding [x0, x1, y0, y1] is relative to the upsampled
  image (kernel_size // 2 for a 'same' conv). flip_weight=True: correlation (lax / torch
  conv2d); False: a true convolution (StyleGAN2's up layers use flip_weight = (up == 1))."""
  if up > 1 and down > 1:
    raise ValueError(f"conv2d_resample resamples one way: up={up} and down={down} together are "
                     f"not supported (StyleGAN2 never uses both)")
  if up not in (1, 2) or down not in (1, 2):
    raise ValueError(f"conv2d_resample supports up and down factors of 1 or 2, got up={up}, "
                     f"down={down}")
  f = setup_filter() if f is None else f
  if not flip_weight:
    w = jnp.flip(w, (0, 1))
  kh, kw = w.shape[:2]
  fw, fh = _filter_size(f)
  px0, px1, py0, py1 = _parse_padding(padding)
  if up > 1:
    px0, px1 = px0 + (fw + up - 1) // 2, px1 + (fw - up) // 2
    py0, py1 = py0 + (fh + up - 1) // 2, py1 + (fh - up) // 2
  if down > 1:
    px0, px1 = px0 + (fw - down + 1) // 2, px1 + (fw - down) // 2
    py0, py1 = py0 + (fh - down + 1) // 2, py1 + (fh - down) // 2
  fir = functools.partial(upfirdn2d, f=f, flip_filter=flip_filter)
  if kh == kw == 1 and down > 1:           # downsample first, then the 1x1 conv
    return _conv(fir(x, down=down, padding=[px0, px1, py0, py1]), w, ((0, 0), (0, 0)), groups)
  if kh == kw == 1 and up > 1:             # the 1x1 conv first, then upsample
    return fir(_conv(x, w, ((0, 0), (0, 0)), groups), up=up, padding=[px0, px1, py0, py1],
               gain=up * up)
  if down > 1:                             # FIR with the pads, then the stride-2 valid conv
    return conv_s2(fir(x, padding=[px0, px1, py0, py1]), w, groups)
  if up > 1:                               # the full transposed conv, then the FIR
    t = conv_transpose_s2(x, w, groups)                                # [B, 2H+kh-1, 2W+kw-1, F]
    return fir(t, padding=[px0 - kw + 1, px1 - kw + 1, py0 - kh + 1, py1 - kh + 1],
               gain=up * up)
  if min(px0, px1, py0, py1) >= 0:
    return _conv(x, w, ((py0, py1), (px0, px1)), groups)
  x = upfirdn2d(x, np.ones((1,), np.float32), padding=[px0, px1, py0, py1])  # crop / pad
  return _conv(x, w, ((0, 0), (0, 0)), groups)
