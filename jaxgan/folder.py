"""A user's own images as a data source: a folder (searched recursively) or a .zip.

    jaxgan train --config.data.name=folder --config.data.path=DIR|FILE.zip \
        --config.data.image_size=64
    jaxgan data inspect DIR|FILE.zip [--image-size 64]

Images: .png .jpg .jpeg .webp .bmp (any case); hidden files and folders (a leading '.') and a
zip's `__MACOSX/` are skipped. Each image is turned upright by its EXIF orientation,
centre-cropped to a square, resized to `image_size` with the Lanczos filter (StyleGAN's dataset
tool), and converted to `channels`: 1 (luma) or 3 (RGB; grey images are replicated, alpha is
dropped). `channels = 0` takes 1 when every image is grey, 3 when every image is colour, and
refuses a mix. 16-bit images are scaled to 8 bits. `image_size = 0` keeps the images' own size
(they must then all be square and of one size). A zip whose images all sit under one top
folder (`zip -r set.zip set/`) is read from inside that folder.

Labels (`labels`): "auto" takes a `dataset.json` in StyleGAN's format
({"labels": [["dir/img.png", 3], ...]}) when the root has one, else the first-level subfolder
names as classes (sorted, index = position) when any image is in a subfolder, else no labels.
"json" and "folders" demand their source; "none" ignores both. Under "folders", images at the
top level of a labelled tree are refused by name.

Decoding happens once: the uint8 images go to a cache, `<cache_dir>/<name>-<key>/images.npy`
(memory-mapped, so a set larger than RAM works), keyed by the file list with each file's size
and mtime (a zip: each member's size and CRC), dataset.json's contents, and the options that
change pixels or labels. A changed, added or removed file gives a new key and a rebuild; a
restart with the same files only stats them. The cache is built under a temporary name and
renamed when complete, so an interrupted build is never used. Nothing is ever written to the
source folder (a cache_dir inside it is refused). cache_dir "" means $JAXGAN_CACHE_DIR, else
~/.cache/jaxgan/folders.

Batches follow the same epoch-wise shuffle as the embedded sets (`data.epoch_indices`, a pure
function of (seed, step)); `xflip` doubles the set with mirror images (index i >= N is image
i - N flipped). A set whose cache is at most `device_max_mb` is kept on the device and
gathered there (and gives `keyed_batch`, so `jaxgan sweep` runs on it); a larger one is read
from the memory-mapped cache on the host, this process's rows only, `prefetch` steps ahead in
a background thread. Both give the same batches.
"""
import concurrent.futures
import dataclasses
import functools
import hashlib
import io
import json
import os
import shutil
import threading
import time
import zipfile
from pathlib import Path, PurePosixPath
from typing import Callable, Optional

import jax
import jax.numpy as jnp
import numpy as np

from jaxgan.data import (Batch, DataError, Source, _gather, _process_rows, epoch_indices,
                         to_float_images)

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".bmp")
LABELS = ("auto", "folders", "json", "none")
CACHE_VERSION = 1
_GREY_MODES = ("1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "I;16N", "F")


def _log(msg: str) -> None:
  from jaxgan.host import log
  log(msg)


# ---------------------------------------------------------------------------------- reading
class _Reader:
  """The files of a folder or a zip: `names` (the images, as sorted POSIX paths relative to
  the root), `read(name) -> bytes`, and `stamp(name)`, what the cache key records of a file."""

  def __init__(self, path):
    self.path = Path(path).expanduser()
    if not self.path.exists():
      raise DataError(f"data.path {str(self.path)!r} does not exist (give a folder of images or "
                      f"a .zip)")
    self.is_zip = self.path.is_file()
    self.root = ""                                       # a zip's one top folder, if any
    self._lock = threading.Lock()
    if self.is_zip:
      try:
        self._zip = zipfile.ZipFile(self.path)
      except zipfile.BadZipFile:
        raise DataError(f"data.path {str(self.path)!r} is a file but not a zip archive; give a "
                        f"folder of images or a .zip") from None
      infos = {i.filename: i for i in self._zip.infolist() if not i.is_dir()}
      files = [n for n in infos if not _hidden(n) and not n.startswith("__MACOSX/")]
      self._stamps = {n: (infos[n].file_size, infos[n].CRC) for n in files}
      self._members = {n: n for n in files}
      self.root = self._zip_root([n for n in files if _is_image(n)])
      if self.root:                                      # read from inside the top folder
        cut = len(self.root) + 1
        self._members = {n[cut:]: n for n in files if n.startswith(self.root + "/")}
        self._stamps = {n[cut:]: self._stamps[n] for n in files if n.startswith(self.root + "/")}
      files = list(self._members)
    else:
      files = []
      for dirpath, dirnames, filenames in os.walk(self.path):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        rel = Path(dirpath).relative_to(self.path)
        files += [(rel / f).as_posix() for f in filenames if not f.startswith(".")]
      self._stamps = None
    self.names = sorted(n for n in files if _is_image(n))
    self.others = sorted(n for n in files if not _is_image(n))
    self._all = set(files)

  @staticmethod
  def _zip_root(images) -> str:
    """The one top folder that holds every image of a zip, or ''."""
    tops = {PurePosixPath(n).parts[0] for n in images if len(PurePosixPath(n).parts) > 1}
    flat = any(len(PurePosixPath(n).parts) == 1 for n in images)
    return tops.pop() if len(tops) == 1 and not flat else ""

  def describe(self) -> str:
    return f"{self.path}" + (f" (inside its folder {self.root}/)" if self.root else "")

  def has(self, name: str) -> bool:
    return name in self._all

  def read(self, name: str) -> bytes:
    if self.is_zip:
      with self._lock:                                   # one zip handle, shared by threads
        return self._zip.read(self._members[name])
    return (self.path / name).read_bytes()

  def stamp(self, name: str):
    if self.is_zip:
      return list(self._stamps[name])
    st = (self.path / name).stat()
    return [st.st_size, st.st_mtime_ns]

  def close(self):
    if self.is_zip:
      self._zip.close()


def _hidden(name: str) -> bool:
  return any(part.startswith(".") for part in PurePosixPath(name).parts)


def _is_image(name: str) -> bool:
  return name.lower().endswith(IMAGE_EXTENSIONS)


# ----------------------------------------------------------------------------------- labels
def assign_labels(names: list, mode: str, dataset_json: Optional[bytes],
                  where: str) -> tuple[Optional[np.ndarray], Optional[list], str]:
  """(labels int32 [N] or None, class names or None, where they came from) for the images
  `names` (sorted relative paths) under the `labels` mode (see the module docstring)."""
  if mode not in LABELS:
    raise DataError(f"data.labels must be one of {', '.join(LABELS)}, got {mode!r}")
  if mode == "none":
    return None, None, "none"
  if mode == "json" and dataset_json is None:
    raise DataError(f"data.labels=json but {where} has no dataset.json at its root")
  if dataset_json is not None and mode in ("auto", "json"):
    return (*_json_labels(names, dataset_json, where), "dataset.json")
  nested = [n for n in names if "/" in n]
  if mode == "auto" and not nested:
    return None, None, "none"
  top = [n for n in names if "/" not in n]
  if not nested:
    raise DataError(f"data.labels=folders but {where} has no subfolders with images (its "
                    f"{len(top)} images are all at the top level)")
  classes = sorted({n.split("/", 1)[0] for n in nested})
  if top:
    shown = ", ".join(top[:10]) + (f", ... ({len(top)} in all)" if len(top) > 10 else "")
    raise DataError(
        f"{where} has images in class subfolders ({', '.join(classes[:5])}"
        f"{', ...' if len(classes) > 5 else ''}) and {len(top)} at its top level, which have no "
        f"class: {shown}. Move them into a class folder, or set --config.data.labels=none to "
        f"train without labels.")
  index = {c: i for i, c in enumerate(classes)}
  return np.array([index[n.split("/", 1)[0]] for n in names], np.int32), classes, "folders"


def _json_labels(names, text: bytes, where: str):
  try:
    labels = json.loads(text)["labels"]
  except (ValueError, KeyError, TypeError) as e:
    raise DataError(f"{where}/dataset.json is not StyleGAN's format {{\"labels\": [[\"path\", "
                    f"int], ...]}} or {{\"labels\": null}}: {type(e).__name__}: {e}") from None
  if labels is None:
    return None, None
  try:
    table = {str(p).replace("\\", "/"): v for p, v in labels}
  except (TypeError, ValueError):
    raise DataError(f"{where}/dataset.json: 'labels' must be a list of [path, int] pairs") from None
  missing = [n for n in names if n not in table]
  if missing:
    raise DataError(f"{where}/dataset.json gives no label for {len(missing)} of the "
                    f"{len(names)} images, e.g. {', '.join(missing[:5])}")
  values = [table[n] for n in names]
  if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in values):
    bad = next(n for n, v in zip(names, values)
               if not (isinstance(v, int) and not isinstance(v, bool) and v >= 0))
    raise DataError(f"{where}/dataset.json: labels must be integers >= 0; {bad} has "
                    f"{table[bad]!r}")
  y = np.array(values, np.int32)
  return y, [str(i) for i in range(int(y.max()) + 1)]


# ---------------------------------------------------------------------------------- images
def _open(data: bytes):
  from PIL import Image
  return Image.open(io.BytesIO(data))


def _is_grey(img) -> bool:
  if img.mode in _GREY_MODES:
    return True
  if img.mode in ("P", "PA"):
    pal = np.asarray(img.getpalette() or [0, 0, 0]).reshape(-1, 3)
    return bool(np.all(pal[:, 0] == pal[:, 1]) and np.all(pal[:, 1] == pal[:, 2]))
  return False


def read_header(data: bytes) -> tuple[tuple[int, int], bool]:
  """((width, height) upright, grey?) from an image's header; raises on a non-image."""
  img = _open(data)
  w, h = img.size
  if img.getexif().get(0x0112, 1) in (5, 6, 7, 8):    # EXIF orientation: a quarter turn
    w, h = h, w
  return (w, h), _is_grey(img)


def decode(data: bytes, image_size: int, channels: int) -> np.ndarray:
  """An image file's bytes -> uint8 [S, S, channels]: upright (EXIF), centre-cropped square,
  Lanczos-resized to `image_size` (0: kept), converted to luma (1) or RGB (3)."""
  from PIL import Image, ImageOps
  img = _open(data)
  img.load()                                            # raises on a truncated file
  img = ImageOps.exif_transpose(img)
  if img.mode.startswith("I") or img.mode == "F":       # 16-bit / float grey -> 8 bits
    x = np.asarray(img, np.float64)
    x = x / 257.0 if x.max() > 255 else x
    img = Image.fromarray(np.clip(np.round(x), 0, 255).astype(np.uint8), "L")
  img = img.convert("L" if channels == 1 else "RGB")
  w, h = img.size
  s = min(w, h)
  if (w, h) != (s, s):
    left, top = (w - s) // 2, (h - s) // 2
    img = img.crop((left, top, left + s, top + s))
  if image_size and s != image_size:
    img = img.resize((image_size, image_size), Image.LANCZOS)
  x = np.asarray(img, np.uint8)
  return x[..., None] if channels == 1 else x            # [S, S, C]


# ------------------------------------------------------------------------------------ cache
@dataclasses.dataclass
class FolderSet:
  """A decoded folder set: `images` uint8 [N, S, S, C] (memory-mapped), `labels` int32 [N]
  or None, and what `jaxgan data inspect` reports (`meta`)."""
  images: np.ndarray
  labels: Optional[np.ndarray]
  class_names: Optional[list]
  files: list
  meta: dict
  cache_dir: Path


def default_cache_dir() -> Path:
  return Path(os.environ.get("JAXGAN_CACHE_DIR") or Path.home() / ".cache" / "jaxgan" / "folders")


def _cache_key(reader: _Reader, dataset_json, options: dict) -> str:
  h = hashlib.sha256()
  h.update(json.dumps(dict(version=CACHE_VERSION, path=str(reader.path.resolve()),
                           root=reader.root, options=options)).encode())
  for n in reader.names:
    h.update(json.dumps([n, reader.stamp(n)]).encode())
  h.update(hashlib.sha256(dataset_json or b"").digest())
  return h.hexdigest()[:20]


def _bad(name: str, e: Exception) -> str:
  kind = type(e).__name__
  if kind == "UnidentifiedImageError":
    return f"{name}: not an image that PIL can read (wrong extension, or not an image file)"
  return f"{name}: {kind}: {str(e).strip().splitlines()[0] if str(e).strip() else 'unreadable'}"


def _bad_error(bad: list, where: str) -> DataError:
  shown = "\n  ".join(bad[:10]) + (f"\n  ... ({len(bad)} in all)" if len(bad) > 10 else "")
  return DataError(f"{len(bad)} unreadable image file(s) in {where}:\n  {shown}\nRemove or "
                   f"replace them, or set --config.data.skip_bad=true to skip them.")


def _map(fn: Callable, items: list, chunk: int = 256):
  """fn over items in order, on a few threads (PIL decodes outside the GIL)."""
  workers = min(8, os.cpu_count() or 1)
  with concurrent.futures.ThreadPoolExecutor(workers) as pool:
    for i in range(0, len(items), chunk):
      yield from pool.map(fn, items[i:i + chunk])


def _try(fn):
  def wrapped(name):
    try:
      return fn(name), None
    except Exception as e:  # any decoder error: reported by name
      return None, _bad(name, e)
  return wrapped


def load_folder(path, image_size: int = 0, channels: int = 0, labels: str = "auto",
                skip_bad: bool = False, cache_dir="", log: Callable[[str], None] = _log
                ) -> FolderSet:
  """Decodes the images under `path` (a folder or a .zip) into the uint8 cache, or reuses the
  cache of the same files and options."""
  reader = _Reader(path)
  try:
    return _load(reader, image_size, channels, labels, skip_bad, cache_dir, log)
  finally:
    reader.close()


def _load(reader, image_size, channels, labels, skip_bad, cache_dir, log) -> FolderSet:
  where = reader.describe()
  if not reader.names:
    others = f"; it holds {len(reader.others)} other file(s), e.g. {', '.join(reader.others[:3])}" \
        if reader.others else " (it is empty)"
    raise DataError(f"no images ({', '.join(IMAGE_EXTENSIONS)}) in {where}, searched "
                    f"recursively{others}")
  if channels not in (0, 1, 3):
    raise DataError(f"data.channels must be 0 (from the images), 1 or 3, got {channels}")
  cache_root = Path(cache_dir or default_cache_dir()).expanduser().resolve()
  if not reader.is_zip and cache_root.is_relative_to(reader.path.resolve()):
    raise DataError(f"data.cache_dir {str(cache_root)!r} lies inside the source folder "
                    f"{str(reader.path)!r}, which jaxgan never writes to; choose another")
  dataset_json = reader.read("dataset.json") if reader.has("dataset.json") else None
  y, class_names, label_source = assign_labels(reader.names, labels, dataset_json, where)
  options = dict(image_size=image_size, channels=channels, labels=labels, skip_bad=skip_bad)
  key = _cache_key(reader, dataset_json, options)
  stem = (reader.path.stem if reader.is_zip else reader.path.resolve().name) or "root"
  target = cache_root / f"{stem}-{key}"
  cached = _open_cache(target, log)
  if cached is not None:
    return cached
  t0 = time.perf_counter()
  log(f"decoding {len(reader.names)} images of {where} into the cache {target} (once)")

  # pass 1: headers (sizes, grey or colour); unreadable files are collected by name
  results = list(_map(_try(lambda n: read_header(reader.read(n))), reader.names))
  bad = [err for _, err in results if err]
  ok = [i for i, (h, _) in enumerate(results) if h is not None]
  if bad and not skip_bad:
    raise _bad_error(bad, where)
  if not ok:
    raise DataError(f"none of the {len(reader.names)} images in {where} could be read")
  wh = np.array([results[i][0][0] for i in ok])                      # [N, 2] (width, height)
  grey = np.array([results[i][0][1] for i in ok])                    # [N] bool
  if not channels:
    if grey.all() or not grey.any():
      channels = 1 if grey.all() else 3
    else:
      g, c = reader.names[ok[np.argmax(grey)]], reader.names[ok[np.argmin(grey)]]
      raise DataError(f"{where} mixes greyscale and colour images ({grey.sum()} grey, e.g. {g}; "
                      f"{(~grey).sum()} colour, e.g. {c}). Set --config.data.channels=3 (grey "
                      f"images are replicated to RGB) or =1 (colour images become luma).")
  if not image_size:
    shapes = {tuple(s) for s in wh}
    if len(shapes) > 1 or any(w != h for w, h in shapes):
      raise DataError(f"{where}: images of several sizes or not square ({len(shapes)} sizes, "
                      f"width {wh[:, 0].min()}..{wh[:, 0].max()}, height {wh[:, 1].min()}.."
                      f"{wh[:, 1].max()}); set --config.data.image_size=N (each image is "
                      f"centre-cropped and resized to N x N)")
    image_size = int(wh[0, 0])

  # pass 2: decode into a memory-mapped .npy under a temporary name
  cache_root.mkdir(parents=True, exist_ok=True)
  tmp = cache_root / f".{target.name}.tmp-{os.getpid()}-{threading.get_ident()}"
  shutil.rmtree(tmp, ignore_errors=True)
  tmp.mkdir()
  try:
    n = len(ok)
    out = np.lib.format.open_memmap(tmp / "images.npy", "w+", np.uint8,
                                    (n, image_size, image_size, channels))
    names = [reader.names[i] for i in ok]
    fn = _try(lambda name: decode(reader.read(name), image_size, channels))
    good = np.ones(n, bool)
    for i, (x, err) in enumerate(_map(fn, names)):
      if err:
        bad.append(err)
        good[i] = False
      else:
        out[i] = x
    if bad and not skip_bad:
      raise _bad_error(bad, where)
    if not good.any():
      raise DataError(f"none of the {len(reader.names)} images in {where} could be read")
    if not good.all():                                  # drop the rows that failed to decode
      kept = np.lib.format.open_memmap(tmp / "kept.npy", "w+", np.uint8,
                                       (int(good.sum()), *out.shape[1:]))
      for j, i in enumerate(np.flatnonzero(good)):
        kept[j] = out[i]
      kept.flush()
      del out, kept
      os.replace(tmp / "kept.npy", tmp / "images.npy")
    else:
      out.flush()
      del out
    files = [nm for nm, g in zip(names, good) if g]
    keep = [ok[i] for i in np.flatnonzero(good)]
    labels_kept = None if y is None else y[keep]
    if labels_kept is not None:
      np.save(tmp / "labels.npy", labels_kept)
    kept_sizes = wh[np.flatnonzero(good)]                              # [N, 2] (w, h)
    meta = dict(version=CACHE_VERSION, source=where, count=len(files),
                image_size=image_size, channels=channels, label_source=label_source,
                class_names=class_names,
                class_counts=(None if labels_kept is None else
                              np.bincount(labels_kept, minlength=len(class_names)).tolist()),
                width=[int(kept_sizes[:, 0].min()), int(kept_sizes[:, 0].max())],
                height=[int(kept_sizes[:, 1].min()), int(kept_sizes[:, 1].max())],
                skipped=bad, files=files)
    (tmp / "meta.json").write_text(json.dumps(meta))
    try:
      os.rename(tmp, target)                            # atomic: a complete cache or none
    except OSError:                                     # another process finished it first
      shutil.rmtree(tmp, ignore_errors=True)
  except BaseException:
    shutil.rmtree(tmp, ignore_errors=True)
    raise
  log(f"cached {meta['count']} images of {image_size}x{image_size}x{channels} in "
      f"{time.perf_counter() - t0:.1f} s")
  return _open_cache(target, log)


def _open_cache(target: Path, log) -> Optional[FolderSet]:
  """The cache in `target`, or None when there is none (or it does not load: rebuilt)."""
  if not (target / "meta.json").exists():
    return None
  try:
    meta = json.loads((target / "meta.json").read_text())
    images = np.load(target / "images.npy", mmap_mode="r")
    labels = np.load(target / "labels.npy") if (target / "labels.npy").exists() else None
    if images.shape[0] != meta["count"] or images.dtype != np.uint8 or (
        labels is not None and labels.shape != (meta["count"],)):
      raise ValueError("the arrays do not match meta.json")
  except (OSError, ValueError, KeyError) as e:
    log(f"the cache {target} does not load ({type(e).__name__}: {e}); rebuilding it")
    shutil.rmtree(target, ignore_errors=True)
    return None
  if meta["skipped"]:
    log(f"skipped {len(meta['skipped'])} unreadable file(s) (data.skip_bad=true): "
        + "; ".join(meta["skipped"][:10]) + (" ..." if len(meta["skipped"]) > 10 else ""))
  return FolderSet(images, labels, meta["class_names"], meta["files"], meta, target)


# ----------------------------------------------------------------------------------- source
class _Prefetcher:
  """`get(step)` = fn(step), computed `depth` steps ahead on a background thread while the
  caller works on the current one; any other step (a resume, an eval) is computed on demand."""

  def __init__(self, fn: Callable[[int], Batch], depth: int):
    self.fn, self.depth = fn, depth
    self._pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="jaxgan-prefetch")
    self._pending: dict = {}

  def get(self, step: int) -> Batch:
    step = int(step)
    future = self._pending.pop(step, None)
    for s in [s for s in self._pending if s < step]:
      self._pending.pop(s).cancel()
    for s in range(step + 1, step + 1 + self.depth):
      if s not in self._pending:
        self._pending[s] = self._pool.submit(self.fn, s)
    return future.result() if future is not None else self.fn(step)


def folder_source(cfg: dict, batch_size: int, seed: int, process_index: int = 0,
                  process_count: int = 1) -> Source:
  """The `data` block (name="folder") as a Source; see the module docstring."""
  fs = load_folder(cfg["path"], cfg["image_size"], cfg["channels"], cfg["labels"],
                   cfg["skip_bad"], cfg["cache_dir"])
  return folder_set_source(fs, batch_size, seed, xflip=cfg["xflip"],
                           device_max_mb=cfg["device_max_mb"], prefetch=cfg["prefetch"],
                           process_index=process_index, process_count=process_count)


def folder_set_source(fs: FolderSet, batch_size: int, seed: int, xflip: bool = False,
                      device_max_mb: float = 1024, prefetch: int = 2, process_index: int = 0,
                      process_count: int = 1) -> Source:
  n = fs.images.shape[0] * (2 if xflip else 1)
  if batch_size > n:
    raise DataError(f"folder set {fs.meta['source']}: batch_size {batch_size} is larger than "
                    f"the set ({n} images{', with mirrors' if xflip else ''})")
  row0, rows = _process_rows(batch_size, process_index, process_count)
  num_classes = len(fs.class_names) if fs.labels is not None else 0
  common = dict(name="folder", shape=tuple(fs.images.shape[1:]), value_range=(-1.0, 1.0),
                batch_size=batch_size, num_examples=n, process_index=process_index,
                process_count=process_count, num_classes=num_classes,
                class_names=fs.class_names if num_classes else None, labels=fs.labels)
  gather = functools.partial(_gather, batch_size=batch_size, row0=row0, rows=rows, xflip=xflip)
  if fs.images.nbytes <= device_max_mb * 2**20:          # on the device, gathered there
    data = {"image": jax.device_put(np.asarray(fs.images))}
    if fs.labels is not None:
      data["label"] = jax.device_put(fs.labels)
    key = jax.random.key(seed)
    fn = jax.jit(gather)
    return Source(batch=lambda step: fn(data, key, step),
                  keyed_batch=lambda k, step: fn(data, k, step), **common)
  return Source(batch=_host_batches(fs, batch_size, seed, xflip, row0, rows, prefetch), **common)


def _host_batches(fs: FolderSet, batch_size, seed, xflip, row0, rows, prefetch):
  """batch(step) reading this process's rows from the memory-mapped cache."""
  cpu = jax.devices("cpu")[0]
  key = jax.device_put(jax.random.key(seed), cpu)
  n = fs.images.shape[0]
  index_fn = jax.jit(functools.partial(epoch_indices, n=2 * n if xflip else n,
                                       batch_size=batch_size, row0=row0, rows=rows))
  to_device = jax.jit(to_float_images)

  def read(step: int) -> Batch:
    idx = np.asarray(index_fn(key, step))                            # [rows]
    order = np.argsort(idx % n)                                      # sequential reads
    x = np.empty((len(idx), *fs.images.shape[1:]), np.uint8)
    x[order] = fs.images[(idx % n)[order]]                           # [rows, S, S, C]
    if xflip:
      x = np.where((idx >= n)[:, None, None, None], x[:, :, ::-1], x)
    batch = {"image": to_device(jax.device_put(x))}
    if fs.labels is not None:
      batch["label"] = jax.device_put(fs.labels[idx % n])
    return batch

  return _Prefetcher(read, prefetch).get if prefetch else read


# ---------------------------------------------------------------------------------- inspect
def inspect(path, image_size: int = 0, channels: int = 0, labels: str = "auto",
            skip_bad: bool = False, cache_dir="", preview: Optional[str] = None,
            num_preview: int = 64) -> dict:
  """What `jaxgan data inspect` prints: count, classes and their counts, the original size
  range, the cache; writes a preview grid PNG of the first images (per class where labelled)
  to `preview`."""
  fs = load_folder(path, image_size, channels, labels, skip_bad, cache_dir)
  report = {k: fs.meta[k] for k in ("source", "count", "image_size", "channels",
                                    "label_source", "width", "height")}
  report["classes"] = (None if fs.labels is None else
                       dict(zip(fs.class_names, fs.meta["class_counts"])))
  report["skipped"] = fs.meta["skipped"]
  report["cache"] = str(fs.cache_dir)
  if preview:
    from jaxgan.images import save_samples_png
    if fs.labels is None:
      idx = np.arange(min(num_preview, fs.images.shape[0]))
    else:  # up to num_preview images, round-robin over the classes
      per = [np.flatnonzero(fs.labels == c) for c in range(len(fs.class_names))]
      idx = [p[i] for i in range(max(map(len, per))) for p in per if i < len(p)][:num_preview]
    x = to_float_images(jnp.asarray(fs.images[np.sort(idx) if fs.labels is None else idx]))
    save_samples_png(np.asarray(x), preview)
    report["preview"] = str(preview)
  return report
