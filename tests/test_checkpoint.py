"""Orbax round trip (typed keys included) and exact resume."""
import jax
import numpy as np

from jaxgan.checkpoint import Checkpoints
from jaxgan.state import create_state, spec_from_config
from jaxgan.runs import load_run, sample
from jaxgan.train import train
from tests.util import assert_trees_equal


def test_round_trip_with_typed_key(tmp_path, mlp_config):
  spec = spec_from_config(mlp_config, (28, 28, 1))
  state = create_state(spec, jax.random.key(7), (28, 28, 1))
  ckpt = Checkpoints(tmp_path / "ckpt")
  ckpt.save(3, state)
  ckpt.wait()
  template = create_state(spec, jax.random.key(0), (28, 28, 1))
  restored = ckpt.restore(template)
  ckpt.close()
  assert jax.dtypes.issubdtype(restored.key.dtype, jax.dtypes.prng_key)
  np.testing.assert_array_equal(jax.random.key_data(restored.key), jax.random.key_data(state.key))
  assert_trees_equal(restored, state)


def test_resume_is_bit_identical(tmp_path, mlp_config):
  """20 steps + resume to 40 == 40 straight steps: samples and every state leaf."""
  mlp_config.steps = 40
  straight = train(mlp_config, tmp_path / "straight", progress=False)
  mlp_config.steps = 20
  train(mlp_config, tmp_path / "resumed", progress=False)
  mlp_config.steps = 40
  resumed = train(mlp_config, tmp_path / "resumed", progress=False)
  assert_trees_equal(resumed, straight)
  a = sample(tmp_path / "straight", 16, 3, tmp_path / "a.npy")
  b = sample(tmp_path / "resumed", 16, 3, tmp_path / "b.npy")
  np.testing.assert_array_equal(a, b)
  rows = (tmp_path / "resumed" / "metrics.jsonl").read_text().splitlines()
  assert len(rows) == 8  # log_every=5 over 40 steps, no duplicates after resume


def test_load_run_restores_latest(tmp_path, mlp_config):
  train(mlp_config, tmp_path / "run", progress=False)
  config, spec, state, meta = load_run(tmp_path / "run")
  assert int(state.step) == mlp_config.steps and meta["shape"] == [28, 28, 1]
