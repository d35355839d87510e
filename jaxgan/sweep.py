"""Seed populations: N independent GANs trained in ONE compiled program, `jax.vmap` over the
`GANState`.

  jaxgan sweep --config FILE --seeds N [--param KEY --values v1,v2,...] [--workdir DIR]
               [--steps-per-call K]

The members are the product (values x seeds): member (v, s) is the run `jaxgan train` would do
with `--config.seed=s --config.KEY=v` (seeds config.seed .. config.seed + N - 1). Each member has
its own state, its own key and its own data stream (the source's pure `keyed_batch(key(s), step)`),
so member i equals a single run with that seed, up to float rounding (tested). The members move
in lockstep and share the step counter inside the program (`_lockstep`), so a lazy penalty's
`lax.cond` on the step runs the penalty only on its steps, as in a single run.

A swept hyper-parameter is passed to the step as a traced per-member scalar: the spec is rebuilt
inside the vmapped function with it (`member_spec`), so one program serves every value. Only
keys that do not change the program's shapes can vary: `TRACED_KEYS`.

Every member gets a normal run directory, `DIR/<member>/` (config.json with its seed and value,
data.json, metrics.jsonl, samples/, Orbax checkpoints/), that `jaxgan sample` and `jaxgan eval`
read like any run. `DIR/sweep.json` lists the members; at the end `summarize` writes
`DIR/summary.json`: per-member final losses and mode metrics (grid25, ring8, stacked_mnist; from
`jaxgan.eval.Evaluator` with the noise seed EVAL_NOISE_SEED), and their mean and sample std
(ddof=1) over the members (per value of the swept parameter). A member whose losses or
parameters become non-finite is marked diverged and stops saving; the others go on. Each
member's `status` is ok, diverged (non-finite in training), non_finite_samples (its checkpoint
generates NaN/Inf) or error (e.g. no checkpoint); only the ok members enter the mean and std,
and each group's `excluded` lists the others with their status.

Steps run in chunks of K = gcd(log_every, sample_every, checkpoint_every, steps - start, start)
inside one `lax.scan` with the batches drawn on the device, so there is no host work between log
points.
`steps_per_call` (`--steps-per-call`) sets a smaller K that divides it; K = 1 calls the vmapped
step itself, no scan: convolutions inside a loop body run far slower on XLA:CPU (jax#12868), so
conv sweeps on CPU want K = 1. (`config.steps_per_call` is `jaxgan train`'s and is not read here.)

SIGTERM (preemption) and a first Ctrl-C, from the sweep's start on, stop it after the current
chunk, as they stop `jaxgan train`: every member still saving commits a checkpoint of that step
and the same command resumes the sweep (no summary is written then, even after the last chunk);
Ctrl-C then raises KeyboardInterrupt, a second Ctrl-C raises it at once. The summary itself
(after training) is not guarded: a SIGTERM there kills it, and a re-run redoes just the summary.
"""
import dataclasses
import functools
import json
import math
import types
from pathlib import Path
from typing import Callable, Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jaxgan import config as config_lib
from jaxgan import data as data_lib
from jaxgan import eval as eval_lib
from jaxgan.checkpoint import Checkpoints
from jaxgan.images import save_samples_png
from jaxgan.state import GANSpec, create_state, generate, make_optimizer, spec_from_config
from jaxgan.host import Preemption, log
from jaxgan.runs import config_from_workdir, grid_layout, load_run, sample_noise
from jaxgan.train import write_run_files
from jaxgan.train_step import all_finite, train_step
from jaxgan.writers import MetricWriter, last_metrics

# config keys that may differ between the members of one sweep (traced scalars in the step)
TRACED_KEYS = ("penalty.weight", "optim.g.lr", "optim.d.lr", "optim.g.b1", "optim.d.b1",
               "optim.g.b2", "optim.d.b2")
EVAL_NOISE_SEED = 12345   # the summaries' sample noise (the published ones used it)


def member_spec(spec: GANSpec, config, hp: dict) -> GANSpec:
  """`spec` with the swept hyper-parameters `hp` ({key in TRACED_KEYS: scalar}, possibly traced)
  in place of the config's values. The optimizer states keep their structure."""
  def tx(which):
    cfg = config.optim[which]
    return make_optimizer(types.SimpleNamespace(
        **{k: hp.get(f"optim.{which}.{k}", cfg[k]) for k in ("lr", "b1", "b2")}),
        config_lib.lr_decay(config))
  return dataclasses.replace(spec, g_tx=tx("g"), d_tx=tx("d"),
                             penalty_weight=hp.get("penalty.weight", spec.penalty_weight))


def _chunk(spec, config, keyed_batch, num_steps, state, data_key, hp):
  """`num_steps` train steps of one member, batches drawn on the device (a `lax.scan` when
  num_steps > 1)."""
  spec = member_spec(spec, config, hp)
  def body(s, _):
    return train_step(spec, s, keyed_batch(data_key, s.step))
  if num_steps == 1:
    return body(state, None)
  state, metrics = jax.lax.scan(body, state, None, length=num_steps)
  return state, jax.tree.map(lambda m: m[-1], metrics)               # metrics of the last step


def _lockstep(chunk):
  """vmap of `chunk(state, data_key, hp)` over the members, with the step shared: the members
  move in lockstep, and a step that vmap saw as batched would turn the lazy penalty's
  `lax.cond(step % k == 0, ...)` into a select that runs the penalty on every step."""
  def lockstep_chunk(state, data_key, hp):
    axes = jax.tree.map(lambda _: 0, state).replace(step=None)
    out, metrics = jax.vmap(chunk, in_axes=(axes, 0, 0), out_axes=(axes, 0))(
        state.replace(step=state.step[0]), data_key, hp)
    return out.replace(step=jnp.broadcast_to(out.step, state.step.shape)), metrics
  return lockstep_chunk


def members(config, seeds: int, param: Optional[str] = None,
            values: Sequence[str] = ()) -> list[tuple[str, object]]:
  """[(name, member config)]: the product values x seeds, each config validated."""
  if seeds < 1:
    raise config_lib.ConfigError(f"--seeds must be >= 1, got {seeds}")
  if (param is None) != (not values):
    raise config_lib.ConfigError("--param and --values go together (e.g. --param penalty.weight "
                                 "--values 0.1,1,10)")
  if param is not None and param not in TRACED_KEYS:
    raise config_lib.ConfigError(
        f"--param {param!r} cannot vary inside one compiled program; sweepable keys: "
        f"{', '.join(TRACED_KEYS)} (run separate sweeps for other keys)")
  out = []
  for v in (values if param else [None]):
    for s in range(config.seed, config.seed + seeds):
      overrides = [f"seed={s}"] + ([f"{param}={v}"] if param else [])
      member = config_lib.apply_overrides(config, overrides)
      config_lib.validate(member)
      out.append((f"{param}_{v}_seed{s}" if param else f"seed{s}", member))
  return out


def _stack(trees):
  return jax.tree.map(lambda *xs: jnp.stack(xs), *trees)


def _check_steps_per_call(steps_per_call: Optional[int], config,
                          left: Optional[int] = None, start: int = 0) -> int:
  """The steps per compiled call: `steps_per_call`, which must divide the log/sample/checkpoint
  cadence, the `left` steps to go (None: not known yet) and the `start` step (so the chunks end
  on every log/sample/checkpoint point after a resume from any step), or by default their gcd."""
  if steps_per_call is not None and steps_per_call < 1:
    raise config_lib.ConfigError(f"--steps-per-call must be >= 1, got {steps_per_call}")
  if left is not None and left <= 0:
    return 1
  cadence = math.gcd(config.log_every, config.sample_every, config.checkpoint_every, left or 0,
                     start)
  every = steps_per_call or cadence
  if cadence % every:
    raise config_lib.ConfigError(
        f"--steps-per-call {every} must divide log_every, sample_every, checkpoint_every"
        f"{'' if left is None else f' and the steps left ({left})'}"
        f"{f' and the resumed step ({start})' if start else ''}; their gcd is {cadence}")
  return every


def _resume_step(ckpts) -> int:
  steps = [set(c.all_steps()) for c in ckpts]
  common = set.intersection(*steps)
  if not any(steps):
    return 0
  if not common:
    raise config_lib.ConfigError("the members' checkpoints share no step; cannot resume the "
                                 "sweep (delete the workdir to start again)")
  return max(common)


def sweep(config, workdir, seeds: int, param: Optional[str] = None, values: Sequence[str] = (),
          *, steps_per_call: Optional[int] = None, progress: bool = True,
          classify: Optional[Callable] = None) -> Optional[dict]:
  """Trains (or resumes) the members in `workdir/<member>/` up to `config.steps`; returns (and
  writes) the summary, or None if SIGTERM stopped it (its checkpoints committed, no summary;
  Ctrl-C: the same, then KeyboardInterrupt).
  `steps_per_call`: steps per compiled call (default: all the steps between two
  log/sample/checkpoint points, in one scan)."""
  config_lib.validate(config)
  runs = members(config, seeds, param, values)
  _check_steps_per_call(steps_per_call, config)                     # before any file is written
  workdir = Path(workdir)
  # SIGTERM / Ctrl-C from here on: checkpoint and stop after the current chunk, no summary
  with Preemption() as preemption:
    if not _train_members(config, workdir, runs, param, values, seeds, steps_per_call,
                          progress, preemption):
      return None
    if preemption.requested:  # came during the set-up of a sweep with nothing left to train
      preemption.stop(f"checkpoints of step {config.steps} committed in {workdir}; no summary "
                      f"written")
      return None
  return summarize(workdir, classify=classify)


def _train_members(config, workdir: Path, runs, param, values, seeds, steps_per_call,
                   progress: bool, preemption: Preemption) -> bool:
  """Trains (or resumes) the sweep's members in one vmapped program; False if `preemption`
  stopped it after a chunk (its checkpoints committed)."""
  source = data_lib.make_source(config.data, config.batch_size, config.seed)
  if source.keyed_batch is None:
    raise data_lib.DataError(f"a sweep needs an on-device data source "
                             f"({', '.join(data_lib.EMBEDDED)}, or a folder set whose cache fits "
                             f"data.device_max_mb); {source.name!r} is read on the host")
  spec = spec_from_config(config, source.shape, source.num_classes)
  n = len(runs)
  member_seeds = jnp.array([c.seed for _, c in runs])
  hp = {param: jnp.array([float(_get(c, param)) for _, c in runs], jnp.float32)} if param else {}
  dirs = [workdir / name for name, _ in runs]
  for d, (_, c) in zip(dirs, runs):
    write_run_files(d, c, source)
  (workdir / "sweep.json").write_text(json.dumps(dict(
      config=json.loads(config_lib.config_to_json(config)), param=param, values=list(values),
      seeds=seeds, members=[name for name, _ in runs]), indent=2))

  keys = jax.vmap(jax.random.key)(member_seeds)                    # [N] typed keys
  state = jax.jit(jax.vmap(lambda k: create_state(spec, k, source.shape)))(keys)
  ckpts = [Checkpoints(d / "checkpoints") for d in dirs]
  start = _resume_step(ckpts)
  if start:
    template = jax.tree.map(lambda x: x[0], state)
    state = _stack([c.restore(template, start) for c in ckpts])
    log(f"resumed sweep {workdir} from step {start}")
  left = config.steps - start
  try:
    every = _check_steps_per_call(steps_per_call, config, left, start)
  except config_lib.ConfigError:
    for c in ckpts:
      c.close()
    raise
  log(f"sweep of {n} members ({', '.join(name for name, _ in runs[:3])}"
      f"{', ...' if n > 3 else ''}) in one program on {jax.devices()[0].platform}; data "
      f"{source.name} {tuple(source.shape)}; steps {start} -> {config.steps}, {every} per call")

  chunk_fn = jax.jit(
      _lockstep(functools.partial(_chunk, spec, config, source.keyed_batch, every)),
      donate_argnums=0)
  use_ema = config.ema_decay > 0
  sample_fn = jax.jit(jax.vmap(functools.partial(generate, spec, use_ema=use_ema),
                               in_axes=(0, 0, None)))
  finite_fn = jax.jit(jax.vmap(all_finite))
  cols, grid_y = grid_layout(config.num_sample_images, spec.num_classes)  # conditional: a row
  num_grid = config.num_sample_images if grid_y is None else len(grid_y)  # per class
  fixed_z = jnp.stack([sample_noise(c.seed + 1, num_grid, spec.latent_dim)
                       for _, c in runs])                          # [N, num, latent]
  fixed_y = None if grid_y is None else jnp.asarray(grid_y)
  writers = [MetricWriter(d, start_step=start) for d in dirs]     # cut back to `start`
  reference = data_lib.mixture_means(source.name) if source.name in ("grid25", "ring8") else None
  diverged = {}                                                    # member index -> step

  bar = None
  if progress:
    from tqdm import tqdm
    bar = tqdm(total=config.steps, initial=start, desc=f"sweep x{n}", unit="step",
               mininterval=1.0)

  def save(done, state):
    """Saves every member still saving; one that is non-finite now stops saving."""
    ok = np.asarray(finite_fn(state))
    for i, c in enumerate(ckpts):
      if ok[i] and i not in diverged:
        c.save(done, jax.tree.map(lambda x: x[i], state))
      elif i not in diverged:
        diverged[i] = done

  try:
    for done in range(start + every, config.steps + 1, every):
      state, metrics = chunk_fn(state, keys, hp)
      if done % config.log_every == 0 or done == config.steps:
        metrics = jax.device_get(metrics)                            # {name: [N]}
        ok = np.asarray(finite_fn(state))
        for i in range(n):
          row = {k: float(v[i]) for k, v in metrics.items()}
          if i not in diverged and not (ok[i] and all(map(math.isfinite, row.values()))):
            diverged[i] = done
            log(f"member {runs[i][0]} became non-finite at step {done}; it stops saving "
                f"(last checkpoint kept)")
          writers[i].write(done, row)
      if done % config.sample_every == 0 or done == config.steps:
        x = np.asarray(sample_fn(state, fixed_z, fixed_y))
        for i, d in enumerate(dirs):
          save_samples_png(x[i], d / "samples" / f"step_{done:06d}.png",
                           source.value_range or (-1.0, 1.0), reference, cols=cols)
      if done % config.checkpoint_every == 0 or done == config.steps:
        save(done, state)
      if bar is not None:
        bar.update(every)
      if preemption.requested:  # also after the last chunk: then no summary either
        save(done, state)                                          # a no-op if just saved
        for c in ckpts:
          c.wait()
        preemption.stop(f"checkpoints of step {done} committed for the {n - len(diverged)} "
                        f"saving members in {workdir}")
        return False
  finally:
    if bar is not None:
      bar.close()
    for w in writers:
      w.close()
    for c in ckpts:
      c.close()
  return True


def _get(config, key):
  node = config
  for part in key.split("."):
    node = node[part]
  return node


def _final_row(member_dir) -> dict:
  out = last_metrics(member_dir)
  out.pop("images_per_sec", None)
  if any(isinstance(v, str) for v in out.values()):  # the writer stores non-finite as "nan"
    out["diverged"] = True
  return out


def _summary_evaluator(workdir: Path, info: dict, classify: Optional[Callable]):
  """ONE `Evaluator` for every member, or None when the data has no metrics without extra
  weights: mode metrics (grid25, ring8, stacked_mnist) and the MNIST classifier's image
  metrics (1-channel images: FID, ..., and a conditional run's cond_accuracy and intra_fid)
  are computed; RGB images (which need FID Inception weights) are not.

  The members differ only in traced hyper-parameters, never in G, so the first member's
  config.json and data.json (written before training, checkpoint or not) describe all of them:
  one jitted generator serves all."""
  first = workdir / info["members"][0]
  meta = json.loads((first / "data.json").read_text())
  mnist_like = len(meta["shape"]) == 3 and meta["shape"][-1] == 1
  if meta["name"] not in eval_lib.NUM_SAMPLES and not mnist_like:
    return None
  config = config_from_workdir(first)
  spec = spec_from_config(config, meta["shape"], meta.get("num_classes", 0))
  if mnist_like and meta["name"] not in eval_lib.NUM_SAMPLES:
    classify = None                                   # image metrics use the shipped classifier
  return eval_lib.Evaluator(config, spec, meta, seed=EVAL_NOISE_SEED, classify=classify)


def member_metrics(member_dir, evaluator: Optional[eval_lib.Evaluator]) -> dict:
  """Final logged losses and, with an `evaluator`, the metrics of the member's latest
  checkpoint; `status` (see the module docstring) says whether it may enter the mean/std."""
  out = _final_row(member_dir)
  if out.get("diverged"):
    return dict(out, status="diverged")
  state = load_run(member_dir)[2]
  out["checkpoint_step"] = int(state.step)
  if evaluator is not None:
    out.update(evaluator(state))
    if "non_finite_samples" in out:                                  # not scored: no mode counts
      return dict(out, diverged=True, status="non_finite_samples")
  return dict(out, status="ok")


def _aggregate(rows: dict) -> dict:
  """{metric: {mean, std (ddof=1), n}} over the members {name: metrics} with status ok, and
  `excluded`: {name: status} of the others."""
  ok = [r for r in rows.values() if r["status"] == "ok"]
  numeric = lambda v: isinstance(v, (int, float)) and not isinstance(v, bool)
  agg = {}
  for k in sorted({k for r in ok for k, v in r.items() if numeric(v)}):
    vals = np.array([r[k] for r in ok if numeric(r.get(k))], np.float64)
    agg[k] = dict(mean=float(vals.mean()), std=float(vals.std(ddof=1)) if vals.size > 1 else 0.0,
                  n=int(vals.size))
  agg["excluded"] = {name: r["status"] for name, r in rows.items() if r["status"] != "ok"}
  return agg


def summarize(workdir, classify: Optional[Callable] = None) -> dict:
  """Per-member metrics and their mean/std over the members -> `workdir/summary.json`.

  `classify` (digit images [M, H, W, 1] -> labels [M]) counts Stacked MNIST modes; by default
  the shipped MNIST classifier (`jaxgan.metrics.load_mnist_classifier`), loaded only then."""
  workdir = Path(workdir)
  info = json.loads((workdir / "sweep.json").read_text())
  evaluator = _summary_evaluator(workdir, info, classify)
  per_member = {}
  for name in info["members"]:
    try:
      per_member[name] = member_metrics(workdir / name, evaluator)
    except Exception as e:  # a diverged member without a checkpoint still appears
      per_member[name] = {"error": f"{type(e).__name__}: {e}", "status": "error"}
  groups = {}
  for name in info["members"]:
    group = name.rsplit("_seed", 1)[0] if info["param"] else "all"
    groups.setdefault(group, {})[name] = per_member[name]
  summary = dict(param=info["param"], seeds=info["seeds"], members=per_member,
                 aggregate={group: _aggregate(rows) for group, rows in groups.items()})
  (workdir / "summary.json").write_text(json.dumps(summary, indent=2))
  return summary
