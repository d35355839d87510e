"""Penalties against closed forms and finite differences (in float64)."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxgan import penalties
from jaxgan.models.layers import minibatch_std


@pytest.fixture(autouse=True)
def x64():
  jax.config.update("jax_enable_x64", True)
  yield
  jax.config.update("jax_enable_x64", False)


def mlp_d(params, x):
  """A small smooth D: x [B, 3] -> [B]."""
  h = jnp.tanh(x @ params["w1"] + params["b1"])
  return (h @ params["w2"])[:, 0] + jnp.sum(x ** 2, axis=1) * params["c"]


def make_params(key):
  k1, k2, k3 = jax.random.split(key, 3)
  return {"w1": jax.random.normal(k1, (3, 5), jnp.float64),
          "b1": jax.random.normal(k2, (5,), jnp.float64),
          "w2": jax.random.normal(k3, (5, 1), jnp.float64), "c": jnp.float64(0.3)}


def fd_input_grad(f, x, eps=1e-6):
  """Central finite differences of sum(f(x)) w.r.t. x."""
  g = np.zeros_like(x)
  for idx in np.ndindex(*x.shape):
    e = np.zeros_like(x)
    e[idx] = eps
    g[idx] = (np.sum(f(x + e)) - np.sum(f(x - e))) / (2 * eps)
  return g


def fd_param_grad(loss, params, eps=1e-6):
  flat, unravel = jax.flatten_util.ravel_pytree(params)
  g = np.zeros(flat.shape)
  for i in range(flat.shape[0]):
    e = np.zeros(flat.shape)
    e[i] = eps
    g[i] = (loss(unravel(flat + e)) - loss(unravel(flat - e))) / (2 * eps)
  return g


import jax.flatten_util  # noqa: E402


def test_r1_linear_d_closed_form():
  w = jnp.array([1.0, -2.0, 0.5])
  d_fn = lambda x: x @ w + 1.0
  x = jax.random.normal(jax.random.key(0), (4, 3), jnp.float64)
  np.testing.assert_allclose(penalties.r1(d_fn, x, x), 5.25, rtol=1e-12)   # ||w||^2
  grad_w = jax.grad(lambda w: penalties.r1(lambda x: x @ w, x, x))(w)
  np.testing.assert_allclose(grad_w, 2 * w, rtol=1e-12)                     # d||w||^2/dw


@pytest.mark.parametrize("name", ["r1", "r2"])
def test_r1_r2_match_finite_differences(name):
  params = make_params(jax.random.key(1))
  x = np.asarray(jax.random.normal(jax.random.key(2), (4, 3), jnp.float64))
  other = x[::-1] * 0.5
  real, fake = (x, other) if name == "r1" else (other, x)
  g = fd_input_grad(lambda y: np.asarray(mlp_d(params, jnp.asarray(y))), x)
  expected = np.mean(np.sum(g ** 2, axis=1))
  fn = penalties.get_penalty(name)
  np.testing.assert_allclose(fn(lambda y: mlp_d(params, y), real, fake), expected, rtol=1e-7)
  # Differentiable again w.r.t. the parameters (double backprop) == FD of the penalty.
  loss = lambda p: fn(lambda y: mlp_d(p, y), real, fake)
  analytic = jax.flatten_util.ravel_pytree(jax.grad(loss)(params))[0]
  np.testing.assert_allclose(analytic, fd_param_grad(loss, params), rtol=1e-5, atol=1e-8)


def test_r1_through_a_minibatch_std_feature_matches_finite_differences():
  """D(x)_i depends on the other examples of i's group, so R1's input gradient of sum(D) has
  cross-example terms; value and double backward against finite differences."""
  params = make_params(jax.random.key(11))
  params["v"] = jnp.float64(0.7)
  d = lambda p, y: mlp_d(p, y) + p["v"] * minibatch_std(y, 2)[:, -1]   # [B]
  x = np.asarray(jax.random.normal(jax.random.key(12), (4, 3), jnp.float64))
  g = fd_input_grad(lambda y: np.asarray(d(params, jnp.asarray(y))), x)
  g_plain = fd_input_grad(lambda y: np.asarray(mlp_d(params, jnp.asarray(y))), x)
  assert np.abs(g - g_plain).max() > 0.1                              # the feature matters
  np.testing.assert_allclose(penalties.r1(lambda y: d(params, y), x, x),
                             np.mean(np.sum(g ** 2, axis=1)), rtol=1e-7)
  loss = lambda p: penalties.r1(lambda y: d(p, y), x, x)
  analytic = jax.flatten_util.ravel_pytree(jax.grad(loss)(params))[0]
  np.testing.assert_allclose(analytic, fd_param_grad(loss, params), rtol=1e-5, atol=1e-8)


def test_r1_through_minibatch_std_is_finite_on_identical_examples():
  """A group of equal examples has std 0, where d sqrt is infinite: the epsilon keeps R1 and
  its gradient finite."""
  params = make_params(jax.random.key(13))
  params["v"] = jnp.float64(0.7)
  d = lambda p, y: mlp_d(p, y) + p["v"] * minibatch_std(y, 4)[:, -1]
  x = jnp.ones((4, 3), jnp.float64)
  val, g = jax.value_and_grad(lambda p: penalties.r1(lambda y: d(p, y), x, x))(params)
  assert np.isfinite(float(val)) and all(np.all(np.isfinite(v)) for v in jax.tree.leaves(g))


def test_r2_does_not_backprop_into_fakes():
  params = make_params(jax.random.key(3))
  x = jax.random.normal(jax.random.key(4), (4, 3), jnp.float64)
  g = jax.grad(lambda f: penalties.r2(lambda y: mlp_d(params, y), x, f))(x)
  np.testing.assert_array_equal(g, 0.0)


def test_wgan_gp_linear_d_closed_form():
  w = jnp.array([3.0, 0.0, 4.0])                                           # ||w|| = 5
  real = jax.random.normal(jax.random.key(5), (6, 3), jnp.float64)
  fake = real + 1.0
  val = penalties.wgan_gp(lambda x: x @ w, real, fake, jax.random.key(6))
  np.testing.assert_allclose(val, 16.0, rtol=1e-10)                        # (5 - 1)^2
  grad_w = jax.grad(lambda w: penalties.wgan_gp(lambda x: x @ w, real, fake,
                                                jax.random.key(6)))(w)
  np.testing.assert_allclose(grad_w, 2 * (5 - 1) * w / 5, rtol=1e-8)


def test_wgan_gp_matches_finite_differences_on_interpolates():
  params = make_params(jax.random.key(7))
  real = np.asarray(jax.random.normal(jax.random.key(8), (4, 3), jnp.float64))
  fake = real[::-1] + 0.3
  key = jax.random.key(9)
  eps = np.asarray(jax.random.uniform(key, (4, 1), jnp.float64))
  xhat = eps * real + (1 - eps) * fake
  g = fd_input_grad(lambda y: np.asarray(mlp_d(params, jnp.asarray(y))), xhat)
  expected = np.mean((np.sqrt(np.sum(g ** 2, axis=1)) - 1) ** 2)
  val = penalties.wgan_gp(lambda y: mlp_d(params, y), real, fake, key)
  np.testing.assert_allclose(val, expected, rtol=1e-6)


def test_wgan_gp_gradient_is_finite_at_zero_input_gradient():
  """A constant D has ||grad|| = 0, where d sqrt/dx is infinite: must not give NaN."""
  real = jnp.ones((3, 2), jnp.float64)
  loss = lambda w: penalties.wgan_gp(lambda x: x @ w, real, real * 2, jax.random.key(0))
  g = jax.grad(loss)(jnp.zeros(2, jnp.float64))
  assert np.all(np.isfinite(g))


def test_unknown_penalty_names_valid_ones():
  assert penalties.get_penalty("none") is None
  with pytest.raises(ValueError, match="wgan_gp"):
    penalties.get_penalty("r3")
