"""The pure training step: `train_step(spec, state, batch) -> (state, metrics)`.

Bind the spec and jit where it is called:

    step = jax.jit(functools.partial(train_step, spec), donate_argnums=0)
    state, metrics = step(state, batch)       # batch: real data [B, *data_shape]

One call does `spec.d_steps` D updates (fresh fakes each, the same real batch) then one G
update, and updates the EMA generator. Randomness comes from fold_in(state.key, state.step).
"""
import jax
import jax.numpy as jnp
import optax

from jaxgan import losses, penalties
from jaxgan.state import GANSpec, GANState


def _apply(module, params, collections, x, train: bool):
  """Runs a module; returns (output, new collections). Collections only change in train."""
  variables = {"params": params, **collections}
  if train and collections:
    out, new = module.apply(variables, x, train=True, mutable=list(collections))
    return out, dict(new)
  return module.apply(variables, x, train=train), collections


def _d_loss(spec: GANSpec, state: GANState, d_params, d_state, real, z, key):
  loss = losses.get_loss(spec.loss)
  penalty_fn = penalties.get_penalty(spec.penalty)
  batch = real.shape[0]
  fake, _ = _apply(spec.generator, state.g_params, state.g_state, z, train=True)
  fake = jax.lax.stop_gradient(fake)                                 # [B, *data_shape]
  logits, d_state = _apply(spec.discriminator, d_params, d_state,
                           jnp.concatenate([real, fake]), train=True)  # [2B]
  real_logits, fake_logits = logits[:batch], logits[batch:]
  adv = loss.d(real_logits, fake_logits)
  pen = jnp.zeros((), jnp.float32)
  total = adv
  if penalty_fn is not None:
    d_fn = lambda x: _apply(spec.discriminator, d_params, d_state, x, train=False)[0]
    compute = lambda: penalty_fn(d_fn, real, fake, key).astype(jnp.float32)
    if spec.penalty_every == 1:
      pen = compute()
    else:  # lazy regularisation: only every k-th step, with weight * k
      pen = jax.lax.cond(state.step % spec.penalty_every == 0, compute,
                         lambda: jnp.zeros((), jnp.float32))
    total = adv + spec.penalty_weight * spec.penalty_every * pen
  aux = dict(d_state=d_state, d_loss=adv, penalty=pen,
             d_real=jnp.mean(real_logits), d_fake=jnp.mean(fake_logits))
  return total, aux


def _g_loss(spec: GANSpec, state: GANState, g_params, real, z):
  loss = losses.get_loss(spec.loss)
  fake, g_state = _apply(spec.generator, g_params, state.g_state, z, train=True)
  if loss.g_needs_real:
    logits, _ = _apply(spec.discriminator, state.d_params, state.d_state,
                       jnp.concatenate([real, fake]), train=False)
    real_logits = jax.lax.stop_gradient(logits[:real.shape[0]])
    fake_logits = logits[real.shape[0]:]
  else:
    fake_logits, _ = _apply(spec.discriminator, state.d_params, state.d_state, fake, train=False)
    real_logits = jnp.zeros_like(fake_logits)
  return loss.g(real_logits, fake_logits), g_state


def train_step(spec: GANSpec, state: GANState, batch: jax.Array):
  """One GAN iteration. batch: real examples [B, *data_shape], float32."""
  real = batch
  key = jax.random.fold_in(state.key, state.step)
  k_d, k_g = jax.random.split(key)
  noise = lambda k: jax.random.normal(k, (real.shape[0], spec.latent_dim), jnp.float32)

  d_grad_fn = jax.grad(lambda p, s, z, k: _d_loss(spec, state, p, s, real, z, k), has_aux=True)
  d_params, d_state, d_opt_state = state.d_params, state.d_state, state.d_opt_state
  for i in range(spec.d_steps):
    k_z, k_pen = jax.random.split(jax.random.fold_in(k_d, i))
    grads, aux = d_grad_fn(d_params, d_state, noise(k_z), k_pen)
    updates, d_opt_state = spec.d_tx.update(grads, d_opt_state, d_params)
    d_params = optax.apply_updates(d_params, updates)
    d_state = aux.pop("d_state")
  state = state.replace(d_params=d_params, d_state=d_state, d_opt_state=d_opt_state)

  (g_loss, g_state), g_grads = jax.value_and_grad(
      lambda p: _g_loss(spec, state, p, real, noise(k_g)), has_aux=True)(state.g_params)
  updates, g_opt_state = spec.g_tx.update(g_grads, state.g_opt_state, state.g_params)
  g_params = optax.apply_updates(state.g_params, updates)
  ema_params = optax.incremental_update(g_params, state.ema_params, 1.0 - spec.ema_decay)

  new_state = state.replace(step=state.step + 1, g_params=g_params, g_state=g_state,
                            g_opt_state=g_opt_state, ema_params=ema_params)
  metrics = dict(aux, g_loss=g_loss)
  return new_state, metrics


def train_steps(spec: GANSpec, state: GANState, batches: jax.Array):
  """K train steps in one call with `lax.scan`; batches: [K, B, *data_shape].

  Equal to K calls of `train_step`; metrics come back stacked, each [K].
  """
  return jax.lax.scan(lambda s, b: train_step(spec, s, b), state, batches)
