"""Turning samples into pictures: image grids, and scatter plots for 2D data."""
import math
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw


def image_grid(x: np.ndarray, value_range=(-1.0, 1.0), cols: int = 0) -> np.ndarray:
  """[N, H, W, C] -> uint8 [rows*(H+1)+1, cols*(W+1)+1, C] with a 1-pixel border, row by row;
  cols 0: a square grid."""
  n, h, w, c = x.shape
  lo, hi = value_range
  x = np.clip((np.asarray(x, np.float32) - lo) / (hi - lo), 0.0, 1.0)
  x = (x * 255 + 0.5).astype(np.uint8)
  cols = cols or math.ceil(math.sqrt(n))
  rows = math.ceil(n / cols)
  grid = np.zeros((rows * (h + 1) + 1, cols * (w + 1) + 1, c), np.uint8)
  for i in range(n):
    r, k = divmod(i, cols)
    grid[1 + r * (h + 1):1 + r * (h + 1) + h, 1 + k * (w + 1):1 + k * (w + 1) + w] = x[i]
  return grid


def scatter_plot(points: np.ndarray, size: int = 400, reference=None) -> np.ndarray:
  """2D points [N, 2] -> RGB uint8 [size, size, 3]; optional reference points in red."""
  pts = np.asarray(points, np.float32)
  everything = pts if reference is None else np.concatenate([pts, reference])
  finite = everything[np.all(np.isfinite(everything), axis=1)]
  bound = 1.2 * float(np.abs(finite).max()) if finite.size else 1.0
  img = Image.new("RGB", (size, size), "white")
  draw = ImageDraw.Draw(img)
  to_px = lambda p: ((p[0] / bound + 1) * size / 2, (1 - p[1] / bound) * size / 2)
  for p in pts:
    if np.all(np.isfinite(p)):
      x, y = to_px(p)
      draw.point((x, y), fill=(30, 60, 200))
  for p in ([] if reference is None else reference):
    x, y = to_px(p)
    draw.ellipse((x - 3, y - 3, x + 3, y + 3), outline=(220, 30, 30))
  return np.asarray(img)


def save_samples_png(x: np.ndarray, path, value_range=(-1.0, 1.0), reference=None,
                     cols: int = 0) -> None:
  """Writes samples as a PNG: a grid for images [N, H, W, C] (`cols` columns; 0: square), a
  scatter plot for [N, 2]."""
  x = np.asarray(x)
  if x.ndim == 4:
    pixels = image_grid(x, value_range, cols)
    pixels = pixels[..., 0] if pixels.shape[-1] == 1 else pixels
    if max(pixels.shape[:2]) < 256:  # small digits: enlarge for viewing
      k = 256 // max(pixels.shape[:2]) + 1
      pixels = np.kron(pixels, np.ones((k, k) + (1,) * (pixels.ndim - 2), np.uint8))
  elif x.ndim == 2 and x.shape[1] == 2:
    pixels = scatter_plot(x, reference=reference)
  else:
    raise ValueError(f"cannot draw samples of shape {x.shape}; expected [N, H, W, C] or [N, 2]")
  Path(path).parent.mkdir(parents=True, exist_ok=True)
  Image.fromarray(pixels).save(path)
