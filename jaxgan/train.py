"""The host loop: data, the jitted step, logging, sample grids, checkpoints, resume (reading
a run back: jaxgan.runs).

Nothing here is traced. Between log points the loop only dispatches work (no host sync);
metrics and the step's on-device non-finite record (`state.nonfinite`) are fetched at log,
sample and checkpoint points. A non-finite state is never saved: the run stops with the step
and the quantity. SIGTERM finishes the step, commits a checkpoint and returns. A first Ctrl-C
(SIGINT) does the same and then raises KeyboardInterrupt; a second one raises it at once (the
last committed checkpoint stays).
"""
import functools
import json
import time
from pathlib import Path
from typing import Optional

import jax
import jax.numpy as jnp
import numpy as np

from jaxgan import config as config_lib
from jaxgan import data as data_lib
from jaxgan import eval as eval_lib
from jaxgan import parallel
from jaxgan.checkpoint import Checkpoints
from jaxgan.host import Preemption, is_writer, log
from jaxgan.images import save_samples_png
from jaxgan.runs import grid_layout, sample_noise
from jaxgan.state import GANState, generate, spec_from_config
from jaxgan.train_step import all_finite, nonfinite_names
from jaxgan.writers import MetricWriter, write_atomic


class NonFiniteError(FloatingPointError):
  """Training met a NaN/Inf; `step` is the first step known to be non-finite."""
  def __init__(self, message: str, step: Optional[int] = None):
    super().__init__(message)
    self.step = step


_all_finite = jax.jit(all_finite)


def _check_nonfinite(nonfinite: dict, step: int, last_good: Optional[int], skip: bool):
  """Raises if the step's on-device record shows a NaN/Inf (unless such updates are skipped)."""
  first = int(nonfinite["first_step"])
  if first and not skip:
    raise NonFiniteError(
        f"non-finite {', '.join(nonfinite_names(nonfinite['what']))} at step {first} "
        f"(detected at step {step}); stopping without saving. The last good checkpoint "
        f"(step {last_good}) is kept. Lower the learning rates, raise the penalty weight, or "
        f"set --config.skip_nonfinite=true to skip such updates.", step=first)


def _check_workdir_config(workdir: Path, config, force: bool) -> None:
  """Refuses a workdir that holds a run of a different config (RESUMABLE_KEYS may differ)."""
  path = workdir / "config.json"
  if not path.exists():
    return
  diff = config_lib.config_diff(config_lib.config_from_json(path.read_text()), config)
  if diff and not force:
    raise config_lib.ConfigError(
        f"{workdir} holds a run with a different config:\n  " + "\n  ".join(diff) +
        f"\nOnly {', '.join(config_lib.RESUMABLE_KEYS)} may change when a run is resumed. Use "
        f"another --workdir, or pass --force to continue this run with the new config.")
  if diff:
    log(f"--force: continuing {workdir} with a changed config: {'; '.join(diff)}")


class _Diagnostics:
  """Divergence warnings at log points, from the fetched metrics: D wins (its loss below
  `d_wins_loss` for `d_wins_logs` log points in a row) and collapse (the fakes' mean pairwise
  distance below `collapse_ratio` times the real batch's). Each is logged when it starts and
  counted (log points flagged) in the metrics as `d_wins_warnings` and `collapse_warnings`.
  `rows`: the log rows a resumed run keeps; the counts, D's streak and the collapse state go on
  from them, so a resumed run warns and counts as an uninterrupted one."""
  def __init__(self, config, rows: list):
    self.cfg = config.diagnostics
    self.loss_bounded = config.loss != "wasserstein"   # a W-critic's loss has no floor at 0
    last = rows[-1] if rows else {}
    self.counts = {k: int(last.get(k, 0)) for k in ("d_wins_warnings", "collapse_warnings")}
    self.streak = 0
    for row in rows:                     # values are floats, or "nan"/"inf" strings
      self.streak = self.streak + 1 if self._d_wins(row) else 0
    self.collapsed = bool(last) and self._collapsed(last)

  def _d_wins(self, m) -> bool:
    return self.loss_bounded and float(m["d_loss"]) < self.cfg.d_wins_loss

  def _collapsed(self, m) -> bool:
    return float(m["fake_pdist"]) < self.cfg.collapse_ratio * float(m["real_pdist"])

  def __call__(self, step: int, m: dict) -> dict:
    self.streak = self.streak + 1 if self._d_wins(m) else 0
    if self.streak >= self.cfg.d_wins_logs:
      if self.streak == self.cfg.d_wins_logs:
        log(f"warning: step {step}: D's loss has stayed below {self.cfg.d_wins_loss} for "
            f"{self.streak} log points (D wins; G gets no signal)")
      self.counts["d_wins_warnings"] += 1
    collapsed = self._collapsed(m)
    if collapsed:
      if not self.collapsed:
        log(f"warning: step {step}: the fakes of a batch collapse (mean pairwise distance "
            f"{m['fake_pdist']:.3g} vs {m['real_pdist']:.3g} for real data)")
      self.counts["collapse_warnings"] += 1
    self.collapsed = collapsed
    return self.counts


def data_meta(source: data_lib.Source) -> dict:
  """What data.json records of the data: name, example shape, value range, number of classes
  (0: no labels)."""
  return {"name": source.name, "shape": list(source.shape), "value_range": source.value_range,
          "num_classes": source.num_classes}


def write_run_files(workdir: Path, config, source: data_lib.Source) -> None:
  """config.json and data.json: what `load_run` needs to rebuild the run; classes.json (class
  name -> label index) when the data has named classes."""
  workdir.mkdir(parents=True, exist_ok=True)
  write_atomic(workdir / "config.json", config_lib.config_to_json(config))
  write_atomic(workdir / "data.json", json.dumps(data_meta(source)))
  if source.num_classes and source.class_names:
    write_atomic(workdir / "classes.json",
                 json.dumps({name: i for i, name in enumerate(source.class_names)}, indent=1))


def train(config, workdir, *, source: Optional[data_lib.Source] = None,
          progress: bool = True, force: bool = False,
          mesh: Optional[jax.sharding.Mesh] = None) -> GANState:
  """Trains (or resumes) the run in `workdir` up to `config.steps`; returns the final state
  (earlier if SIGTERM stopped it: compare `state.step` with `config.steps`). Ctrl-C commits a
  checkpoint of the current step, then raises KeyboardInterrupt.

  A workdir holding a run of another config is refused unless `force` (see
  `config.RESUMABLE_KEYS`); checkpoints that exist but do not restore are never trained over.
  Data-parallel over `mesh` (default: every visible device, `parallel.make_mesh`); with
  several processes every process calls this, and process 0 writes metrics and images.
  """
  config_lib.validate(config)
  mesh = mesh or parallel.make_mesh()
  parallel.check_batch_size(config.batch_size, mesh)
  workdir = Path(workdir)
  # several processes: JAX's preemption notifier owns SIGTERM and agrees on a step to save
  with Preemption(handle=jax.process_count() == 1) as preemption:
    _check_workdir_config(workdir, config, force)
    procs = {} if jax.process_count() == 1 else dict(process_index=jax.process_index(),
                                                     process_count=jax.process_count())
    source = source or data_lib.make_source(config.data, config.batch_size, config.seed, **procs)
    spec = spec_from_config(config, source.shape, source.num_classes)
    state = parallel.init_state(spec, mesh, config.seed, source.shape)  # create_state, replicated
    workdir.mkdir(parents=True, exist_ok=True)
    ckpt = Checkpoints(workdir / "checkpoints", cleanup_unfinished=True)
    try:
      restored, start = ckpt.restore_latest(state, log=log)
      k = config.get("steps_per_call", 1)
      if (start or 0) % k:
        raise config_lib.ConfigError(
            f"the checkpoint in {workdir} is at step {start}, not a multiple of steps_per_call "
            f"{k}; resume with a steps_per_call that divides {start}")
      state = restored if start else state
      start = start or 0
      if is_writer():
        write_run_files(workdir, config, source)
      if start:
        log(f"resumed {workdir} from step {start}")
      state = _loop(config, workdir, source, spec, state, start, ckpt, preemption, progress,
                    mesh)
    except BaseException:
      try:
        ckpt.close()
      except Exception:  # the error in flight says more
        pass
      raise
    ckpt.close()
  return state


def _loop(config, workdir, source, spec, state, start, ckpt, preemption, progress, mesh):
  k = config.get("steps_per_call", 1)
  log(f"{parallel.describe(mesh)}, global batch {config.batch_size}, {k} step(s) per call; "
      f"data {source.name} {tuple(source.shape)}; training steps {start} -> {config.steps}")
  step_fn = parallel.jit_step(spec, mesh, k)
  sample_fn = jax.jit(functools.partial(generate, spec, use_ema=config.ema_decay > 0),
                      out_shardings=parallel.replicated(mesh))
  cols, grid_y = grid_layout(config.num_sample_images, spec.num_classes)
  num_grid = config.num_sample_images if grid_y is None else len(grid_y)
  fixed_z = parallel.replicate(mesh, sample_noise(config.seed + 1, num_grid, spec.latent_dim))
  fixed_y = None if grid_y is None else parallel.replicate(mesh, jnp.asarray(grid_y))
  writer = MetricWriter(workdir, enabled=is_writer(), start_step=start)
  rows = writer.rows                     # log rows kept from before `start`
  diagnose = _Diagnostics(config, rows)
  last_good = start or None
  skipped = int(rows[-1].get("skipped_updates", 0)) if rows else 0

  def check(step, nonfinite):
    nonlocal skipped
    _check_nonfinite(nonfinite, step, last_good, config.skip_nonfinite)
    if int(nonfinite["skipped"]) > skipped:
      skipped = int(nonfinite["skipped"])
      log(f"step {step}: {skipped} non-finite update(s) skipped so far (the first at step "
          f"{int(nonfinite['first_step'])}: {', '.join(nonfinite_names(nonfinite['what']))})")

  def write_samples(step):
    check(step, jax.device_get(state.nonfinite))
    x = np.asarray(sample_fn(state, fixed_z, fixed_y))  # every process computes, process 0 writes
    if not is_writer():
      return
    path = workdir / "samples" / f"step_{step:06d}.png"
    reference = data_lib.mixture_means(source.name) if source.name in ("grid25", "ring8") else None
    save_samples_png(x, path, source.value_range or (-1.0, 1.0), reference, cols=cols)

  def save(step):
    nonlocal last_good
    check(step, jax.device_get(state.nonfinite))
    if not bool(_all_finite(state)):
      raise NonFiniteError(f"non-finite parameters at step {step}; not saving. The last good "
                           f"checkpoint (step {last_good}) is kept.", step=step)
    ckpt.save(step, state)
    last_good = step

  eval_every, evaluator = config.get("eval_every", 0), None
  if eval_every and start < config.steps:  # built before the loop: a bad setting fails early
    evaluator = eval_lib.Evaluator(config, spec, data_meta(source), config.get("eval_num", 0),
                                   source=source,
                                   inception=config.get("eval_inception", "") or None)

  def run_eval(step):  # host side, between steps
    result = evaluator.record(step, evaluator(state))
    if is_writer():
      log(f"eval at step {step}: "
          f"{eval_lib.write(evaluator.result_path(workdir, step), result)}")

  bar = None
  if progress and is_writer():
    from tqdm import tqdm
    bar = tqdm(total=config.steps, initial=start, desc="train", unit="step", mininterval=1.0)
  try:
    t0, n0 = time.perf_counter(), start
    for step in range(start, config.steps, k):
      parts = [source.batch(s) for s in range(step, step + k)]  # this process's rows
      if step == start:
        data_lib.check_batch(parts[0], source.shape, config.batch_size // source.process_count,
                             source.name, source.num_classes)
      local = parts[0] if k == 1 else jax.tree.map(lambda *xs: jnp.stack(xs), *parts)
      batch = parallel.global_batch(mesh, local, k > 1)
      state, metrics = step_fn(state, batch)     # k > 1: batch [K, B, ...], metrics [K]
      done = step + k
      if done % config.log_every == 0 or done == config.steps:
        metrics, nonfinite = jax.device_get((metrics, state.nonfinite))
        if k > 1:
          metrics = {name: v[-1] for name, v in metrics.items()}
        check(done, nonfinite)
        dt = time.perf_counter() - t0
        scalars = dict(metrics, images_per_sec=(done - n0) * config.batch_size / max(dt, 1e-9),
                       skipped_updates=nonfinite["skipped"], **diagnose(done, metrics))
        writer.write(done, scalars)
        t0, n0 = time.perf_counter(), done
        if bar is not None:
          bar.set_postfix(d=f"{scalars['d_loss']:.3f}", g=f"{scalars['g_loss']:.3f}",
                          img_s=f"{scalars['images_per_sec']:.0f}", refresh=False)
      if done % config.sample_every == 0 or done == config.steps:
        write_samples(done)
      if done % config.checkpoint_every == 0 or done == config.steps:
        save(done)
      if eval_every and done % eval_every == 0:
        run_eval(done)
      if bar is not None:
        bar.update(k)
      if preemption.requested if jax.process_count() == 1 else parallel.reached_preemption(done):
        save(done)
        ckpt.wait()
        preemption.stop(f"checkpoint of step {done} committed to {ckpt.directory}")
        break
  finally:
    if bar is not None:
      bar.close()
    writer.close()
  return state
