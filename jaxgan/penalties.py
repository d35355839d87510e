"""Gradient penalties as pure functions.

Each penalty takes `d_fn: x [B, ...] -> logits [B]` (D with its parameters closed over), the
inputs, and returns a scalar. The input gradient is taken with `jax.grad`, so the result is
differentiable again w.r.t. whatever `d_fn` closes over (double backprop).

  r1       E_real ||grad_x D(x)||^2                      (Mescheder et al., 2018)
  r2       E_fake ||grad_x D(x)||^2                      (fakes are treated as constants)
  wgan_gp  E_xhat (||grad_x D(xhat)|| - 1)^2, xhat on real-fake segments (Gulrajani et al.)

The training step adds `weight * penalty` to D's loss (the seed's lambda E||grad D(x)||^2);
with lazy regularisation (`every=k`) it adds `k * weight * penalty` on every k-th step only,
as in StyleGAN2.
"""
from typing import Callable, Optional

import jax
import jax.numpy as jnp

DFn = Callable[[jax.Array], jax.Array]

# WGAN-GP takes a norm; the sqrt's derivative at 0 is inf, so the norm is sqrt(sq + EPS).
EPS = 1e-12


def input_grad_sqnorm(d_fn: DFn, x: jax.Array) -> jax.Array:
  """Per-example ||grad_x D(x)||^2, shape [B]. D must treat examples independently."""
  grad = jax.grad(lambda x_: jnp.sum(d_fn(x_)))(x)                   # [B, ...]
  return jnp.sum(grad.reshape(grad.shape[0], -1) ** 2, axis=-1)      # [B]


def r1(d_fn: DFn, real: jax.Array, fake: jax.Array, key: Optional[jax.Array] = None):
  del fake, key
  return jnp.mean(input_grad_sqnorm(d_fn, real))


def r2(d_fn: DFn, real: jax.Array, fake: jax.Array, key: Optional[jax.Array] = None):
  del real, key
  return jnp.mean(input_grad_sqnorm(d_fn, jax.lax.stop_gradient(fake)))


def wgan_gp(d_fn: DFn, real: jax.Array, fake: jax.Array, key: jax.Array):
  eps = jax.random.uniform(key, (real.shape[0],) + (1,) * (real.ndim - 1))  # [B, 1, ...]
  xhat = eps * real + (1.0 - eps) * jax.lax.stop_gradient(fake)
  norm = jnp.sqrt(input_grad_sqnorm(d_fn, xhat) + EPS)
  return jnp.mean((norm - 1.0) ** 2)


PENALTIES = {"r1": r1, "r2": r2, "wgan_gp": wgan_gp}


def get_penalty(name: str):
  """Returns the penalty function, or None for 'none'."""
  if name == "none":
    return None
  if name not in PENALTIES:
    raise ValueError(f"unknown penalty {name!r}; valid: none, {', '.join(PENALTIES)}")
  return PENALTIES[name]
