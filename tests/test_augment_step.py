"""Augmentation inside the step: p = 0 is the plain step, ADA's p update against a hand
computation, penalties through the augmentation at the un-augmented image, sharded == single
device, resume exact with ADA, data.limit, the config's errors and old checkpoints."""
import dataclasses
import functools
import json

import jax
import jax.numpy as jnp
import numpy as np
import optax
import orbax.checkpoint as ocp
import pytest

from jaxgan import augment as augment_lib
from jaxgan import config as config_lib
from jaxgan import data, parallel, penalties
from jaxgan.checkpoint import Checkpoints
from jaxgan.models import MLPDiscriminator, MLPGenerator
from jaxgan.state import GANSpec, create_state
from jaxgan.runs import load_run
from jaxgan.train import train
from jaxgan.train_step import _apply, train_step
from tests.util import assert_trees_close, assert_trees_equal

B = 16
SHAPE = (16, 16, 1)


def spec(**kw):
  """A small image GAN (MLPs: cheap to compile; the augmentations need images) with SGD."""
  return GANSpec(generator=MLPGenerator(SHAPE, (8,)),
                 discriminator=MLPDiscriminator((8,)), g_tx=optax.sgd(0.05),
                 d_tx=optax.sgd(0.05), latent_dim=4, **kw)


def batches(steps):
  return [jnp.tanh(jax.random.normal(jax.random.key(100 + i), (B, *SHAPE)))
          for i in range(steps)]


def run(s, steps, state=None):
  state = create_state(s, jax.random.key(0), SHAPE) if state is None else state
  fn = jax.jit(functools.partial(train_step, s))
  out = []
  for x in batches(steps):
    state, m = fn(state, x)
    out.append(jax.device_get(m))
  return state, out


def test_ada_at_p_zero_is_the_plain_step_exactly():
  plain, _ = run(spec(), 2)
  ada, metrics = run(spec(augment=("ada",), augment_p=0.0, ada_target=0.0), 2)
  assert_trees_equal(ada.replace(augment={}), plain)
  assert metrics[-1]["augment_p"] == 0.0


def test_augmentation_changes_what_d_sees():
  plain, _ = run(spec(), 1)
  for policy in (("color", "translation", "cutout"), ("ada",)):
    aug, _ = run(spec(augment=policy, augment_p=1.0, ada_target=0.0), 1)
    assert not np.allclose(aug.d_params["Dense_0"]["kernel"], plain.d_params["Dense_0"]["kernel"])


def test_ada_p_update_against_a_hand_computation():
  """interval 2: after steps 2, 4, 6 p moves by sign(mean r_t of the last two steps - target)
  * B * 2 / (kimg * 1000); between updates it stays."""
  s = spec(augment=("ada",), augment_p=0.1, ada_target=0.6, ada_kimg=0.4, ada_interval=2)
  state, metrics = run(s, 6)
  want, p = [], 0.1
  for i, m in enumerate(metrics):
    want.append(p)
    if (i + 1) % 2 == 0:
      r_t = np.mean([metrics[i - 1]["ada_r_t"], m["ada_r_t"]])
      p = float(np.clip(p + np.sign(r_t - 0.6) * B * 2 / 400, 0, 1))
  np.testing.assert_allclose([m["augment_p"] for m in metrics], want, rtol=1e-6)
  np.testing.assert_allclose(state.augment["p"], p, rtol=1e-6)
  assert int(state.augment["count"]) == 0                       # reset at the update


def test_r1_is_taken_at_the_unaugmented_image_through_the_augmentation():
  s = spec(augment=("color", "translation"), penalty="r1", penalty_weight=1.0)
  state = create_state(s, jax.random.key(0), SHAPE)
  x = batches(1)[0]
  _, m = jax.jit(functools.partial(train_step, s))(state, x)
  k_d, _ = jax.random.split(jax.random.fold_in(state.key, state.step))
  k_real = jax.random.fold_in(jax.random.fold_in(jax.random.fold_in(k_d, 0), 2), 0)
  d = lambda v: _apply(s.discriminator, state.d_params, state.d_state, v, None, False)[0]
  aug = lambda v: augment_lib.augment(v, k_real, s.augment, 0.0)
  np.testing.assert_allclose(m["penalty"], penalties.r1(lambda v: d(aug(v)), x, None), rtol=1e-4)
  # not the gradient at the augmented image
  other = penalties.r1(d, aug(x), None)
  assert abs(float(other) - float(m["penalty"])) > 1e-3 * float(m["penalty"])


def test_sharded_and_pmap_equal_single_device():
  """ADA (its p update needs the global sign sum); DiffAugment's split independence is
  tested on the function itself (tests/test_augment.py)."""
  policy = ("ada",)
  s = spec(augment=policy, augment_p=0.5, ada_target=0.6, ada_kimg=0.1, ada_interval=1,
           penalty="r1", penalty_weight=1.0)
  ref, ref_m = run(s, 2)
  mesh = parallel.make_mesh()
  state = parallel.init_state(s, mesh, 0, SHAPE)
  fn = parallel.jit_step(s, mesh)
  for x in batches(2):
    state, m = fn(state, parallel.global_batch(mesh, x))
  assert_trees_close(state, ref, rtol=1e-4, atol=1e-5)
  np.testing.assert_allclose(m["d_loss"], ref_m[-1]["d_loss"], rtol=1e-4)
  assert float(ref.augment["p"]) != 0.5                         # p moved, the same way
  pfn = parallel.pmap_step(s)
  pstate = parallel.pmap_replicate(create_state(s, jax.random.key(0), SHAPE))
  for x in batches(2):
    pstate, _ = pfn(pstate, x)
  assert_trees_close(parallel.pmap_unreplicate(pstate), ref, rtol=1e-4, atol=1e-5)


def ada_config(mlp_config):
  c = config_lib.apply_overrides(mlp_config, ["augment.policy=ada", "augment.ada_kimg=0.2",
                                              "augment.ada_interval=2"])
  return c


def test_resume_with_ada_is_bit_identical_and_p_is_logged(tmp_path, mlp_config):
  c = ada_config(mlp_config)
  one = dict(progress=False, mesh=parallel.make_mesh(jax.devices()[:1]))
  straight = train(c, tmp_path / "straight", **one)
  assert float(straight.augment["p"]) > 0
  c.steps = 10
  train(c, tmp_path / "resumed", **one)
  c.steps = 20
  assert_trees_equal(train(c, tmp_path / "resumed", **one), straight)
  rows = [json.loads(r) for r in (tmp_path / "straight" / "metrics.jsonl").read_text().splitlines()]
  assert all("augment_p" in r for r in rows)


def test_data_limit_is_a_fixed_class_balanced_subset():
  cfg = dict(data.DATA_DEFAULTS, limit=500)
  a = data.make_source(cfg, 64, seed=0)
  b = data.make_source(cfg, 64, seed=7)
  assert a.num_examples == 500
  np.testing.assert_array_equal(a.examples, b.examples)          # the same for every seed
  np.testing.assert_array_equal(np.bincount(a.labels), np.full(10, 50))
  odd = data.make_source(dict(cfg, limit=105), 64, seed=0)
  np.testing.assert_array_equal(np.bincount(odd.labels), [11] * 5 + [10] * 5)
  with pytest.raises(data.DataError, match="data.limit"):
    data.make_source(dict(cfg, name="grid25"), 64, 0)
  with pytest.raises(data.DataError, match="batch_size"):
    data.make_source(dict(cfg, limit=10), 64, 0)


def test_a_limited_run_is_scored_against_the_whole_set(tmp_path, mlp_config):
  from jaxgan.eval import Evaluator
  mlp_config.data.limit = 100
  train(mlp_config, tmp_path / "run", progress=False)
  config, s, state, meta = load_run(tmp_path / "run")
  assert Evaluator(config, s, meta, num=50).real_features.shape[0] == 5000


def test_bad_augment_settings_are_clear_errors(mlp_config):
  for overrides, match in [(["augment.policy=colour"], "valid"),
                           (["augment.policy=ada,color"], "valid"),
                           (["augment.policy=ada", "pack=2"], "packing"),
                           (["augment.p=1.5"], r"\[0, 1\]")]:
    with pytest.raises(config_lib.ConfigError, match=match):
      config_lib.validate(config_lib.apply_overrides(mlp_config, overrides))


def test_a_checkpoint_from_before_the_augment_field_restores(tmp_path):
  """Runs written before GANState had `augment` resume (their state has no such field)."""
  s = spec()
  state = create_state(s, jax.random.key(3), SHAPE)
  old = {f.name: getattr(state, f.name) for f in dataclasses.fields(state) if f.name != "augment"}
  manager = ocp.CheckpointManager(tmp_path / "ckpt")
  manager.save(5, args=ocp.args.StandardSave(old))
  manager.wait_until_finished()
  manager.close()
  ckpt = Checkpoints(tmp_path / "ckpt")
  restored = ckpt.restore(create_state(s, jax.random.key(0), SHAPE))
  ckpt.close()
  assert_trees_equal(restored, state)
