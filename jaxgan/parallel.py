"""Data parallelism: the one module that knows about devices, meshes and processes.

    mesh = parallel.make_mesh()                                # every visible device
    state = parallel.init_state(spec, mesh, seed, data_shape)  # replicated on the mesh
    step = parallel.jit_step(spec, mesh)                       # jit(train_step), sharded, donating
    state, metrics = step(state, parallel.global_batch(mesh, batch))

The mesh has a `data` axis over all devices and a `model` axis of size 1 (room for model
parallelism). The batch is sharded on `data`, the state is replicated. The axes are `Auto`
(not jax.make_mesh's default `Explicit`): the step is written for the global batch and
jit + NamedSharding keeps global semantics, so XLA inserts the collectives and every mean
(losses, penalties and their second `jax.grad`, BatchNorm statistics) is over the global
batch; the result equals the single-device step up to float rounding (tests/test_parallel.py).
Spectral-norm `u`/`sigma` depend on the weights only and stay replicated.

Multi-host: call `initialize_distributed` first; each process then passes its own rows of the
global batch (`data.make_source(..., process_index, process_count)`) to `global_batch`.

`pmap_step` is the same contract through `jax.pmap` for those who want it; see its docstring
for how it differs (per-device BatchNorm statistics).
"""
import dataclasses
import functools
import importlib.util
import os
from typing import Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec as P

from jaxgan.config import ConfigError
from jaxgan.state import GANSpec, create_state
from jaxgan.train_step import train_step, train_steps

DATA, MODEL = "data", "model"


# ------------------------------------------------------------------------------ processes
def initialize_distributed(coordinator: Optional[str] = None,
                           num_processes: Optional[int] = None,
                           process_id: Optional[int] = None, auto: bool = False) -> bool:
  """Starts `jax.distributed` when asked; returns whether it did.

  Asked means: a coordinator address (argument or $JAX_COORDINATOR_ADDRESS), or `auto` (TPU
  pod, Slurm, Open MPI: JAX finds the cluster itself), or a Cloud TPU VM (/dev/accel0, or
  /dev/vfio with libtpu installed). Must run before anything touches a JAX device.
  """
  coordinator = coordinator or os.environ.get("JAX_COORDINATOR_ADDRESS")
  on_tpu_vm = os.path.exists("/dev/accel0") or (
      os.path.isdir("/dev/vfio") and importlib.util.find_spec("libtpu") is not None)
  if not (coordinator or auto or on_tpu_vm):
    if num_processes not in (None, 1) or process_id not in (None, 0):
      raise ConfigError(f"--num-processes {num_processes} / --process-id {process_id} need "
                        "--coordinator HOST:PORT (the address of process 0)")
    return False
  if coordinator and (num_processes is None or process_id is None):
    raise ConfigError(f"--coordinator {coordinator} needs --num-processes and --process-id")
  jax.distributed.initialize(coordinator, num_processes, process_id)
  return True


def reached_preemption(step: int) -> bool:
  """With several processes: whether all have reached the step JAX's preemption sync agreed on
  after a preemption notice (SIGTERM) to any of them; call it after every call of the step."""
  from jax.experimental import multihost_utils
  return multihost_utils.reached_preemption_sync_point(step)


# ----------------------------------------------------------------------------------- mesh
def make_mesh(devices: Optional[Sequence[jax.Device]] = None) -> Mesh:
  """A ('data', 'model') mesh of shape (n, 1) over `devices` (default: every visible one)."""
  devices = list(devices if devices is not None else jax.devices())
  return jax.make_mesh((len(devices), 1), (DATA, MODEL), axis_types=(AxisType.Auto,) * 2,
                       devices=devices)


def replicated(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, P())


def batch_sharding(mesh: Mesh, stacked: bool = False) -> NamedSharding:
  """Batches [B, ...] sharded on B; stacked batches [K, B, ...] sharded on B too."""
  return NamedSharding(mesh, P(None, DATA) if stacked else P(DATA))


def check_batch_size(batch_size: int, mesh: Mesh) -> None:
  n = mesh.shape[DATA]
  if batch_size % n:
    raise ConfigError(f"batch_size {batch_size} does not divide by the {n} devices of the data "
                      f"axis; use a multiple of {n} (e.g. {n * max(1, round(batch_size / n))})")


def describe(mesh: Mesh) -> str:
  return (f"{mesh.devices.size} device(s) [{mesh.devices.flat[0].platform}] in "
          f"{jax.process_count()} process(es)")


# ------------------------------------------------------------------------------ placement
def replicate(mesh: Mesh, tree):
  """Host values (identical on every process) to arrays replicated on the mesh."""
  sharding = replicated(mesh)
  return jax.tree.map(lambda x: jax.make_array_from_process_local_data(sharding, np.asarray(x)),
                      tree)


def global_batch(mesh: Mesh, local, stacked: bool = False):
  """The global batch from this process's rows of it: each leaf of `local` (a `data.Batch`
  dict, or one array) [B / processes, ...] (or stacked [K, B / processes, ...]) -> a global
  [B, ...] ([K, B, ...]) array sharded on B."""
  sharding = batch_sharding(mesh, stacked)
  if jax.process_count() == 1:
    return jax.device_put(local, sharding)
  axis = 1 if stacked else 0

  def one(x):
    shape = list(x.shape)
    shape[axis] *= jax.process_count()
    return jax.make_array_from_process_local_data(sharding, x, tuple(shape))
  return jax.tree.map(one, local)


def init_state(spec: GANSpec, mesh: Mesh, seed: int, data_shape: Sequence[int]):
  """`create_state(spec, key(seed), data_shape)`, built directly replicated on the mesh."""
  return jax.jit(lambda: create_state(spec, jax.random.key(seed), tuple(data_shape)),
                 out_shardings=replicated(mesh))()


def abstract_state(spec: GANSpec, mesh: Mesh, data_shape: Sequence[int]):
  """The state's shapes and dtypes, replicated on `mesh`: a template to restore a checkpoint
  into, whatever mesh or number of processes wrote it."""
  shapes = jax.eval_shape(lambda: create_state(spec, jax.random.key(0), tuple(data_shape)))
  rep = replicated(mesh)
  return jax.tree.map(lambda s: jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=rep), shapes)


# ------------------------------------------------------------------------------------ jit
def jit_step(spec: GANSpec, mesh: Mesh, steps_per_call: int = 1):
  """`train_step` (or, for steps_per_call K > 1, `train_steps` over batches [K, B, ...])
  jitted with the state replicated, the batch sharded on `data`, and the state donated."""
  fn = train_step if steps_per_call == 1 else train_steps
  rep = replicated(mesh)
  return jax.jit(functools.partial(fn, spec),
                 in_shardings=(rep, batch_sharding(mesh, stacked=steps_per_call > 1)),
                 out_shardings=(rep, rep), donate_argnums=0)


# ----------------------------------------------------------------------------------- pmap
def _pmean_grads(tx: optax.GradientTransformation, axis: str) -> optax.GradientTransformation:
  """`tx` applied to the gradient averaged over `axis` (same optimizer state as `tx`)."""
  def update(grads, opt_state, params=None):
    return tx.update(jax.lax.pmean(grads, axis), opt_state, params)
  return optax.GradientTransformation(tx.init, update)


def pmap_step(spec: GANSpec, devices: Optional[Sequence[jax.Device]] = None):
  """`train_step` through `jax.pmap` over `devices` (default: the local ones).

  Same contract as `jit_step`: fn(state, batch) -> (state, metrics) with the global batch
  [B, ...]; here the state is per-device (`pmap_replicate` / `pmap_unreplicate`), the batch
  is split into [n, B / n, ...], and metrics come back averaged over devices.

  Each device computes its gradients on its B / n examples; they are averaged (pmean) before
  the optimizer update, so the update equals the global-batch one. Under pmap (per-device
  semantics) `jax.grad` of a pmean'd loss would NOT average: the pmean is on the gradients.
  Noise is each device's rows of the global draw. BatchNorm normalises with PER-DEVICE batch
  statistics (each device's B / n examples), and the running statistics are averaged over
  devices afterwards; so with BatchNorm in G the pmap path differs from the jit path (global
  statistics), without it they agree up to rounding. WGAN-GP's interpolation weights are drawn
  per device (fold_in of the device index). A minibatch-std D (`model.d_minibatch_std = G`)
  groups each device's examples, min(G, B / n) at a time: as jit when G divides B / n. The
  losses in the metrics equal the jit path's; the gradient norms and batch pairwise distances
  are per-device values, averaged.
  """
  devices = list(devices if devices is not None else jax.local_devices())
  pspec = dataclasses.replace(spec, g_tx=_pmean_grads(spec.g_tx, DATA),
                              d_tx=_pmean_grads(spec.d_tx, DATA))

  def per_device(state, batch):
    state, metrics = train_step(pspec, state, batch, axis_name=DATA)
    sync = lambda t: jax.lax.pmean(t, DATA)
    return state.replace(g_state=sync(state.g_state), d_state=sync(state.d_state)), sync(metrics)

  mapped = jax.pmap(per_device, axis_name=DATA, devices=devices, donate_argnums=0)

  def step(state, batch):
    n = len(devices)
    b = jax.tree.leaves(batch)[0].shape[0]
    if b % n:
      raise ValueError(f"batch of {b} does not divide by the {n} devices")
    split = jax.tree.map(lambda x: x.reshape(n, b // n, *x.shape[1:]), batch)  # [n, B/n, ...]
    state, metrics = mapped(state, split)
    return state, jax.tree.map(lambda m: m[0], metrics)
  return step


def pmap_replicate(state, devices: Optional[Sequence[jax.Device]] = None):
  """A state with a leading device axis [n, ...], one copy per device, for `pmap_step`."""
  devices = list(devices if devices is not None else jax.local_devices())
  return jax.pmap(lambda _: state, devices=devices)(jnp.arange(len(devices)))


def pmap_unreplicate(state):
  return jax.tree.map(lambda x: x[0], state)
