"""Mode-collapse metrics on hand-built sample sets with known answers."""
import math

import numpy as np
import pytest

from jaxgan.data import MIXTURE_STD, mixture_means
from jaxgan.metrics import modes


def test_kl_to_uniform_reference_values():
  assert modes.kl_to_uniform(np.full(25, 100)) == pytest.approx(0.0, abs=1e-12)
  one = np.zeros(25)
  one[3] = 7
  assert modes.kl_to_uniform(one) == pytest.approx(math.log(25))
  # p = (1/2, 1/4, 1/4, 0): sum p log(4p) = 1/2 log 2 + 2 * 1/4 log 1
  assert modes.kl_to_uniform([2, 1, 1, 0]) == pytest.approx(0.5 * math.log(2))
  assert modes.kl_to_uniform(np.zeros(8)) == math.inf


@pytest.mark.parametrize("name", ["grid25", "ring8"])
def test_samples_from_the_true_mixture_cover_everything(name):
  means, std = mixture_means(name), MIXTURE_STD[name]
  k = means.shape[0]
  x = np.repeat(means, 2500 // k, axis=0) + 0.5 * std * np.random.default_rng(0).uniform(
      -1, 1, (2500 // k * k, 2))
  m = modes.mixture_metrics(x, name)
  assert m == dict(modes=k, num_modes=k, hq_percent=100.0, kl=pytest.approx(0.0, abs=1e-12),
                   num_samples=2500 // k * k)


def test_grid_known_partial_coverage():
  """10 modes with 200, 100, ... samples, 500 far-away samples and a NaN: every number by hand."""
  means, std = mixture_means("grid25"), MIXTURE_STD["grid25"]
  counts = np.array([200, 100, 100, 100, 100, 100, 100, 100, 100, 100])
  hq = np.concatenate([np.repeat(means[:10], counts, axis=0)])
  hq[:, 0] += 2.9 * std * np.where(np.arange(len(hq)) % 2, 1, -1)   # inside 3 std
  bad = np.tile([[1.0, 1.0]], (499, 1))                               # between four modes
  bad[0] = means[20] + np.array([3.1 * std, 0.0])                     # just outside 3 std
  x = np.concatenate([hq, bad, [[np.nan, 0.0]]])
  m = modes.mixture_metrics(x, "grid25")
  p = counts / counts.sum()
  assert m["modes"] == 10
  assert m["num_samples"] == 1100 + 500
  assert m["hq_percent"] == pytest.approx(100 * 1100 / 1600)
  assert m["kl"] == pytest.approx(np.sum(p * np.log(p * 25)))


def test_ring_collapse_to_one_mode():
  means = mixture_means("ring8")
  x = np.tile(means[5], (2500, 1))
  m = modes.mixture_metrics(x, "ring8")
  assert (m["modes"], m["hq_percent"]) == (1, 100.0)
  assert m["kl"] == pytest.approx(math.log(8))


def test_mixture_metrics_refuses_bad_shape():
  with pytest.raises(ValueError, match=r"\[N, 2\]"):
    modes.mixture_metrics(np.zeros((5, 3)), "grid25")


def _fake_classifier(digits):
  """'Classifies' a digit image by its mean brightness: pixel value v/10 means digit v."""
  return np.rint(digits.mean(axis=(1, 2, 3)) * 10).astype(np.int32)


def _stacked(labels):
  """Images [N, 4, 4, 3] whose channel c reads as digit labels[:, c] under _fake_classifier."""
  labels = np.asarray(labels)
  return np.broadcast_to(labels[:, None, None, :] / 10.0, (len(labels), 4, 4, 3)).copy()


def test_stacked_modes_order_channels():
  np.testing.assert_array_equal(
      modes.stacked_modes(_stacked([[1, 2, 3], [9, 0, 7]]), _fake_classifier), [123, 907])


def test_stacked_mnist_all_modes_uniform():
  labels = np.stack(np.unravel_index(np.arange(1000), (10, 10, 10)), -1)  # every mode once
  m = modes.stacked_mnist_metrics(_stacked(np.concatenate([labels, labels])), _fake_classifier)
  assert m == dict(modes=1000, num_modes=1000, kl=pytest.approx(0.0, abs=1e-12),
                   kl_channels=pytest.approx(0.0, abs=1e-12), num_samples=2000)


def test_stacked_mnist_known_histogram():
  """Modes 0..99 once, mode 500 100 times: p = 1/200 (x100), 1/2; KL = sum p log(1000 p)."""
  labels = np.stack(np.unravel_index(np.r_[np.arange(100), np.full(100, 500)], (10, 10, 10)), -1)
  m = modes.stacked_mnist_metrics(_stacked(labels), _fake_classifier)
  assert m["modes"] == 101
  assert m["kl"] == pytest.approx(0.5 * math.log(1000 / 200) + 0.5 * math.log(500))
  # channel 0: digits 0 and 5, half each; channels 1 and 2: digit 0 110 times, 1..9 10 times
  kl_0 = math.log(10 / 2)
  kl_12 = 0.55 * math.log(10 * 0.55) + 9 * 0.05 * math.log(10 * 0.05)
  assert m["kl_channels"] == pytest.approx(kl_0 + 2 * kl_12)


def test_stacked_mnist_kl_channels_is_kl_for_independent_channels():
  """A product histogram (independent channels) has KL = the sum of its channels' KLs."""
  rng = np.random.default_rng(0)
  p = [rng.dirichlet(np.ones(10)) for _ in range(3)]
  counts = np.rint(np.einsum("i,j,k->ijk", *p) * 1e5).astype(int).reshape(-1)  # [1000]
  labels = np.stack(np.unravel_index(np.repeat(np.arange(1000), counts), (10, 10, 10)), -1)
  m = modes.stacked_mnist_metrics(_stacked(labels), _fake_classifier)
  assert m["kl_channels"] > 0.1
  assert m["kl_channels"] == pytest.approx(m["kl"], abs=1e-3)


def test_stacked_mnist_refuses_bad_input():
  with pytest.raises(ValueError, match=r"\[N, H, W, 3\]"):
    modes.stacked_mnist_metrics(np.zeros((2, 28, 28, 1)), _fake_classifier)
  with pytest.raises(ValueError, match="0..9"):
    modes.stacked_mnist_metrics(_stacked([[1, 2, 3]]), lambda d: np.full(len(d), 10))


def test_stacked_mnist_source_stacks_three_real_digits():
  import jax
  from jaxgan import data
  digits = data.load_embedded_images("mnist5k")                      # [5000, 28, 28, 1]
  src = data.stacked_mnist_source(64, seed=3)
  x = np.asarray(src.batch(7)["image"])
  assert src.shape == (28, 28, 3) and x.shape == (64, 28, 28, 3) and src.value_range == (-1, 1)
  flat = digits.reshape(5000, -1)
  for c in range(3):                                                 # each channel is a digit
    d = np.abs(flat[None] - x[:, :, :, c].reshape(64, 1, -1)).max(-1).min(-1)
    assert d.max() == 0.0
  assert not np.array_equal(x[..., 0], x[..., 1])
  np.testing.assert_array_equal(
      x, np.asarray(data.stacked_mnist_source(64, seed=3).batch(7)["image"]))
  np.testing.assert_array_equal(x, np.asarray(src.keyed_batch(jax.random.key(3), 7)["image"]))
  assert not np.array_equal(x, np.asarray(src.batch(8)["image"]))
