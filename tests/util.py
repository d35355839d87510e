"""Shared test helpers."""
import jax
import numpy as np


def _plain(x):
  if hasattr(x, "dtype") and jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
    return np.asarray(jax.random.key_data(x))
  return np.asarray(x)


def assert_trees_equal(a, b):
  """Bitwise equality of two pytrees (typed PRNG keys compared by their data)."""
  assert jax.tree.structure(a) == jax.tree.structure(b)
  jax.tree.map(lambda x, y: np.testing.assert_array_equal(_plain(x), _plain(y)), a, b)


def assert_trees_close(a, b, rtol=1e-5, atol=1e-6):
  assert jax.tree.structure(a) == jax.tree.structure(b)
  jax.tree.map(lambda x, y: np.testing.assert_allclose(_plain(x), _plain(y), rtol=rtol, atol=atol),
               a, b)
