"""Seed populations: N independent GANs trained in ONE compiled program, `jax.vmap` over the
`GANState`.

  jaxgan sweep --config FILE --seeds N [--param KEY --values v1,v2,...] [--workdir DIR]

The members are the product (values x seeds): member (v, s) is the run `jaxgan train` would do
with `--config.seed=s --config.KEY=v` (seeds config.seed .. config.seed + N - 1). Each member has
its own state, its own key and its own data stream (the source's pure `keyed_batch(key(s), step)`),
so member i equals a single run with that seed, up to float rounding (tested).

A swept hyper-parameter is passed to the step as a traced per-member scalar: the spec is rebuilt
inside the vmapped function with it (`member_spec`), so one program serves every value. Only
keys that do not change the program's shapes can vary: `TRACED_KEYS`.

Every member gets a normal run directory, `DIR/<member>/` (config.json with its seed and value,
data.json, metrics.jsonl, samples/, Orbax checkpoints/), that `jaxgan sample` and `jaxgan eval`
read like any run. `DIR/sweep.json` lists the members; at the end `summarize` writes
`DIR/summary.json`: per-member final losses and mode metrics (grid25, ring8, stacked_mnist), and
their mean and sample std (ddof=1) over the members (per value of the swept parameter). A member whose losses or parameters become non-finite is
marked diverged and stops saving; the others go on.

Steps run in chunks of K = gcd(log_every, sample_every, checkpoint_every, steps - start) inside
one `lax.scan` with the batches drawn on the device, so there is no host work between log points.
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
from jaxgan.checkpoint import Checkpoints
from jaxgan.images import save_samples_png
from jaxgan.metrics import modes
from jaxgan.state import GANSpec, create_state, generate, make_optimizer, spec_from_config
from jaxgan.train import _all_finite, _log, load_run, sample_noise, write_run_files
from jaxgan.train_step import train_step
from jaxgan.writers import MetricWriter

# config keys that may differ between the members of one sweep (traced scalars in the step)
TRACED_KEYS = ("penalty.weight", "optim.g.lr", "optim.d.lr", "optim.g.b1", "optim.d.b1",
               "optim.g.b2", "optim.d.b2")
NUM_MODE_SAMPLES = {"grid25": modes.NUM_MIXTURE_SAMPLES, "ring8": modes.NUM_MIXTURE_SAMPLES,
                    "stacked_mnist": modes.NUM_STACKED_SAMPLES}
EVAL_NOISE_SEED = 12345


def member_spec(spec: GANSpec, config, hp: dict) -> GANSpec:
  """`spec` with the swept hyper-parameters `hp` ({key in TRACED_KEYS: scalar}, possibly traced)
  in place of the config's values. The optimizer states keep their structure."""
  def tx(which):
    cfg = config.optim[which]
    return make_optimizer(types.SimpleNamespace(
        **{k: hp.get(f"optim.{which}.{k}", cfg[k]) for k in ("lr", "b1", "b2")}))
  return dataclasses.replace(spec, g_tx=tx("g"), d_tx=tx("d"),
                             penalty_weight=hp.get("penalty.weight", spec.penalty_weight))


def _chunk(spec, config, keyed_batch, num_steps, state, data_key, hp):
  """`num_steps` train steps of one member, batches drawn on the device."""
  spec = member_spec(spec, config, hp)
  def body(s, _):
    return train_step(spec, s, keyed_batch(data_key, s.step))
  state, metrics = jax.lax.scan(body, state, None, length=num_steps)
  return state, jax.tree.map(lambda m: m[-1], metrics)               # metrics of the last step


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
          *, progress: bool = True, classify: Optional[Callable] = None) -> dict:
  """Trains (or resumes) the members in `workdir/<member>/` up to `config.steps`; returns (and
  writes) the summary."""
  config_lib.validate(config)
  runs = members(config, seeds, param, values)
  workdir = Path(workdir)
  source = data_lib.make_source(config.data, config.batch_size, config.seed)
  if source.keyed_batch is None:
    raise data_lib.DataError(f"a sweep needs an on-device data source ({', '.join(data_lib.EMBEDDED)}); "
                             f"{source.name!r} is read on the host")
  spec = spec_from_config(config, source.shape)
  n = len(runs)
  member_seeds = jnp.array([c.seed for _, c in runs])
  hp = {param: jnp.array([float(_get(c, param)) for _, c in runs], jnp.float32)} if param else {}
  dirs = [workdir / name for name, _ in runs]
  for d, (_, c) in zip(dirs, runs):
    write_run_files(d, c, source)
  (workdir / "sweep.json").write_text(json.dumps(dict(
      config=json.loads(config_lib.config_to_json(config)), param=param, values=list(values),
      seeds=seeds, members=[name for name, _ in runs]), indent=2))

  keys = jax.vmap(jax.random.key)(member_seeds)                      # [N] typed keys
  state = jax.jit(jax.vmap(lambda k: create_state(spec, k, source.shape)))(keys)
  ckpts = [Checkpoints(d / "checkpoints") for d in dirs]
  start = _resume_step(ckpts)
  if start:
    template = jax.tree.map(lambda x: x[0], state)
    state = _stack([c.restore(template, start) for c in ckpts])
    _log(f"resumed sweep {workdir} from step {start}")
  _log(f"sweep of {n} members ({', '.join(name for name, _ in runs[:3])}{', ...' if n > 3 else ''}) "
       f"in one program on {jax.devices()[0].platform}; data {source.name} "
       f"{tuple(source.shape)}; steps {start} -> {config.steps}")

  every = math.gcd(config.log_every, config.sample_every, config.checkpoint_every,
                   config.steps - start) if config.steps > start else 1
  chunk_fn = jax.jit(jax.vmap(functools.partial(_chunk, spec, config, source.keyed_batch, every)),
                     donate_argnums=0)
  use_ema = config.ema_decay > 0
  sample_fn = jax.jit(jax.vmap(functools.partial(generate, spec, use_ema=use_ema)))
  finite_fn = jax.jit(jax.vmap(_all_finite))
  fixed_z = jnp.stack([sample_noise(c.seed + 1, config.num_sample_images, spec.latent_dim)
                       for _, c in runs])                            # [N, num, latent]
  writers = [MetricWriter(d) for d in dirs]
  reference = data_lib.mixture_means(source.name) if source.name in ("grid25", "ring8") else None
  diverged = {}                                                      # member index -> step

  bar = None
  if progress:
    from tqdm import tqdm
    bar = tqdm(total=config.steps, initial=start, desc=f"sweep x{n}", unit="step", mininterval=1.0)
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
            _log(f"member {runs[i][0]} became non-finite at step {done}; it stops saving "
                 f"(last checkpoint kept)")
          writers[i].write(done, row)
      if done % config.sample_every == 0 or done == config.steps:
        x = np.asarray(sample_fn(state, fixed_z))
        for i, d in enumerate(dirs):
          save_samples_png(x[i], d / "samples" / f"step_{done:06d}.png",
                           source.value_range or (-1.0, 1.0), reference)
      if done % config.checkpoint_every == 0 or done == config.steps:
        ok = np.asarray(finite_fn(state))
        for i, c in enumerate(ckpts):
          if ok[i] and i not in diverged:
            c.save(done, jax.tree.map(lambda x: x[i], state))
          elif i not in diverged:
            diverged[i] = done
      if bar is not None:
        bar.update(every)
  finally:
    if bar is not None:
      bar.close()
    for w in writers:
      w.close()
    for c in ckpts:
      c.close()
  return summarize(workdir, classify=classify)


def _get(config, key):
  node = config
  for part in key.split("."):
    node = node[part]
  return node


def _final_row(member_dir) -> dict:
  path = Path(member_dir) / "metrics.jsonl"
  rows = [json.loads(r) for r in path.read_text().splitlines() if r] if path.exists() else []
  out = dict(rows[-1]) if rows else {}
  out.pop("images_per_sec", None)
  if any(isinstance(v, str) for v in out.values()):  # the writer stores non-finite as "nan"
    out["diverged"] = True
  return out


def member_metrics(member_dir, generator: Callable, classify: Optional[Callable] = None) -> dict:
  """Final logged losses and the mode metrics of one member's latest checkpoint.

  generator(spec, state, z) -> samples: one jitted function shared by all members."""
  out = _final_row(member_dir)
  if out.get("diverged"):
    return out
  config, spec, state, meta = load_run(member_dir)
  name = meta["name"]
  out["checkpoint_step"] = int(state.step)
  if name not in NUM_MODE_SAMPLES:
    return out
  num = NUM_MODE_SAMPLES[name]
  z = sample_noise(EVAL_NOISE_SEED, num, spec.latent_dim)
  x = np.concatenate([np.asarray(generator(spec, state, z[i:i + 1000]))
                      for i in range(0, num, 1000)])
  if name == "stacked_mnist":
    out.update(modes.stacked_mnist_metrics(np.clip(x, -1.0, 1.0), classify))
  else:
    out.update(modes.mixture_metrics(x, name))
  return out


def summarize(workdir, classify: Optional[Callable] = None) -> dict:
  """Per-member metrics and their mean/std over the members -> `workdir/summary.json`.

  `classify` (digit images [M, H, W, 1] -> labels [M]) counts Stacked MNIST modes; by default
  the shipped MNIST classifier (`jaxgan.metrics.load_mnist_classifier`)."""
  workdir = Path(workdir)
  info = json.loads((workdir / "sweep.json").read_text())
  use_ema = info["config"]["ema_decay"] > 0
  if classify is None and info["config"]["data"]["name"] == "stacked_mnist":
    from jaxgan.metrics.classifier import load_mnist_classifier
    classify = load_mnist_classifier().predict                      # per channel
  jitted = {}
  def generator(spec, state, z):
    # the members differ only in traced hyper-parameters, never in G: compile once for all
    if not jitted:
      jitted["fn"] = jax.jit(functools.partial(generate, spec, use_ema=use_ema))
    return jitted["fn"](state, z)
  per_member = {}
  for name in info["members"]:
    try:
      per_member[name] = member_metrics(workdir / name, generator, classify)
    except Exception as e:  # a diverged member without a checkpoint still appears
      per_member[name] = {"error": f"{type(e).__name__}: {e}"}
  groups = {}
  for name in info["members"]:
    group = name.rsplit("_seed", 1)[0] if info["param"] else "all"
    groups.setdefault(group, []).append(per_member[name])
  aggregate = {}
  for group, rows in groups.items():
    keys = sorted({k for r in rows for k, v in r.items() if isinstance(v, (int, float))})
    agg = {}
    for k in keys:
      vals = np.array([r[k] for r in rows if isinstance(r.get(k), (int, float))], np.float64)
      agg[k] = dict(mean=float(vals.mean()), std=float(vals.std(ddof=1)) if vals.size > 1 else 0.0,
                    n=int(vals.size))
    aggregate[group] = agg
  summary = dict(param=info["param"], seeds=info["seeds"], members=per_member,
                 aggregate=aggregate)
  (workdir / "summary.json").write_text(json.dumps(summary, indent=2))
  return summary
