"""A run directory read back: `load_run` (config, spec, state, data meta of a checkpoint), the
fixed sample noise and labels, and `sample` (`jaxgan sample`). `train` writes runs; this module
reads them (and `eval` and `sweep` use it), so neither imports the other.
"""
import functools
import json
from pathlib import Path
from typing import Optional

import jax
import jax.numpy as jnp
import numpy as np

from jaxgan import config as config_lib
from jaxgan import parallel
from jaxgan.checkpoint import Checkpoints
from jaxgan.images import save_samples_png
from jaxgan.state import generate, spec_from_config


def sample_noise(seed: int, num: int, latent_dim: int) -> jax.Array:
  """The fixed noise used for sample grids and `jaxgan sample`: z [num, latent]."""
  return jax.random.normal(jax.random.key(seed), (num, latent_dim), jnp.float32)


def sample_labels(num: int, num_classes: int, label: Optional[int] = None):
  """The labels of `num` samples of a conditional run (num_classes > 0): all `label`, or the
  classes in turn (sample i has class i mod num_classes); None for an unconditional run.
  int32 [num]. A label outside 0..num_classes-1 is a ConfigError (a ValueError)."""
  if not num_classes:
    if label is not None:
      raise config_lib.ConfigError(f"--class {label}: this run is not class-conditional "
                                   f"(config.conditional = false)")
    return None
  if label is None:
    return np.arange(num, dtype=np.int32) % num_classes
  if not 0 <= int(label) < num_classes:
    raise config_lib.ConfigError(f"--class {label} is out of range: this run has {num_classes} "
                                 f"classes (0..{num_classes - 1})")
  return np.full((num,), int(label), np.int32)


def grid_layout(num: int, num_classes: int) -> tuple[int, Optional[np.ndarray]]:
  """(columns, labels) of a training sample grid of at most `num` images: unconditional,
  (0: a square grid, None); conditional, one row per class (the first `num` classes when
  there are more), int32 [rows * cols] row by row."""
  if not num_classes:
    return 0, None
  rows = min(num_classes, num)
  cols = max(1, num // rows)
  return cols, np.repeat(np.arange(rows, dtype=np.int32), cols)


def load_run(workdir, step: Optional[int] = None):
  """(config, spec, state, data meta) of the run in `workdir`, at its latest checkpoint (or
  that of `step`)."""
  workdir = Path(workdir)
  if not (workdir / "config.json").exists():
    raise FileNotFoundError(f"{workdir} holds no jaxgan run (no config.json)")
  config = config_from_workdir(workdir)
  meta = json.loads((workdir / "data.json").read_text())
  spec = spec_from_config(config, meta["shape"], meta.get("num_classes", 0))
  template = parallel.abstract_state(spec, parallel.make_mesh(), meta["shape"])
  ckpt = Checkpoints(workdir / "checkpoints")
  try:
    state = ckpt.restore(template, step)
  finally:
    ckpt.close()
  return config, spec, state, meta


def config_from_workdir(workdir):
  return config_lib.config_from_json((Path(workdir) / "config.json").read_text())


def draw_samples(gen, state, latent_dim: int, num: int, seed: int, value_range,
                 labels: Optional[np.ndarray] = None) -> np.ndarray:
  """`num` samples gen(state, z, y) for the fixed noise of `seed` (and the labels [num] of a
  conditional run, `sample_labels`; None otherwise), 1,000 at a time, as float32 clipped to
  the data's value range (None: unbounded)."""
  z = sample_noise(seed, num, latent_dim)
  part = lambda i: None if labels is None else jnp.asarray(labels[i:i + 1000])
  x = np.concatenate([np.asarray(gen(state, z[i:i + 1000], part(i)))
                      for i in range(0, num, 1000)])
  x = x.astype(np.float32)
  return np.clip(x, *value_range) if value_range is not None else x


def sample(workdir, num: int, seed: int, out, step: Optional[int] = None,
           label: Optional[int] = None) -> np.ndarray:
  """Writes `num` samples of the run's latest checkpoint (or that of `step`) to `out` (.npy or
  .png). A conditional run samples class `label`, or without one the classes in turn (sample
  i has class i mod C; `sample_labels`); its .npy output has the labels beside it in
  `<out stem>.labels.npy`."""
  out = Path(out)
  if out.suffix not in (".npy", ".png"):
    raise ValueError(f"--out must end in .npy or .png, got {out}")
  config, spec, state, meta = load_run(workdir, step)
  labels = sample_labels(num, spec.num_classes, label)
  gen = jax.jit(functools.partial(generate, spec, use_ema=config.ema_decay > 0))
  x = draw_samples(gen, state, spec.latent_dim, num, seed, meta["value_range"], labels)
  out.parent.mkdir(parents=True, exist_ok=True)
  if out.suffix == ".npy":
    np.save(out, x)
    if labels is not None:
      np.save(out.with_suffix(".labels.npy"), labels)
  else:
    save_samples_png(x, out, meta["value_range"] or (-1.0, 1.0))
  return x
