"""The pure training step: `train_step(spec, state, batch) -> (state, metrics)`.

Bind the spec and jit where it is called:

    step = jax.jit(functools.partial(train_step, spec), donate_argnums=0)
    state, metrics = step(state, batch)  # batch: {"image": [B, *data_shape], "label": [B]}

One call does `spec.d_steps` D updates (fresh fakes each, the same real batch) then one G
update, and updates the EMA generator. Randomness comes from fold_in(state.key, state.step).

Besides the losses, the metrics hold cheap divergence diagnostics (D's accuracy on real and
fake, ADA's r_t = E[sign(D(real))], global gradient norms, the mean pairwise distance of the
fakes and of the real batch) and `nonfinite`, a bitmask over `NONFINITE` of the quantities that
became NaN/Inf in this step. The first such step is recorded on the device in
`state.nonfinite`; with `spec.skip_nonfinite` such an update is dropped (the state keeps its
previous values, the step still advances) and counted in `state.nonfinite['skipped']`.

Class-conditional GANs (`spec.num_classes` > 0) read the batch's "label". Each fake batch
draws its labels uniformly from its own key (`fake_labels`, beside its z): D's fake half and
the G update see G(z, y_fake) judged as D(., y_fake), D's real half D(x, y_real). Penalties
differentiate w.r.t. the image only, with D's labels held fixed: R1 and WGAN-GP (whose
interpolates StudioGAN labels with the real labels) at the real labels, R2 at the fakes'.

Augmentation (`spec.augment`, see jaxgan.augment): D sees aug(real) and aug(fake) in its
update and aug(fake) (and aug(real) where the G loss reads D(real)) in G's; each of the four
calls draws fresh per-sample parameters from its own key, fold_in(k, 2) of the D step's /
the G update's key k, then 0 (real) or 1 (fake). A sample's parameters come from its global
row (augment.sample_keys), so they do not depend on the device split. Penalties are taken
w.r.t. the un-augmented image through the augmentation, D(aug(x)) with the loss's own
augmentation of that half (as StyleGAN2-ADA and R3GAN: the gradient of D's logit w.r.t. the
real image, not w.r.t. the augmented one). With ADA the state holds p (`state.augment`):
every `ada_interval` steps r_t = E[sign(D(aug(real)))] over the real logits since the last
update moves p by sign(r_t - ada_target) * B * ada_interval / (ada_kimg * 1000), clipped to
[0, 1] (B the global batch); ada_target 0 keeps p fixed. The metrics log `augment_p`, the p
this step used.
"""
import jax
import jax.numpy as jnp
import optax

from jaxgan import augment as augment_lib
from jaxgan import losses, penalties
from jaxgan.data import as_batch
from jaxgan.state import GANSpec, GANState

NONFINITE = ("d_loss", "g_loss", "penalty", "d_grads", "g_grads", "d_params", "g_params")


def nonfinite_names(what: int) -> list[str]:
  """The names in `NONFINITE` of the bits set in a `nonfinite` mask."""
  return [name for i, name in enumerate(NONFINITE) if int(what) >> i & 1]


def all_finite(tree) -> jax.Array:
  """True iff every floating-point leaf of `tree` is finite (a bool scalar)."""
  leaves = [jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(tree)
            if jnp.issubdtype(x.dtype, jnp.floating)]
  return jnp.all(jnp.stack(leaves)) if leaves else jnp.array(True)


def mean_pairwise_distance(x: jax.Array) -> jax.Array:
  """Mean Euclidean distance between distinct examples of a batch x [B, ...]: a cheap
  diversity measure (near 0 when the samples of a batch collapse)."""
  x = x.reshape(x.shape[0], -1).astype(jnp.float32)                  # [B, D]
  sq = jnp.sum(x * x, axis=-1)                                       # [B]
  gram = jnp.matmul(x, x.T, precision=jax.lax.Precision.HIGHEST)     # [B, B]
  dist = jnp.sqrt(jnp.maximum(sq[:, None] + sq[None, :] - 2.0 * gram, 0.0))
  b = x.shape[0]
  return jnp.sum(dist * (1.0 - jnp.eye(b))) / (b * (b - 1))


def pack(x: jax.Array, m: int) -> jax.Array:
  """PacGAN's packing (Lin et al., 2018): D judges m examples at once. [B, *S] ->
  [B/m, *S[:-1], m * S[-1]]: each run of m consecutive examples stacked on the last (channel
  or feature) axis. m = 1: x unchanged."""
  if m == 1:
    return x
  b, *shape = x.shape
  if b % m:
    raise ValueError(f"pack={m} needs a (per-device) batch divisible by {m}, got {b}")
  x = jnp.moveaxis(x.reshape(b // m, m, *shape), 1, -2)              # [B/m, *S[:-1], m, C]
  return x.reshape(b // m, *shape[:-1], m * shape[-1])               # [B/m, *S[:-1], m*C]


def _apply(module, params, collections, x, y, train: bool):
  """Runs a module on x (and labels y, None when unconditional); returns (output, new
  collections). Collections only change in train."""
  variables = {"params": params, **collections}
  if train and collections:
    out, new = module.apply(variables, x, y, train=True, mutable=list(collections))
    return out, dict(new)
  return module.apply(variables, x, y, train=train), collections


def _augmenter(spec: GANSpec, state: GANState, axis_name):
  """aug(x, key): spec.augment's augmentation of a batch x (identity when off); under pmap
  the rows are this device's rows of the global batch (row0)."""
  if not spec.augment:
    return lambda x, key: x
  p = state.augment["p"] if spec.ada else spec.augment_p
  def aug(x, key):
    row0 = 0 if axis_name is None else jax.lax.axis_index(axis_name) * x.shape[0]
    return augment_lib.augment(x, key, spec.augment, p, row0)
  return aug


def _d_loss(spec: GANSpec, state: GANState, d_params, d_state, real, z, key, k_aug,
            axis_name=None):
  """real = (images, labels or None), z = (noise, fake labels or None)."""
  loss = losses.get_loss(spec.loss)
  penalty_fn = penalties.get_penalty(spec.penalty)
  (real, y_real), (z, y_fake) = real, z
  fake, _ = _apply(spec.generator, state.g_params, state.g_state, z, y_fake, train=True)
  fake = jax.lax.stop_gradient(fake)                                 # [B, *data_shape]
  real, fake = pack(real, spec.pack), pack(fake, spec.pack)          # [B/pack, ...]
  aug = _augmenter(spec, state, axis_name)                           # (no packing with it)
  k_real, k_fake = jax.random.fold_in(k_aug, 0), jax.random.fold_in(k_aug, 1)
  batch = real.shape[0]
  y = None if y_real is None else jnp.concatenate([y_real, y_fake])   # [2B]
  logits, d_state = _apply(spec.discriminator, d_params, d_state,
                           jnp.concatenate([aug(real, k_real), aug(fake, k_fake)]), y,
                           train=True)                               # [2B/pack]
  real_logits, fake_logits = logits[:batch], logits[batch:]
  adv = loss.d(real_logits, fake_logits)
  pen = jnp.zeros((), jnp.float32)
  total = adv
  if penalty_fn is not None:
    y_pen = y_fake if spec.penalty == "r2" else y_real               # D's labels, held fixed
    k_pen_aug = k_fake if spec.penalty == "r2" else k_real           # the loss's augmentation
    d_fn = lambda x: _apply(spec.discriminator, d_params, d_state, aug(x, k_pen_aug), y_pen,
                            train=False)[0]
    compute = lambda: penalty_fn(d_fn, real, fake, key).astype(jnp.float32)
    if spec.penalty_every == 1:
      pen = compute()
    else:  # lazy regularisation: only every k-th step, with weight * k
      pen = jax.lax.cond(state.step % spec.penalty_every == 0, compute,
                         lambda: jnp.zeros((), jnp.float32))
    total = adv + spec.penalty_weight * spec.penalty_every * pen
  aux = dict(d_state=d_state, d_loss=adv, penalty=pen,
             d_real=jnp.mean(real_logits), d_fake=jnp.mean(fake_logits),
             d_acc_real=jnp.mean(real_logits > 0), d_acc_fake=jnp.mean(fake_logits < 0),
             ada_r_t=jnp.mean(jnp.sign(real_logits)), ada_signs=jnp.sum(jnp.sign(real_logits)))
  return total, aux


def _g_loss(spec: GANSpec, state: GANState, g_params, real, z, k_aug, axis_name=None):
  """real = (images, labels or None), z = (noise, fake labels or None)."""
  loss = losses.get_loss(spec.loss)
  (real, y_real), (z, y_fake) = real, z
  fake, g_state = _apply(spec.generator, g_params, state.g_state, z, y_fake, train=True)
  aug = _augmenter(spec, state, axis_name)
  d_fn = lambda x, y: _apply(spec.discriminator, state.d_params, state.d_state, x, y,
                             train=False)[0]
  fake_logits = d_fn(aug(pack(fake, spec.pack), jax.random.fold_in(k_aug, 1)), y_fake)  # [B/pack]
  if loss.g_needs_real:  # a forward of its own: no backward through D on the real half
    real_in = aug(pack(real, spec.pack), jax.random.fold_in(k_aug, 0))
    real_logits = jax.lax.stop_gradient(d_fn(real_in, y_real))      # [B/pack]
  else:
    real_logits = jnp.zeros_like(fake_logits)
  return loss.g(real_logits, fake_logits), (g_state, fake)


def _guard_nonfinite(spec: GANSpec, old: GANState, new: GANState, what: jax.Array) -> GANState:
  """Records the first step with a non-finite quantity; with skip_nonfinite, drops the update."""
  bad = what != 0
  record = bad & (old.nonfinite["first_step"] == 0)
  nonfinite = dict(first_step=jnp.where(record, new.step, old.nonfinite["first_step"]),
                   what=jnp.where(record, what, old.nonfinite["what"]),
                   skipped=old.nonfinite["skipped"] + (bad & spec.skip_nonfinite).astype(jnp.int32))
  if spec.skip_nonfinite:
    strip = lambda s: s.replace(step=None, key=None, nonfinite=None)
    kept = jax.tree.map(lambda n, o: jnp.where(bad, o, n), strip(new), strip(old))
    new = kept.replace(step=new.step, key=new.key)
  return new.replace(nonfinite=nonfinite)


def _rows(draw, num: int, axis_name):
  """draw(global rows) [num, ...]; per device (under pmap, see jaxgan.parallel) this device's
  rows of the global draw, so the randomness does not depend on how the batch is split."""
  if axis_name is None:
    return draw(num)
  n = jax.lax.psum(1, axis_name)
  return jax.lax.dynamic_slice_in_dim(draw(num * n), jax.lax.axis_index(axis_name) * num, num)


def fake_labels(key, num: int, num_classes: int) -> jax.Array:
  """The labels of a fake batch: uniform over the classes, int32 [num]. The step draws them
  from fold_in(k, 1) of the key k of the batch's z, so they are a pure function of
  (state.key, state.step)."""
  return jax.random.randint(jax.random.fold_in(key, 1), (num,), 0, num_classes, jnp.int32)


def _fakes_input(spec: GANSpec, key, num: int, axis_name):
  """(z [num, latent], labels [num] or None) of one fake batch."""
  z = _rows(lambda n: jax.random.normal(key, (n, spec.latent_dim), jnp.float32), num, axis_name)
  if not spec.num_classes:
    return z, None
  return z, _rows(lambda n: fake_labels(key, n, spec.num_classes), num, axis_name)


def train_step(spec: GANSpec, state: GANState, batch, axis_name=None):
  """One GAN iteration. batch: {"image": real examples [B, *data_shape] float32, "label":
  int32 [B] (optional)}, as the sources give it (`data.Batch`); a bare array is the images.

  axis_name: only for a per-device call over a mapped batch axis (`parallel.pmap_step`).
  """
  batch = as_batch(batch)
  real = batch["image"]
  if spec.num_classes and "label" not in batch:
    raise ValueError(f"a class-conditional GAN ({spec.num_classes} classes) needs the batch's "
                     f"'label' [B]; the batch has only {sorted(batch)}")
  y_real = batch["label"].astype(jnp.int32) if spec.num_classes else None
  old_state = state
  key = jax.random.fold_in(state.key, state.step)
  k_d, k_g = jax.random.split(key)
  noise = lambda k: _fakes_input(spec, k, real.shape[0], axis_name)

  d_grad_fn = jax.grad(
      lambda p, s, z, k, ka: _d_loss(spec, state, p, s, (real, y_real), z, k, ka, axis_name),
      has_aux=True)
  d_params, d_state, d_opt_state = state.d_params, state.d_state, state.d_opt_state
  bad = dict(d_loss=False, penalty=False, d_grads=False)
  ada_signs = jnp.zeros((), jnp.float32)
  for i in range(spec.d_steps):
    k_step = jax.random.fold_in(k_d, i)
    k_z, k_pen = jax.random.split(k_step)
    if axis_name is not None:  # per-device penalty randomness (WGAN-GP's interpolation)
      k_pen = jax.random.fold_in(k_pen, jax.lax.axis_index(axis_name))
    grads, aux = d_grad_fn(d_params, d_state, noise(k_z), k_pen, jax.random.fold_in(k_step, 2))
    ada_signs = ada_signs + aux.pop("ada_signs")
    d_grad_norm = optax.global_norm(grads)
    bad = dict(d_loss=bad["d_loss"] | ~jnp.isfinite(aux["d_loss"]),
               penalty=bad["penalty"] | ~jnp.isfinite(aux["penalty"]),
               d_grads=bad["d_grads"] | ~jnp.isfinite(d_grad_norm))
    updates, d_opt_state = spec.d_tx.update(grads, d_opt_state, d_params)
    d_params = optax.apply_updates(d_params, updates)
    d_state = aux.pop("d_state")
  state = state.replace(d_params=d_params, d_state=d_state, d_opt_state=d_opt_state)

  (g_loss, (g_state, fake)), g_grads = jax.value_and_grad(
      lambda p: _g_loss(spec, state, p, (real, y_real), noise(k_g), jax.random.fold_in(k_g, 2),
                        axis_name),
      has_aux=True)(state.g_params)
  updates, g_opt_state = spec.g_tx.update(g_grads, state.g_opt_state, state.g_params)
  g_params = optax.apply_updates(state.g_params, updates)
  ema_params = optax.incremental_update(g_params, state.ema_params, 1.0 - spec.ema_decay)

  new_state = state.replace(step=state.step + 1, g_params=g_params, g_state=g_state,
                            g_opt_state=g_opt_state, ema_params=ema_params,
                            augment=_ada_update(spec, state, ada_signs, real.shape[0], axis_name))

  g_grad_norm = optax.global_norm(g_grads)
  bad.update(g_loss=~jnp.isfinite(g_loss), g_grads=~jnp.isfinite(g_grad_norm),
             d_params=~all_finite((d_params, d_state)),
             g_params=~all_finite((g_params, g_state, ema_params)))
  what = sum(jnp.asarray(bad[name], jnp.int32) << i for i, name in enumerate(NONFINITE))
  new_state = _guard_nonfinite(spec, old_state, new_state, what)
  metrics = dict(aux, g_loss=g_loss, d_grad_norm=d_grad_norm, g_grad_norm=g_grad_norm,
                 fake_pdist=mean_pairwise_distance(fake), real_pdist=mean_pairwise_distance(real),
                 nonfinite=what)
  if spec.ada:
    metrics["augment_p"] = state.augment["p"]
  return new_state, metrics


def _ada_update(spec: GANSpec, state: GANState, signs, batch: int, axis_name):
  """ADA's state after a step whose D steps summed `signs` of sign(D(aug(real))) over their
  (per-device) batches of `batch` real logits each (module docstring)."""
  if not spec.ada:
    return state.augment
  if axis_name is not None:                                          # the global sums
    signs, batch = jax.lax.psum(signs, axis_name), batch * jax.lax.psum(1, axis_name)
  a = state.augment
  total, count = a["signs"] + signs, a["count"] + spec.d_steps * batch
  if spec.ada_target == 0:                                           # a fixed p
    return dict(a, signs=jnp.zeros_like(total), count=jnp.zeros_like(count))
  due = (state.step + 1) % spec.ada_interval == 0
  p = augment_lib.ada_update(a["p"], total / jnp.maximum(count, 1), batch, spec.ada_interval,
                             spec.ada_target, spec.ada_kimg)
  return dict(p=jnp.where(due, p, a["p"]).astype(jnp.float32),
              signs=jnp.where(due, 0.0, total).astype(jnp.float32),
              count=jnp.where(due, 0, count).astype(jnp.int32))


def train_steps(spec: GANSpec, state: GANState, batches):
  """K train steps in one call with `lax.scan`; batches: stacked batches, each leaf [K, B, ...].

  Equal to K calls of `train_step`; metrics come back stacked, each [K].
  """
  return jax.lax.scan(lambda s, b: train_step(spec, s, b), state, batches)
