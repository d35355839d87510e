"""Class-conditional GANs: G(z, y) and the projection D against hand computations, labels
through the step (fake labels from the step key, penalties at fixed labels), sharded == single
device, pmap, resume, sampling by class, the conditional metrics and the clear errors."""
import functools
import json

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxgan import config as config_lib
from jaxgan import data, parallel, penalties
from jaxgan.cli import main
from jaxgan.metrics import scores
from jaxgan.models import DCGANDiscriminator, DCGANGenerator, MLPDiscriminator, MLPGenerator
from jaxgan.state import GANSpec, create_state, generate
from jaxgan.runs import grid_layout, load_run, sample, sample_labels
from jaxgan.train import train
from jaxgan.train_step import _apply, fake_labels, train_step
from tests.util import assert_trees_close, assert_trees_equal, small_mlp_config

B, K = 16, 4  # global batch (2 per fake device), classes


def cond_spec(**kw):
  kw.setdefault("g_tx", optax.sgd(0.1))  # SGD: an N-times gradient would show
  kw.setdefault("d_tx", optax.sgd(0.1))
  return GANSpec(generator=MLPGenerator((6,), (16,), "none", num_classes=K, class_embed=3),
                 discriminator=MLPDiscriminator((16,), kw.pop("spectral_norm", True),
                                                num_classes=K),
                 latent_dim=4, num_classes=K, **kw)


def labelled_batches(steps, shape=(6,)):
  return [{"image": jax.random.normal(jax.random.key(100 + i), (B, *shape)),
           "label": jax.random.randint(jax.random.key(200 + i), (B,), 0, K, jnp.int32)}
          for i in range(steps)]


# ------------------------------------------------------------------------------ the models

def test_mlp_projection_discriminator_against_a_hand_computation():
  """logit = psi(h) + <E(y), h> on the last hidden layer h (no SN: plain matrices)."""
  d = MLPDiscriminator((5,), spectral_norm=False, num_classes=3)
  x = jax.random.normal(jax.random.key(0), (4, 7))
  y = jnp.array([0, 2, 1, 2])
  v = d.init(jax.random.key(1), x, y, train=False)
  p = jax.tree.map(np.asarray, v["params"])
  h = np.maximum(np.asarray(x) @ p["Dense_0"]["kernel"] + p["Dense_0"]["bias"], 0)   # [4, 5]
  psi = h @ p["Dense_1"]["kernel"][:, 0] + p["Dense_1"]["bias"][0]
  e = p["class_embed"]["Embed_0"]["embedding"]                                      # [3, 5]
  want = psi + np.sum(e[np.asarray(y)] * h, axis=1)
  np.testing.assert_allclose(d.apply(v, x, y, train=False), want, rtol=1e-5, atol=1e-6)
  # changing a label changes only that example's logit
  out2 = d.apply(v, x, y.at[0].set(1), train=False)
  np.testing.assert_allclose(out2[1:], want[1:], rtol=1e-5, atol=1e-6)
  assert abs(float(out2[0]) - want[0]) > 1e-4


def test_spectrally_normalised_projection_embedding_has_unit_top_singular_value():
  d = MLPDiscriminator((8,), spectral_norm=True, num_classes=5)
  x = jax.random.normal(jax.random.key(0), (6, 3))
  y = jnp.arange(6) % 5
  v = d.init(jax.random.key(1), x, y, train=False)
  for _ in range(30):                                   # power iterations converge u
    _, upd = d.apply(v, x, y, train=True, mutable=["batch_stats"])
    v = {"params": v["params"], **upd}
  e = np.asarray(v["params"]["class_embed"]["Embed_0"]["embedding"])
  sigma = float(v["batch_stats"]["class_embed"]["SpectralNorm_0"]["Embed_0/embedding/sigma"])
  np.testing.assert_allclose(sigma, np.linalg.svd(e, compute_uv=False)[0], rtol=1e-4)


def test_mlp_generator_concatenates_the_class_embedding_to_z():
  g = MLPGenerator((3,), (), "none", num_classes=4, class_embed=2)
  z = jax.random.normal(jax.random.key(0), (5, 6))
  y = jnp.array([0, 1, 2, 3, 1])
  v = g.init(jax.random.key(1), z, y, train=False)
  p = jax.tree.map(np.asarray, v["params"])
  e = p["class_embed"]["embedding"]                                                 # [4, 2]
  h = np.concatenate([np.asarray(z), e[np.asarray(y)]], axis=1)                     # [5, 8]
  want = h @ p["Dense_0"]["kernel"] + p["Dense_0"]["bias"]
  np.testing.assert_allclose(g.apply(v, z, y, train=False), want, rtol=1e-5, atol=1e-6)


def test_dcgan_generator_conditional_batchnorm_gain_and_bias_per_class():
  """cBN: per-class gain 1 and bias 0 at init (G(z, y) does not depend on y then); a class's
  gain and bias act only on that class's examples, on the normalised activations."""
  g = DCGANGenerator((32, 32, 1), width=2, upsample="subpixel", num_classes=3)
  z = jax.random.normal(jax.random.key(0), (6, 4))
  y = jnp.array([0, 1, 2, 0, 1, 2])
  v = g.init(jax.random.key(1), z, y, train=False)
  cbn = v["params"]["ConditionalBatchNorm_0"]
  np.testing.assert_array_equal(cbn["gamma"], np.ones((3, 2 * 4)))
  np.testing.assert_array_equal(cbn["beta"], np.zeros((3, 2 * 4)))
  base = g.apply(v, z, y, train=False)
  np.testing.assert_allclose(g.apply(v, z, (y + 1) % 3, train=False), base, atol=1e-6)
  # class 1's bias of the last cBN moves only the examples of class 1
  last = max(k for k in v["params"] if k.startswith("ConditionalBatchNorm"))
  params = jax.tree.map(lambda a: a, v["params"])
  params[last] = dict(params[last], beta=params[last]["beta"].at[1].set(0.5))
  out = g.apply({**v, "params": params}, z, y, train=False)
  moved = np.abs(np.asarray(out - base)).reshape(6, -1).max(axis=1)
  assert np.all(moved[[1, 4]] > 1e-3) and np.all(moved[[0, 2, 3, 5]] == 0)


def test_dcgan_projection_discriminator_against_a_hand_computation():
  """logit = psi(flatten h) + <E(y), sum_HW h>: the projection term is the difference between
  the conditional logit and the unconditional one with the same weights."""
  d = DCGANDiscriminator(width=2, num_classes=3)
  x = jax.random.normal(jax.random.key(0), (4, 32, 32, 1))
  y = jnp.array([2, 0, 1, 1])
  v = d.init(jax.random.key(1), x, y, train=False)
  params = dict(v["params"])
  e = np.asarray(params.pop("class_embed")["Embed_0"]["embedding"])                 # [3, 8]
  uncond = DCGANDiscriminator(width=2)
  psi = uncond.apply({"params": params}, x, train=False)
  # h: the last conv's LeakyReLU output, through the same layers
  h = x
  for i in range(3):
    conv = params[f"Conv_{i}"]
    h = jax.lax.conv_general_dilated(h, conv["kernel"], (2, 2), ((1, 1), (1, 1)),
                                     dimension_numbers=("NHWC", "HWIO", "NHWC")) + conv["bias"]
    h = jnp.where(h > 0, h, 0.2 * h)
  pooled = np.asarray(jnp.sum(h, axis=(1, 2)))                                       # [4, 8]
  want = np.asarray(psi) + np.sum(e[np.asarray(y)] * pooled, axis=1)
  np.testing.assert_allclose(d.apply(v, x, y, train=False), want, rtol=1e-4, atol=1e-4)


# --------------------------------------------------------------------------------- the step

def test_fake_labels_are_a_pure_function_of_key_and_step():
  spec = cond_spec()
  state = create_state(spec, jax.random.key(0), (6,))
  batch = labelled_batches(1)[0]
  step = jax.jit(functools.partial(train_step, spec))
  assert_trees_equal(step(state, batch), step(state, batch))
  a = fake_labels(jax.random.key(3), 4000, 10)
  np.testing.assert_array_equal(a, fake_labels(jax.random.key(3), 4000, 10))
  assert a.dtype == jnp.int32 and int(a.min()) == 0 and int(a.max()) == 9
  counts = np.bincount(np.asarray(a), minlength=10)
  assert np.all(np.abs(counts - 400) < 5 * np.sqrt(400))          # uniform
  assert not np.array_equal(a, fake_labels(jax.random.key(4), 4000, 10))


@pytest.mark.parametrize("penalty", ["r1", "r2", "wgan_gp"])
def test_the_step_uses_real_and_fake_labels_as_documented(penalty):
  """D's loss, the penalty and G's loss recomputed by hand from the step's key: D(x, y_real)
  on the real half, D(G(z, y_fake), y_fake) on the fake one; R1/WGAN-GP at the real labels,
  R2 at the fakes'."""
  spec = cond_spec(loss="non_saturating", penalty=penalty, penalty_weight=1.0,
                   spectral_norm=False)
  state = create_state(spec, jax.random.key(0), (6,))
  batch = labelled_batches(1)[0]
  _, metrics = jax.jit(functools.partial(train_step, spec))(state, batch)
  k_d, _ = jax.random.split(jax.random.fold_in(state.key, state.step))
  k_z, k_pen = jax.random.split(jax.random.fold_in(k_d, 0))
  z = jax.random.normal(k_z, (B, 4))
  y_fake = fake_labels(k_z, B, K)
  fake = spec.generator.apply({"params": state.g_params}, z, y_fake, train=True)
  d = lambda x, y: _apply(spec.discriminator, state.d_params, state.d_state, x, y, False)[0]
  real, y_real = batch["image"], batch["label"]
  want_d = jnp.mean(jax.nn.softplus(-d(real, y_real))) + jnp.mean(jax.nn.softplus(d(fake, y_fake)))
  np.testing.assert_allclose(metrics["d_loss"], want_d, rtol=1e-5)
  y_pen = y_fake if penalty == "r2" else y_real
  want_pen = penalties.get_penalty(penalty)(lambda x: d(x, y_pen), real, fake, k_pen)
  np.testing.assert_allclose(metrics["penalty"], want_pen, rtol=1e-4)
  other = y_real if penalty == "r2" else (y_real + 1) % K            # other labels: differs
  wrong = penalties.get_penalty(penalty)(lambda x: d(x, other), real, fake, k_pen)
  assert abs(float(wrong) - float(want_pen)) > 1e-4


def test_sharded_step_and_pmap_with_labels_equal_single_device():
  spec = cond_spec(loss="hinge", penalty="r1", penalty_weight=1.0)
  state = create_state(spec, jax.random.key(0), (6,))
  fn = jax.jit(functools.partial(train_step, spec))
  for b in labelled_batches(2):
    state, ref_metrics = fn(state, b)
  mesh = parallel.make_mesh()
  sharded = parallel.init_state(spec, mesh, 0, (6,))
  sfn = parallel.jit_step(spec, mesh)
  for b in labelled_batches(2):
    sharded, metrics = sfn(sharded, parallel.global_batch(mesh, b))
  assert sfn._cache_size() == 1
  assert_trees_close(sharded, state, rtol=1e-5, atol=1e-6)
  assert_trees_close(metrics, ref_metrics, rtol=1e-5, atol=1e-6)
  pfn = parallel.pmap_step(spec)
  pstate = parallel.pmap_replicate(create_state(spec, jax.random.key(0), (6,)))
  for b in labelled_batches(2):
    pstate, _ = pfn(pstate, b)
  assert_trees_close(parallel.pmap_unreplicate(pstate), state, rtol=1e-5, atol=1e-6)


def test_conditional_gan_learns_to_separate_classes(tmp_path):
  """ring8 labelled by mixture component: after a short run, G(z, k) lands nearest mode k."""
  c = config_lib.load_config_file("experiments/ring8.py")
  c = config_lib.apply_overrides(c, ["conditional=true", "steps=600", "log_every=300",
                                     "sample_every=600", "checkpoint_every=600",
                                     "batch_size=64", "optim.lr_decay=(0,0)"])
  train(c, tmp_path / "run", progress=False, mesh=parallel.make_mesh(jax.devices()[:1]))
  means = data.mixture_means("ring8")                                              # [8, 2]
  counts = []
  for k in range(8):
    x = sample(tmp_path / "run", 200, 0, tmp_path / f"k{k}.npy", label=k)           # [200, 2]
    nearest = np.argmin(((x[:, None] - means[None]) ** 2).sum(-1), axis=1)
    counts.append(np.bincount(nearest, minlength=8))
  counts = np.array(counts)                             # [class asked, mode reached]
  assert list(np.argmax(counts, axis=1)) == list(range(8)), counts
  assert np.trace(counts) / counts.sum() > 0.9, counts


# ------------------------------------------------------------------------ runs and sampling

def cond_mnist_config(mlp_config):
  mlp_config.conditional = True
  mlp_config.steps = 20
  return mlp_config


def test_conditional_resume_is_bit_identical(tmp_path, mlp_config):
  c = cond_mnist_config(mlp_config)
  one = dict(progress=False, mesh=parallel.make_mesh(jax.devices()[:1]))
  straight = train(c, tmp_path / "straight", **one)
  c.steps = 10
  train(c, tmp_path / "resumed", **one)
  c.steps = 20
  assert_trees_equal(train(c, tmp_path / "resumed", **one), straight)
  assert json.loads((tmp_path / "straight" / "data.json").read_text())["num_classes"] == 10


@pytest.fixture(scope="module")
def cond_run(tmp_path_factory):
  """A conditional run on the digits (the test config, 20 steps), shared by the tests below."""
  workdir = tmp_path_factory.mktemp("cond_run") / "run"
  train(cond_mnist_config(small_mlp_config()), workdir, progress=False)
  return workdir


def test_sampling_by_class_and_labels_beside_the_npy(tmp_path, cond_run):
  (tmp_path / "run").symlink_to(cond_run)
  x = sample(tmp_path / "run", 12, 0, tmp_path / "s.npy")
  np.testing.assert_array_equal(np.load(tmp_path / "s.labels.npy"), np.arange(12) % 10)
  config, spec, state, meta = load_run(tmp_path / "run")
  z = jax.random.normal(jax.random.key(0), (12, spec.latent_dim))
  want = generate(spec, state, z, jnp.arange(12) % 10)
  np.testing.assert_allclose(x, np.clip(want, -1, 1), atol=1e-6)
  three = sample(tmp_path / "run", 12, 0, tmp_path / "three.npy", label=3)
  np.testing.assert_allclose(three, np.clip(generate(spec, state, z, jnp.full(12, 3)), -1, 1),
                             atol=1e-6)
  assert main(["sample", "--workdir", str(tmp_path / "run"), "--num", "4", "--out",
               str(tmp_path / "c.png"), "--class", "9"]) == 0
  assert main(["sample", "--workdir", str(tmp_path / "run"), "--num", "4", "--out",
               str(tmp_path / "c.png"), "--class", "10"]) == 2
  with pytest.raises(config_lib.ConfigError, match=r"out of range.*10 classes \(0..9\)"):
    sample(tmp_path / "run", 4, 0, tmp_path / "bad.npy", label=-1)


def test_training_grid_has_one_row_per_class():
  assert grid_layout(64, 0) == (0, None)
  cols, labels = grid_layout(64, 10)
  assert cols == 6
  np.testing.assert_array_equal(labels, np.repeat(np.arange(10), 6))
  cols, labels = grid_layout(16, 100)                  # more classes than images: one each
  assert cols == 1 and list(labels) == list(range(16))
  np.testing.assert_array_equal(sample_labels(5, 3), [0, 1, 2, 0, 1])
  assert sample_labels(5, 0) is None


def test_class_on_an_unconditional_run_is_an_error():
  with pytest.raises(config_lib.ConfigError, match="not class-conditional"):
    sample_labels(4, 0, label=0)              # what `sample` asks for its labels


def test_conditional_on_unlabelled_data_is_a_clear_error(tmp_path, mlp_config):
  mlp_config.conditional = True
  x = np.zeros((64, 28, 28, 1), np.uint8)
  source = data.array_source(x, mlp_config.batch_size, 0)
  with pytest.raises(config_lib.ConfigError, match="needs labelled data"):
    train(mlp_config, tmp_path / "run", source=source, progress=False)
  assert not (tmp_path / "run" / "checkpoints").exists()


def test_conditional_refuses_packing(mlp_config):
  mlp_config.conditional, mlp_config.pack = True, 2
  with pytest.raises(config_lib.ConfigError, match="cannot pack"):
    config_lib.validate(mlp_config)
  with pytest.raises(ValueError, match="cannot pack"):
    cond_spec(pack=2)


def test_conditional_is_a_key_of_every_config():
  for name in ("mnist_mlp", "grid25", "stacked_mnist", "mnist_dcgan32"):
    c = config_lib.load_config_file(f"experiments/{name}.py")
    assert c.conditional is False
    assert config_lib.apply_overrides(c, ["conditional=true"]).conditional is True


# ------------------------------------------------------------------------------ the metrics

def test_conditional_scores_against_a_hand_computation():
  rng = np.random.default_rng(0)
  real = rng.normal(size=(60, 3))
  real_y = np.arange(60) % 3
  fake = rng.normal(size=(30, 3)) + 0.5
  fake_y = np.arange(30) % 3
  pred = fake_y.copy()
  pred[[0, 1]] = 2                                    # a class-0 and a class-1 sample misread
  out = scores.conditional_scores(real, real_y, fake, fake_y, 3, pred)
  per = [scores.fid_from_features(real[real_y == c], fake[fake_y == c]) for c in range(3)]
  for c in range(3):
    assert out[f"intra_fid_{c}"] == pytest.approx(per[c])
  assert out["intra_fid"] == pytest.approx(np.mean(per)) and out["intra_fid_classes"] == 3
  assert out["cond_accuracy"] == pytest.approx(28 / 30)
  assert out["cond_accuracy_0"] == pytest.approx(0.9)
  assert out["cond_accuracy_1"] == pytest.approx(0.9)
  assert out["cond_accuracy_2"] == 1.0
  assert "cond_accuracy" not in scores.conditional_scores(real, real_y, fake, fake_y, 3)


def test_evaluator_of_a_conditional_run_adds_accuracy_and_intra_class_fid(cond_run):
  from jaxgan.eval import Evaluator
  from jaxgan.metrics.classifier import load_mnist_classifier
  config, spec, state, meta = load_run(cond_run)
  ev = Evaluator(config, spec, meta, num=200)
  out = ev(state)
  np.testing.assert_array_equal(ev.labels, np.arange(200) % 10)
  x = ev.samples(state)
  clf = load_mnist_classifier()
  pred = np.argmax(clf.features_and_logits(x)[1], 1)
  assert out["cond_accuracy"] == pytest.approx(np.mean(pred == ev.labels))
  assert out["intra_fid_classes"] == 10
  assert {f"cond_accuracy_{c}" for c in range(10)} <= set(out)
  assert np.isfinite(out["intra_fid"]) and np.isfinite(out["fid"])


def test_a_conditional_sweep_member_equals_the_single_run(tmp_path):
  """Sweeps carry labels as jaxgan train does: grid25 labelled by mixture component."""
  from jaxgan.sweep import sweep
  from tests.test_sweep import small_grid_config
  c = config_lib.apply_overrides(small_grid_config(), ["conditional=true"])
  sweep(c, tmp_path / "sweep", seeds=1, progress=False)
  single = train(c, tmp_path / "single", progress=False,
                 mesh=parallel.make_mesh(jax.devices()[:1]))
  member = load_run(tmp_path / "sweep" / "seed5")[2]
  assert member.g_params["class_embed"]["embedding"].shape == (25, 32)
  assert_trees_close(member, single, rtol=1e-4, atol=1e-5)
