"""The pure train step: reference numerics, determinism, no recompiles, every loss/penalty."""
import dataclasses
import functools
import itertools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxgan import losses, penalties
from jaxgan.models import DCGANDiscriminator, DCGANGenerator, MLPDiscriminator, MLPGenerator
from jaxgan.models.layers import depth_to_space, minibatch_std
from jaxgan.state import GANSpec, create_state, spec_from_config
from jaxgan.train_step import pack, train_step


def test_eight_fake_devices():
  assert jax.device_count() == 8


def small_spec(**kw):
  kw.setdefault("g_tx", optax.adam(1e-3, b1=0.5))
  kw.setdefault("d_tx", optax.adam(1e-3, b1=0.5))
  return GANSpec(generator=MLPGenerator((6,), (16,), "none"),
                 discriminator=MLPDiscriminator((16,)), latent_dim=4, **kw)


def batch_for(step, shape=(8, 6)):
  return jax.random.normal(jax.random.key(100 + step), shape)


def run(spec, steps=3, shape=(8, 6)):
  state = create_state(spec, jax.random.key(0), shape[1:])
  fn = jax.jit(functools.partial(train_step, spec), donate_argnums=0)
  for i in range(steps):
    state, metrics = fn(state, batch_for(i, shape))
  return state, metrics


@pytest.mark.parametrize("loss,pack", [("hinge", 1), ("hinge", 2), ("relativistic", 1)])
def test_d_and_g_updates_match_a_hand_written_reference(loss, pack):
  """With SGD, one step must equal: d -= lr * grad(d_loss + w*R1); g -= lr * grad(g_loss).
  pack=2 (PacGAN): D judges pairs of consecutive examples, R1 per pair. The relativistic G
  loss reads D(real) of the updated D, with no gradient."""
  lr, w = 0.1, 2.0
  L = losses.get_loss(loss)
  spec = small_spec(g_tx=optax.sgd(lr), d_tx=optax.sgd(lr), loss=loss,
                    penalty="r1", penalty_weight=w, pack=pack)
  state = create_state(spec, jax.random.key(0), (6,))
  assert state.d_params["Dense_0"]["kernel"].shape == (6 * pack, 16)
  real = batch_for(0)
  new, metrics = jax.jit(functools.partial(train_step, spec))(state, real)

  G, D = spec.generator, spec.discriminator
  k_d, k_g = jax.random.split(jax.random.fold_in(state.key, 0))
  k_z, _ = jax.random.split(jax.random.fold_in(k_d, 0))
  z_d = jax.random.normal(k_z, (8, 4))
  z_g = jax.random.normal(k_g, (8, 4))
  packed = lambda x: x.reshape(8 // pack, 6 * pack)                 # vectors: pairs side by side
  fake = G.apply({"params": state.g_params}, z_d)
  def d_total(p):
    d = lambda x: D.apply({"params": p}, x)
    gx = jax.vmap(jax.grad(lambda x: d(x[None])[0]))(packed(real))  # per-pack input grads
    r1 = jnp.mean(jnp.sum(gx ** 2, axis=1))
    return L.d(d(packed(real)), d(packed(fake))) + w * r1
  d_ref = jax.tree.map(lambda p, g: p - lr * g, state.d_params, jax.grad(d_total)(state.d_params))
  d_new = lambda x: D.apply({"params": d_ref}, x)
  g_total = lambda p: L.g(d_new(packed(real)), d_new(packed(G.apply({"params": p}, z_g))))
  g_ref = jax.tree.map(lambda p, g: p - lr * g, state.g_params, jax.grad(g_total)(state.g_params))
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6),
               new.d_params, d_ref)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6),
               new.g_params, g_ref)
  assert int(new.step) == 1


def test_pack_stacks_consecutive_examples_on_the_last_axis():
  x = jnp.arange(6 * 2 * 2 * 3, dtype=jnp.float32).reshape(6, 2, 2, 3)  # [B, H, W, C]
  p = pack(x, 3)
  assert p.shape == (2, 2, 2, 9)
  np.testing.assert_array_equal(p[1], jnp.concatenate([x[3], x[4], x[5]], axis=-1))
  assert pack(x, 1) is x
  with pytest.raises(ValueError, match="divisible by 4"):
    pack(x, 4)


@pytest.mark.parametrize("loss", sorted(losses.LOSSES))
@pytest.mark.parametrize("penalty", ["none", *sorted(penalties.PENALTIES)])
def test_every_loss_and_penalty_trains_finite(loss, penalty):
  state, metrics = run(small_spec(loss=loss, penalty=penalty, penalty_weight=1.0), steps=2)
  assert all(np.isfinite(float(v)) for v in metrics.values())
  assert int(state.step) == 2


def test_determinism():
  spec = small_spec(penalty="r1", penalty_weight=1.0, ema_decay=0.9)
  a, _ = run(spec)
  b, _ = run(spec)
  jax.tree.map(np.testing.assert_array_equal, a.g_params, b.g_params)
  jax.tree.map(np.testing.assert_array_equal, a.ema_params, b.ema_params)


def test_no_recompilation_after_first_step():
  spec = small_spec(penalty="r1", penalty_weight=1.0, penalty_every=2)
  state = create_state(spec, jax.random.key(0), (6,))
  fn = jax.jit(functools.partial(train_step, spec), donate_argnums=0)
  state, _ = fn(state, batch_for(0))
  assert fn._cache_size() == 1
  for i in range(1, 5):
    state, _ = fn(state, batch_for(i))
  assert fn._cache_size() == 1


def test_lazy_regularisation_applies_every_k_steps_with_scaled_weight():
  """With penalty_every=k the D update on a regularisation step equals the update with
  weight*k, and on other steps the update without penalty."""
  def d_after(step, **kw):
    spec = small_spec(d_tx=optax.sgd(0.1), penalty="r1", **kw)
    state = create_state(spec, jax.random.key(0), (6,)).replace(step=jnp.int32(step))
    return jax.jit(functools.partial(train_step, spec))(state, batch_for(0))[0].d_params
  lazy0, eager0 = d_after(0, penalty_weight=1.0, penalty_every=4), d_after(0, penalty_weight=4.0)
  lazy1, none1 = d_after(1, penalty_weight=1.0, penalty_every=4), d_after(1, penalty_weight=0.0)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6), lazy0, eager0)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6), lazy1, none1)


def test_ema_tracks_params():
  spec = small_spec(ema_decay=0.5)
  state = create_state(spec, jax.random.key(0), (6,))
  new, _ = jax.jit(functools.partial(train_step, spec))(state, batch_for(0))
  expected = jax.tree.map(lambda e, p: 0.5 * e + 0.5 * p, state.ema_params, new.g_params)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6), new.ema_params, expected)


def test_d_steps_do_several_d_updates():
  one = run(small_spec(d_steps=1), steps=1)[0]
  two = run(small_spec(d_steps=2), steps=1)[0]
  assert not np.allclose(one.d_params["Dense_0"]["kernel"], two.d_params["Dense_0"]["kernel"])


@pytest.mark.parametrize("spectral_norm,mbstd", [(False, 0), (True, 2)])
def test_dcgan32_step_updates_batch_stats_and_spectral_norm(spectral_norm, mbstd):
  spec = GANSpec(generator=DCGANGenerator((32, 32, 3), width=8, upsample="subpixel"),
                 discriminator=DCGANDiscriminator(width=8, spectral_norm=spectral_norm,
                                                  minibatch_std=mbstd),
                 g_tx=optax.adam(1e-3), d_tx=optax.adam(1e-3), latent_dim=8,
                 penalty="r1", penalty_weight=1.0)
  state = create_state(spec, jax.random.key(0), (32, 32, 3))
  kernel = state.d_params["Conv_2"]["kernel"]                         # [4, 4, 2w (+1), 4w]
  assert kernel.shape == (4, 4, 16 + (mbstd > 0), 32)                 # + the minibatch-std map
  old_stats = jax.tree.map(np.asarray, state.g_state)
  old_d_state = jax.tree.map(np.asarray, state.d_state)
  new, metrics = jax.jit(functools.partial(train_step, spec))(
      state, jax.random.uniform(jax.random.key(1), (4, 32, 32, 3), minval=-1, maxval=1))
  assert all(np.isfinite(float(v)) for v in metrics.values())
  assert "batch_stats" in new.g_state
  assert not np.allclose(jax.tree.leaves(old_stats)[0], jax.tree.leaves(new.g_state)[0])
  if spectral_norm:  # power-iteration state lives in the D's batch_stats collection
    assert "batch_stats" in new.d_state
    u_old = old_d_state["batch_stats"]["SpectralNorm_0"]["Conv_0/kernel/u"]
    u_new = new.d_state["batch_stats"]["SpectralNorm_0"]["Conv_0/kernel/u"]
    assert not np.allclose(u_old, u_new)


def test_mlp_generator_batch_norm_updates_its_statistics_in_the_step():
  spec = dataclasses.replace(small_spec(penalty="r1", penalty_weight=1.0),
                             generator=MLPGenerator((6,), (16,), "none", batch_norm=True))
  state = create_state(spec, jax.random.key(0), (6,))
  assert state.g_state["batch_stats"]["BatchNorm_0"]["mean"].shape == (16,)
  new, metrics = jax.jit(functools.partial(train_step, spec))(state, batch_for(0))
  assert all(np.isfinite(float(v)) for v in metrics.values())
  assert not np.allclose(state.g_state["batch_stats"]["BatchNorm_0"]["mean"],
                         new.g_state["batch_stats"]["BatchNorm_0"]["mean"])


def test_mlp_discriminator_leaky_relu_passes_negative_preactivations():
  x = jax.random.normal(jax.random.key(0), (5, 6))
  relu, leaky = MLPDiscriminator((16,)), MLPDiscriminator((16,), activation="leaky_relu")
  params = relu.init(jax.random.key(1), x)                           # same parameters
  h = x @ params["params"]["Dense_0"]["kernel"] + params["params"]["Dense_0"]["bias"]  # [5, 16]
  w, b = params["params"]["Dense_1"]["kernel"][:, 0], params["params"]["Dense_1"]["bias"][0]
  np.testing.assert_allclose(leaky.apply(params, x), jnp.where(h > 0, h, 0.2 * h) @ w + b,
                             rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(relu.apply(params, x), jnp.maximum(h, 0) @ w + b,
                             rtol=1e-5, atol=1e-6)


def _minibatch_std_reference(x, group):
  x = np.asarray(x, np.float64)
  out = []
  for g in np.split(x, x.shape[0] // group):                         # [G, ..., C] each
    s = np.mean(np.sqrt(np.var(g, axis=0) + 1e-8))
    out.append(np.concatenate([g, np.full((*g.shape[:-1], 1), s)], -1))
  return np.concatenate(out)


@pytest.mark.parametrize("shape,group", [((8, 5), 4), ((8, 3, 3, 2), 2), ((2, 5), 4)])
def test_minibatch_std_against_numpy(shape, group):
  """Per group of consecutive examples (min(group, B)): the features' std, averaged, as one
  more channel; a group larger than the batch is the whole batch."""
  x = jax.random.normal(jax.random.key(0), shape)
  np.testing.assert_allclose(minibatch_std(x, group),
                             _minibatch_std_reference(x, min(group, shape[0])), rtol=1e-5)


def test_minibatch_std_keeps_the_real_and_fake_halves_apart():
  x = jax.random.normal(jax.random.key(0), (8, 5))                    # [real 4; fake 4]
  y = x.at[4:].multiply(10.0)
  np.testing.assert_array_equal(minibatch_std(x, 4)[:4], minibatch_std(y, 4)[:4])
  assert not np.allclose(minibatch_std(x, 4)[4:, -1], minibatch_std(y, 4)[4:, -1])
  with pytest.raises(ValueError, match="must divide the discriminator's batch"):
    minibatch_std(x, 3)


def test_mlp_discriminator_minibatch_std_feeds_the_last_hidden_layer():
  x = jax.random.normal(jax.random.key(0), (4, 6))
  d = MLPDiscriminator((16, 8), minibatch_std=2)
  p = d.init(jax.random.key(1), x)["params"]
  assert p["Dense_1"]["kernel"].shape == (17, 8)                      # 16 features + 1
  h = jnp.maximum(x @ p["Dense_0"]["kernel"] + p["Dense_0"]["bias"], 0)  # [4, 16]
  h = jnp.asarray(_minibatch_std_reference(h, 2), jnp.float32)       # [4, 17]
  h = jnp.maximum(h @ p["Dense_1"]["kernel"] + p["Dense_1"]["bias"], 0)  # [4, 8]
  np.testing.assert_allclose(d.apply({"params": p}, x),
                             (h @ p["Dense_2"]["kernel"] + p["Dense_2"]["bias"])[:, 0],
                             rtol=1e-5, atol=1e-6)


def test_mlp_discriminator_without_hidden_layers_takes_minibatch_std_on_its_input():
  x = jax.random.normal(jax.random.key(0), (4, 2, 3))                 # [B, 2, 3] -> 6 inputs
  d = MLPDiscriminator((), minibatch_std=4)
  p = d.init(jax.random.key(1), x)["params"]
  assert p["Dense_0"]["kernel"].shape == (7, 1)                       # 6 inputs + 1
  h = jnp.asarray(_minibatch_std_reference(x.reshape(4, 6), 4), jnp.float32)  # [4, 7]
  np.testing.assert_allclose(d.apply({"params": p}, x),
                             (h @ p["Dense_0"]["kernel"] + p["Dense_0"]["bias"])[:, 0],
                             rtol=1e-5, atol=1e-6)


def test_depth_to_space_against_an_explicit_loop():
  x = np.arange(2 * 3 * 4 * 8, dtype=np.float32).reshape(2, 3, 4, 8)  # [B, H, W, 2*2*C]
  want = np.zeros((2, 6, 8, 2), np.float32)
  for i, j, a, b in itertools.product(range(3), range(4), range(2), range(2)):
    want[:, 2 * i + a, 2 * j + b] = x[:, i, j, (2 * a + b) * 2:(2 * a + b + 1) * 2]
  np.testing.assert_array_equal(depth_to_space(jnp.asarray(x), 2), want)


def test_mlp_generator_subpixel_output_layer():
  """out_conv = F: Dense -> [H/2, W/2, F] ReLU -> 3x3 conv -> depth-to-space -> tanh, so the
  features at block (i, j) reach exactly the pixels of the 3x3 blocks around it."""
  g = MLPGenerator((8, 8, 3), (16,), out_conv=4)
  z = jax.random.normal(jax.random.key(0), (2, 5))
  p = g.init(jax.random.key(1), z)["params"]
  h = jnp.maximum(z @ p["Dense_0"]["kernel"] + p["Dense_0"]["bias"], 0)  # [2, 16]
  f = jnp.maximum(h @ p["Dense_1"]["kernel"] + p["Dense_1"]["bias"], 0).reshape(2, 4, 4, 4)
  f = np.pad(np.asarray(f, np.float64), ((0, 0), (1, 1), (1, 1), (0, 0)))  # [2, 6, 6, 4]
  k, bias = np.asarray(p["Conv_0"]["kernel"], np.float64), np.asarray(p["Conv_0"]["bias"])
  conv = np.zeros((2, 4, 4, 12))
  for i, j in itertools.product(range(4), range(4)):
    conv[:, i, j] = np.einsum("bxyc,xyco->bo", f[:, i:i + 3, j:j + 3], k) + bias
  want = np.tanh(np.asarray(depth_to_space(jnp.asarray(conv), 2)))  # [2, 8, 8, 3]
  out = g.apply({"params": p}, z)
  assert out.shape == (2, 8, 8, 3)
  np.testing.assert_allclose(out, want, rtol=1e-5, atol=1e-5)
  # d pixel / d feature bias, with every feature's ReLU open (bias + 10)
  image = lambda b: g.apply({"params": {**p, "Dense_1": {**p["Dense_1"], "bias": b}}}, z[:1])
  jac = jax.jacobian(image)(p["Dense_1"]["bias"] + 10.0)             # [1, 8, 8, 3, 4*4*4]
  reach = np.any(np.asarray(jac).reshape(8, 8, 3, 4, 4, 4) != 0, axis=(2, 5))  # [8, 8, 4, 4]
  r = np.arange(8) // 2
  near = np.abs(r[:, None] - np.arange(4)[None]) <= 1                # [pixel row, block row]
  np.testing.assert_array_equal(reach, near[:, None, :, None] & near[None, :, None, :])
  with pytest.raises(ValueError, match="even H and W"):
    MLPGenerator((7, 6, 3), (16,), out_conv=4).init(jax.random.key(1), z)


def test_spec_from_default_config(mlp_config):
  spec = spec_from_config(mlp_config, (28, 28, 1))
  assert spec.penalty == "r1" and spec.loss == "non_saturating" and spec.latent_dim == 100


def test_train_steps_scan_equals_k_single_steps():
  from jaxgan.train_step import pack, train_steps
  spec = small_spec(penalty="r1", penalty_weight=1.0, penalty_every=2, ema_decay=0.9)
  single, _ = run(spec, steps=4)
  state = create_state(spec, jax.random.key(0), (6,))
  batches = jnp.stack([batch_for(i) for i in range(4)])               # [K, B, 6]
  scanned, metrics = jax.jit(functools.partial(train_steps, spec))(state, batches)
  assert metrics["g_loss"].shape == (4,)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6),
               scanned.g_params, single.g_params)
  assert int(scanned.step) == 4
