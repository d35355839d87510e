"""Adversarial losses as pure functions of discriminator logits.

Every loss is a pair of functions, each taking `(real_logits [B], fake_logits [B])` and
returning a scalar to *minimise*: one for D, one for G. With D(x) = sigmoid(logit):

  non_saturating  D: -log D(x) - log(1 - D(G(z)))      G: -log D(G(z))
  minimax         D: as above                          G:  log(1 - D(G(z)))   (the seed's)
  hinge           D: relu(1 - r) + relu(1 + f)          G: -f
  wasserstein     D: f - r                              G: -f
  least_squares   D: ((r - 1)^2 + f^2) / 2              G: (f - 1)^2 / 2
  relativistic    D: softplus(-(r - f))                 G: softplus(-(f - r))   (RpGAN, paired)
"""
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp

LossFn = Callable[[jax.Array, jax.Array], jax.Array]


class GANLoss(NamedTuple):
  d: LossFn
  g: LossFn
  g_needs_real: bool = False   # G's loss reads D(real) (relativistic losses)


def _ns_d(real, fake):
  return jnp.mean(jax.nn.softplus(-real)) + jnp.mean(jax.nn.softplus(fake))


LOSSES = {
    "non_saturating": GANLoss(_ns_d, lambda real, fake: jnp.mean(jax.nn.softplus(-fake))),
    "minimax": GANLoss(_ns_d, lambda real, fake: -jnp.mean(jax.nn.softplus(fake))),
    "hinge": GANLoss(
        lambda real, fake: jnp.mean(jax.nn.relu(1.0 - real)) + jnp.mean(jax.nn.relu(1.0 + fake)),
        lambda real, fake: -jnp.mean(fake)),
    "wasserstein": GANLoss(lambda real, fake: jnp.mean(fake) - jnp.mean(real),
                           lambda real, fake: -jnp.mean(fake)),
    "least_squares": GANLoss(
        lambda real, fake: 0.5 * (jnp.mean((real - 1.0) ** 2) + jnp.mean(fake ** 2)),
        lambda real, fake: 0.5 * jnp.mean((fake - 1.0) ** 2)),
    "relativistic": GANLoss(lambda real, fake: jnp.mean(jax.nn.softplus(fake - real)),
                            lambda real, fake: jnp.mean(jax.nn.softplus(real - fake)),
                            g_needs_real=True),
}


def get_loss(name: str) -> GANLoss:
  if name not in LOSSES:
    raise ValueError(f"unknown loss {name!r}; valid: {', '.join(LOSSES)}")
  return LOSSES[name]
