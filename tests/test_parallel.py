"""Data parallelism on 8 fake CPU devices: sharded step == single-device step (every loss and
penalty, BatchNorm, spectral norm), pmap == jit, steps_per_call, train() on 1 vs 8 devices."""
import dataclasses
import functools
import json

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import tensorflow_datasets as tfds

from jaxgan import config as config_lib
from jaxgan import data, losses, parallel, penalties
from jaxgan.models import DCGANGenerator, MLPDiscriminator, MLPGenerator
from jaxgan.state import GANSpec, create_state
from jaxgan.runs import sample
from jaxgan.train import train
from jaxgan.train_step import train_step
from tests.util import assert_trees_close

B = 16  # global batch: 2 examples per device


def mlp_spec(**kw):
  # SGD, not Adam: Adam's update is nearly invariant to the gradient's scale, so it would hide
  # an N-times gradient.
  kw.setdefault("g_tx", optax.sgd(0.1))
  kw.setdefault("d_tx", optax.sgd(0.1))
  spectral_norm = kw.pop("spectral_norm", False)
  return GANSpec(generator=MLPGenerator((6,), (16,), "none"),
                 discriminator=MLPDiscriminator((16,), spectral_norm),
                 latent_dim=4, **kw)


def dcgan_spec(**kw):
  """DCGAN G (BatchNorm) against an MLP D with spectral norm (convs in D would only add
  compile time: XLA:CPU double-backward through convs is slow)."""
  return GANSpec(generator=DCGANGenerator((32, 32, 1), width=2, upsample="subpixel"),
                 discriminator=MLPDiscriminator((8,), spectral_norm=True),
                 g_tx=optax.sgd(0.1), d_tx=optax.sgd(0.1), latent_dim=4, **kw)


def batches(shape, steps):
  return [jax.random.normal(jax.random.key(100 + i), (B, *shape)) for i in range(steps)]


def single_device(spec, shape, steps):
  state = create_state(spec, jax.random.key(0), shape)
  fn = jax.jit(functools.partial(train_step, spec))
  for x in batches(shape, steps):
    state, metrics = fn(state, x)
  return state, metrics


def sharded(spec, shape, steps, mesh=None):
  mesh = mesh or parallel.make_mesh()
  state = parallel.init_state(spec, mesh, 0, shape)
  fn = parallel.jit_step(spec, mesh)
  for x in batches(shape, steps):
    state, metrics = fn(state, parallel.global_batch(mesh, x))
  return state, metrics, fn


def test_mesh_is_data_by_model_with_auto_axes():
  mesh = parallel.make_mesh()
  assert dict(mesh.shape) == {"data": 8, "model": 1}
  assert all(t == jax.sharding.AxisType.Auto for t in mesh.axis_types)


PENALTIES = ["none", *sorted(penalties.PENALTIES)]
# every loss, and every penalty with at least one loss (the full product costs 4x the time)
LOSS_PENALTY = [(l, PENALTIES[i % 4]) for i, l in enumerate(sorted(losses.LOSSES))]


@pytest.mark.parametrize("loss,penalty", LOSS_PENALTY)
def test_sharded_step_equals_single_device(loss, penalty):
  """Two SGD steps on 8 devices == on one device, every state leaf, for every loss and every
  penalty (R1/R2/WGAN-GP differentiate D's input gradient again); D has spectral norm."""
  spec = mlp_spec(loss=loss, penalty=penalty, penalty_weight=1.0, spectral_norm=True)
  ref, ref_metrics = single_device(spec, (6,), 2)
  state, metrics, fn = sharded(spec, (6,), 2)
  assert state.d_params["Dense_0"]["kernel"].sharding.is_fully_replicated
  assert fn._cache_size() == 1  # no recompilation after the first step
  assert_trees_close(state, ref, rtol=1e-5, atol=1e-6)
  assert_trees_close(metrics, ref_metrics, rtol=1e-5, atol=1e-6)


def test_packed_step_on_8_devices_and_pmap_equals_single_device():
  """PacGAN pairs (pack=2) on 8 devices x 2 examples: each device packs its own pair, as one
  device packs consecutive examples; the relativistic G loss packs the real batch too."""
  spec = mlp_spec(loss="relativistic", penalty="r1", penalty_weight=1.0, pack=2)
  ref, ref_metrics = single_device(spec, (6,), 2)
  state, metrics, _ = sharded(spec, (6,), 2)
  assert_trees_close(state, ref, rtol=1e-5, atol=1e-6)
  assert_trees_close(metrics, ref_metrics, rtol=1e-5, atol=1e-6)
  fn = parallel.pmap_step(spec)
  state = parallel.pmap_replicate(create_state(spec, jax.random.key(0), (6,)))
  for x in batches((6,), 2):
    state, _ = fn(state, x)
  assert_trees_close(parallel.pmap_unreplicate(state), ref, rtol=1e-5, atol=1e-6)


def test_minibatch_std_step_on_8_devices_equals_single_device():
  """Minibatch-std groups of 4 over a global batch of 16 (2 per device): under jit a group
  spans two devices and the step equals one device's."""
  spec = lambda group: dataclasses.replace(
      mlp_spec(loss="relativistic", penalty="r1", penalty_weight=1.0),
      discriminator=MLPDiscriminator((16, 8), minibatch_std=group))
  ref, ref_metrics = single_device(spec(4), (6,), 2)
  state, metrics, fn = sharded(spec(4), (6,), 2)
  assert fn._cache_size() == 1
  assert_trees_close(state, ref, rtol=1e-5, atol=1e-6)
  assert_trees_close(metrics, ref_metrics, rtol=1e-5, atol=1e-6)
  # pmap groups per device: as one device when the group (2) divides the per-device batch (2)
  ref, _ = single_device(spec(2), (6,), 2)
  fn = parallel.pmap_step(spec(2))
  state = parallel.pmap_replicate(create_state(spec(2), jax.random.key(0), (6,)))
  for x in batches((6,), 2):
    state, _ = fn(state, x)
  assert_trees_close(parallel.pmap_unreplicate(state), ref, rtol=1e-5, atol=1e-6)


def test_an_n_times_gradient_would_be_caught():
  """One SGD step of D: the sharded update equals the single-device one, and the single-device
  update with 8x the gradient (what an extra psum over 8 devices gives) is far from it."""
  spec = mlp_spec(penalty="r1", penalty_weight=1.0)
  state0 = create_state(spec, jax.random.key(0), (6,))
  ref, _ = single_device(spec, (6,), 1)
  state, _, _ = sharded(spec, (6,), 1)
  step = lambda s: jax.tree.map(lambda a, b: a - b, s.d_params, state0.d_params)
  np.testing.assert_allclose(step(state)["Dense_0"]["kernel"], step(ref)["Dense_0"]["kernel"],
                             rtol=1e-5, atol=1e-7)
  wrong = 8.0 * step(ref)["Dense_0"]["kernel"]
  assert not np.allclose(step(state)["Dense_0"]["kernel"], wrong, rtol=1e-2)


def test_steps_per_call_equals_single_steps():
  spec = mlp_spec(penalty="r1", penalty_weight=1.0, penalty_every=2, ema_decay=0.9)
  mesh = parallel.make_mesh()
  ref, _, _ = sharded(spec, (6,), 4, mesh)
  state = parallel.init_state(spec, mesh, 0, (6,))
  fn = parallel.jit_step(spec, mesh, steps_per_call=4)
  stacked = parallel.global_batch(mesh, jnp.stack(batches((6,), 4)), stacked=True)  # [K, B, 6]
  assert stacked.sharding.spec == jax.sharding.PartitionSpec(None, "data")
  state, metrics = fn(state, stacked)
  assert metrics["g_loss"].shape == (4,) and int(state.step) == 4
  assert_trees_close(state, ref, rtol=1e-5, atol=1e-6)


def test_pmap_equals_jit():
  """Without BatchNorm the pmap path equals the jit path (relativistic: G reads D(real))."""
  spec = mlp_spec(loss="relativistic", penalty="r1", penalty_weight=1.0, spectral_norm=True)
  ref, ref_metrics, _ = sharded(spec, (6,), 2)
  fn = parallel.pmap_step(spec)
  state = parallel.pmap_replicate(create_state(spec, jax.random.key(0), (6,)))
  for x in batches((6,), 2):
    state, metrics = fn(state, x)
  # the replicas stay identical, and equal the jit path
  assert_trees_close(jax.tree.map(lambda x: x[7], state), jax.tree.map(lambda x: x[0], state),
                     rtol=0, atol=0)
  assert_trees_close(parallel.pmap_unreplicate(state), ref, rtol=1e-5, atol=1e-6)
  losses_of = lambda m: {k: m[k] for k in ("d_loss", "g_loss", "penalty", "d_real", "d_fake")}
  assert_trees_close(losses_of(metrics), losses_of(ref_metrics), rtol=1e-5, atol=1e-6)


def test_batchnorm_is_global_under_jit_and_per_device_under_pmap():
  """BatchNorm in G, spectral norm in D, R1. Sharded jit: one step on 8 devices == on one
  device, running BatchNorm statistics and spectral-norm u/sigma included. After the step G's
  first BatchNorm running variance is 0.9 + 0.1 * var(h), h = Dense_0(z): var over all B rows
  on the jit path (global), and the mean over devices of the var over each device's rows on
  the pmap path (per device)."""
  spec = dcgan_spec(penalty="r1", penalty_weight=1.0)
  ref, _ = single_device(spec, (32, 32, 1), 1)
  jit_state, _, _ = sharded(spec, (32, 32, 1), 1)
  assert "batch_stats" in jit_state.g_state and "batch_stats" in jit_state.d_state
  assert_trees_close(jit_state, ref, rtol=1e-4, atol=1e-6)

  state0 = create_state(spec, jax.random.key(0), (32, 32, 1))
  pmap_state, _ = parallel.pmap_step(spec)(parallel.pmap_replicate(state0),
                                           batches((32, 32, 1), 1)[0])
  pmap_state = parallel.pmap_unreplicate(pmap_state)
  _, k_g = jax.random.split(jax.random.fold_in(state0.key, 0))
  z = jax.random.normal(k_g, (B, 4))                                   # G step's noise
  h = (z @ state0.g_params["Dense_0"]["kernel"]).reshape(B, 4, 4, -1)  # [B, 4, 4, C]
  global_var = jnp.var(h, axis=(0, 1, 2))
  per_device_var = jnp.mean(jnp.var(h.reshape(8, B // 8, 4, 4, -1), axis=(1, 2, 3)), axis=0)
  var = lambda s: s.g_state["batch_stats"]["BatchNorm_0"]["var"]
  np.testing.assert_allclose(var(jit_state), 0.9 + 0.1 * global_var, rtol=1e-4)
  np.testing.assert_allclose(var(pmap_state), 0.9 + 0.1 * per_device_var, rtol=1e-4)
  assert not np.allclose(global_var, per_device_var, rtol=1e-2)
  assert_trees_close(pmap_state.d_state, jit_state.d_state, rtol=1e-4, atol=1e-6)  # SN: same


# --------------------------------------------------------------------------- host loop
def test_train_on_1_and_8_devices_gives_the_same_samples(tmp_path, mlp_config):
  """Same config and seed, 10 steps: on 1 device one step per call, on 8 devices 5 steps per
  call (lax.scan); same samples within 1e-3, and the same log/sample cadence."""
  mlp_config.steps, mlp_config.log_every, mlp_config.sample_every = 10, 5, 5
  one = train(mlp_config, tmp_path / "one", progress=False,
              mesh=parallel.make_mesh(jax.devices()[:1]))
  mlp_config.steps_per_call = 5
  eight = train(mlp_config, tmp_path / "eight", progress=False)
  assert eight.g_params["Dense_0"]["kernel"].sharding.mesh.size == 8
  a = sample(tmp_path / "one", 16, 3, tmp_path / "a.npy")
  b = sample(tmp_path / "eight", 16, 3, tmp_path / "b.npy")
  np.testing.assert_allclose(a, b, atol=1e-3)
  assert_trees_close(one.ema_params, eight.ema_params, rtol=1e-3, atol=1e-5)
  rows = lambda d: [json.loads(r)["step"]
                    for r in (tmp_path / d / "metrics.jsonl").read_text().splitlines()]
  assert rows("eight") == rows("one") == [5, 10]
  pngs = lambda d: sorted(p.name for p in (tmp_path / d / "samples").iterdir())
  assert pngs("eight") == pngs("one") == ["step_000005.png", "step_000010.png"]


def test_batch_size_must_divide_by_device_count(tmp_path, mlp_config):
  mlp_config.batch_size = 12
  with pytest.raises(config_lib.ConfigError, match="batch_size 12 .* 8 devices"):
    train(mlp_config, tmp_path / "run", progress=False)
  assert not (tmp_path / "run").exists()  # refused before any work


@pytest.mark.parametrize("key", ["log_every", "sample_every", "checkpoint_every", "steps"])
def test_cadences_must_be_multiples_of_steps_per_call(tmp_path, mlp_config, key):
  mlp_config.steps_per_call = 4
  mlp_config.steps, mlp_config.log_every = 40, 4
  mlp_config.sample_every = mlp_config.checkpoint_every = 20
  mlp_config[key] = 10
  with pytest.raises(config_lib.ConfigError, match=f"{key} .*10.* steps_per_call 4"):
    train(mlp_config, tmp_path / "run", progress=False)
  assert not (tmp_path / "run").exists()


# ------------------------------------------------------------------------ process sharding
@pytest.mark.parametrize("make", [
    lambda p, n: data.array_source(np.arange(60, dtype=np.float32).reshape(30, 2), 8, 3,
                                   process_index=p, process_count=n),
    lambda p, n: data.mixture_source("grid25", 8, 3, p, n),
    lambda p, n: data.stacked_mnist_source(8, 3, 0, p, n),
], ids=["array", "mixture", "stacked_mnist"])
def test_process_rows_concatenate_to_the_global_batch(make):
  """Each of 2 processes builds its 4 rows; together they are the 1-process batch."""
  whole = make(0, 1)
  parts = [make(p, 2) for p in range(2)]
  for step in (0, 5):
    for k in whole.batch(step):                                      # images and labels
      np.testing.assert_array_equal(
          np.concatenate([np.asarray(s.batch(step)[k]) for s in parts]),
          np.asarray(whole.batch(step)[k]))


def test_tfds_process_reads_only_its_rows():
  with tfds.testing.mock_data(num_examples=40):
    whole = data.tfds_source("mnist", 8, 0).batch(3)
    part = data.tfds_source("mnist", 8, 0, process_index=1, process_count=2).batch(3)
    for k in ("image", "label"):
      np.testing.assert_array_equal(np.asarray(part[k]), np.asarray(whole[k])[4:])
  with pytest.raises(data.DataError, match="batch_size 8 must divide by the 3 processes"):
    data.mixture_source("ring8", 8, 0, 0, 3)
