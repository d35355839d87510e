"""The host loop: data, the jitted step, logging, sample grids, checkpoints, resume.

Nothing here is traced. Between log points the loop only dispatches work (no host sync);
metrics are fetched at log points, state finiteness is checked before each checkpoint.
"""
import functools
import json
import math
import signal
import time
from pathlib import Path
from typing import Optional

import jax
import jax.numpy as jnp
import numpy as np

from jaxgan import config as config_lib
from jaxgan import data as data_lib
from jaxgan.checkpoint import Checkpoints
from jaxgan.images import save_samples_png
from jaxgan.state import GANState, create_state, generate, spec_from_config
from jaxgan.train_step import train_step
from jaxgan.writers import MetricWriter


class NonFiniteError(FloatingPointError):
  pass


def _log(msg: str) -> None:
  print(f"[jaxgan] {msg}", flush=True)


def sample_noise(seed: int, num: int, latent_dim: int) -> jax.Array:
  """The fixed noise used for sample grids and `jaxgan sample`: z [num, latent]."""
  return jax.random.normal(jax.random.key(seed), (num, latent_dim), jnp.float32)


@jax.jit
def _all_finite(tree) -> jax.Array:
  leaves = [jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(tree)
            if jnp.issubdtype(x.dtype, jnp.floating)]
  return jnp.all(jnp.stack(leaves))


def _check_finite(step: int, metrics: dict, last_good: Optional[int]):
  bad = [k for k, v in metrics.items() if not math.isfinite(float(v))]
  if bad:
    raise NonFiniteError(
        f"non-finite {', '.join(bad)} at step {step}; stopping. The last good checkpoint "
        f"(step {last_good}) is kept; lower the learning rates or raise the penalty weight.")


def _truncate_metrics(path: Path, step: int) -> None:
  """Drops log rows beyond the resumed step (they will be written again)."""
  if path.exists():
    rows = [r for r in path.read_text().splitlines() if r and json.loads(r)["step"] <= step]
    path.write_text("".join(r + "\n" for r in rows))


class _Preemption:
  """Turns SIGTERM into a flag the loop checks between steps."""
  def __init__(self):
    self.requested = False
    self._previous = None

  def __enter__(self):
    try:
      self._previous = signal.signal(signal.SIGTERM, self._handle)
    except ValueError:  # not the main thread: no handler
      self._previous = None
    return self

  def _handle(self, signum, frame):
    self.requested = True

  def __exit__(self, *exc):
    if self._previous is not None:
      signal.signal(signal.SIGTERM, self._previous)


def write_run_files(workdir: Path, config, source: data_lib.Source) -> None:
  """config.json and data.json: what `load_run` needs to rebuild the run."""
  workdir.mkdir(parents=True, exist_ok=True)
  (workdir / "config.json").write_text(config_lib.config_to_json(config))
  (workdir / "data.json").write_text(json.dumps(
      {"name": source.name, "shape": list(source.shape), "value_range": source.value_range}))


def train(config, workdir, *, source: Optional[data_lib.Source] = None,
          progress: bool = True) -> GANState:
  """Trains (or resumes) the run in `workdir` up to `config.steps`; returns the final state."""
  config_lib.validate(config)
  workdir = Path(workdir)
  workdir.mkdir(parents=True, exist_ok=True)
  source = source or data_lib.make_source(config.data, config.batch_size, config.seed)
  write_run_files(workdir, config, source)

  spec = spec_from_config(config, source.shape)
  state = create_state(spec, jax.random.key(config.seed), source.shape)
  ckpt = Checkpoints(workdir / "checkpoints")
  start = ckpt.latest_step() or 0
  if start:
    state = ckpt.restore(state)
    _truncate_metrics(workdir / "metrics.jsonl", start)
    _log(f"resumed {workdir} from step {start}")
  _log(f"{len(jax.devices())} device(s) [{jax.devices()[0].platform}], 1 process; "
       f"data {source.name} {tuple(source.shape)}; training steps {start} -> {config.steps}")

  step_fn = jax.jit(functools.partial(train_step, spec), donate_argnums=0)
  sample_fn = jax.jit(functools.partial(generate, spec, use_ema=config.ema_decay > 0))
  fixed_z = sample_noise(config.seed + 1, config.num_sample_images, spec.latent_dim)
  writer = MetricWriter(workdir)
  last_good = start or None

  def write_samples(step):
    x = np.asarray(sample_fn(state, fixed_z))
    path = workdir / "samples" / f"step_{step:06d}.png"
    reference = data_lib.mixture_means(source.name) if source.name in ("grid25", "ring8") else None
    save_samples_png(x, path, source.value_range or (-1.0, 1.0), reference)

  def save(step):
    nonlocal last_good
    if not bool(_all_finite(state)):
      raise NonFiniteError(f"non-finite parameters at step {step}; not saving. The last good "
                           f"checkpoint (step {last_good}) is kept.")
    ckpt.save(step, state)
    last_good = step

  bar = None
  if progress:
    from tqdm import tqdm
    bar = tqdm(total=config.steps, initial=start, desc="train", unit="step", mininterval=1.0)
  try:
    with _Preemption() as preemption:
      t0, n0 = time.perf_counter(), start
      for step in range(start, config.steps):
        batch = source.batch(step)
        if step == start:
          data_lib.check_batch(batch, source.shape, config.batch_size, source.name)
        state, metrics = step_fn(state, batch)
        done = step + 1
        if done % config.log_every == 0 or done == config.steps:
          metrics = jax.device_get(metrics)
          _check_finite(done, metrics, last_good)
          dt = time.perf_counter() - t0
          scalars = dict(metrics, images_per_sec=(done - n0) * config.batch_size / max(dt, 1e-9))
          writer.write(done, scalars)
          t0, n0 = time.perf_counter(), done
          if bar is not None:
            bar.set_postfix(d=f"{scalars['d_loss']:.3f}", g=f"{scalars['g_loss']:.3f}",
                            img_s=f"{scalars['images_per_sec']:.0f}", refresh=False)
        if done % config.sample_every == 0 or done == config.steps:
          write_samples(done)
        if done % config.checkpoint_every == 0 or done == config.steps:
          save(done)
        if bar is not None:
          bar.update(1)
        if preemption.requested:
          save(done)
          ckpt.wait()
          _log(f"SIGTERM: saved checkpoint at step {done}; exiting. Re-run to resume.")
          break
  finally:
    if bar is not None:
      bar.close()
    writer.close()
    ckpt.close()
  return state


def load_run(workdir, step: Optional[int] = None):
  """(config, spec, state, data meta) of the run in `workdir`, at its latest checkpoint."""
  workdir = Path(workdir)
  if not (workdir / "config.json").exists():
    raise FileNotFoundError(f"{workdir} holds no jaxgan run (no config.json)")
  config = config_from_workdir(workdir)
  meta = json.loads((workdir / "data.json").read_text())
  spec = spec_from_config(config, meta["shape"])
  template = jax.eval_shape(lambda: create_state(spec, jax.random.key(0), meta["shape"]))
  ckpt = Checkpoints(workdir / "checkpoints")
  try:
    state = ckpt.restore(template, step)
  finally:
    ckpt.close()
  return config, spec, state, meta


def config_from_workdir(workdir):
  return config_lib.config_from_json((Path(workdir) / "config.json").read_text())


def sample(workdir, num: int, seed: int, out) -> np.ndarray:
  """Writes `num` samples of the run's latest checkpoint to `out` (.npy or .png)."""
  config, spec, state, meta = load_run(workdir)
  gen = jax.jit(functools.partial(generate, spec, use_ema=config.ema_decay > 0))
  z = sample_noise(seed, num, spec.latent_dim)
  x = np.concatenate([np.asarray(gen(state, z[i:i + 1000])) for i in range(0, num, 1000)])
  x = x.astype(np.float32)
  if meta["value_range"] is not None:
    x = np.clip(x, *meta["value_range"])
  out = Path(out)
  out.parent.mkdir(parents=True, exist_ok=True)
  if out.suffix == ".npy":
    np.save(out, x)
  elif out.suffix == ".png":
    save_samples_png(x, out, meta["value_range"] or (-1.0, 1.0))
  else:
    raise ValueError(f"--out must end in .npy or .png, got {out}")
  return x
