"""experiments/mode_diagnostics.py: where a mixture's samples land, on samples of known law."""
import numpy as np
import pytest

from jaxgan.data import MIXTURE_STD, mixture_means
from tests.util import load_experiment_script


@pytest.fixture(scope="module")
def diag():
  return load_experiment_script("mode_diagnostics")


def _mixture(name, n, scale, rng):
  means = mixture_means(name)
  return means[rng.integers(0, len(means), n)] + scale * MIXTURE_STD[name] * rng.normal(size=(n, 2))


@pytest.mark.parametrize("name", ["grid25", "ring8"])
def test_true_mixture_matches_a_2d_gaussian(diag, name):
  d = diag.mixture_diagnostics(_mixture(name, 20000, 1.0, np.random.default_rng(0)), name)
  assert d["far_percent"] == 0.0
  # the radius of a 2D standard Gaussian: median sqrt(2 ln 2), 90% sqrt(2 ln 10)
  assert d["dist_std_q50"] == pytest.approx(np.sqrt(2 * np.log(2)), rel=0.03)
  assert d["dist_std_q90"] == pytest.approx(np.sqrt(2 * np.log(10)), rel=0.03)
  # within 3 std a 2D Gaussian's per-coordinate rms is sqrt(1 - 4.5 e^-4.5 / (1 - e^-4.5)) std
  assert d["cluster_std_ratio"] == pytest.approx(0.974, abs=0.02)


def test_sharp_modes_and_bridges_are_told_apart(diag):
  rng = np.random.default_rng(1)
  sharp = _mixture("grid25", 9000, 0.5, rng)                         # modes at half the std
  bridges = rng.uniform(-4, 4, size=(1000, 2))
  bridges = bridges[np.min(np.abs(bridges - np.round(bridges / 2) * 2), 1) > 0.5][:500]
  d = diag.mixture_diagnostics(np.concatenate([sharp, bridges]), "grid25")
  assert d["far_percent"] == pytest.approx(100 * len(bridges) / (9000 + len(bridges)))
  assert d["cluster_std_ratio"] == pytest.approx(0.5, abs=0.03)


class _BrightnessClassifier:
  """Logits that read a digit image of mean brightness v/10 as digit v (any real digit: 0..9)."""

  def features_and_logits(self, x):
    label = np.clip(np.rint(np.asarray(x).mean(axis=(1, 2, 3)) * 10), 0, 9).astype(int)
    return None, 20.0 * np.eye(10)[label]                            # [M, 10]


def test_stacked_digit_frequencies_per_channel(diag):
  labels = np.array([[3, 0, 1]] * 3 + [[8, 0, 2]])                  # channel 0: 3, 3, 3, 8
  x = np.broadcast_to(labels[:, None, None, :] / 10.0, (4, 4, 4, 3)).copy()
  d = diag.stacked_diagnostics(x, _BrightnessClassifier())
  assert d["channel_digit_freq"][0] == [0, 0, 0, 0.75, 0, 0, 0, 0, 0.25, 0]
  assert d["channel_digit_freq"][1] == [1.0] + [0] * 9
  assert d["channel_digit_freq"][2] == [0, 0.75, 0.25] + [0] * 7
  # softmax of 20 * one-hot: 1 / (1 + 9 e^-20), for generated and real digits alike
  top = 1 / (1 + 9 * np.exp(-20.0))
  assert d["mean_top_prob"] == pytest.approx(top) and d["real_mean_top_prob"] == pytest.approx(top)


def test_the_metrics_pass_probabilities_give_the_same_diagnostics(diag):
  """diagnose() reads the probabilities of the metrics' own classification (stacked_modes'
  digit order) instead of classifying the digits again: same result, same labels."""
  from jaxgan.metrics.modes import stacked_modes
  rng = np.random.default_rng(2)
  labels = rng.integers(0, 10, size=(50, 3))                         # [N, 3] digit triples
  x = np.broadcast_to(labels[:, None, None, :] / 10.0, (50, 4, 4, 3)).copy()
  clf = _BrightnessClassifier()
  keep = diag._KeepProbs(clf)
  assert stacked_modes(x, keep).tolist() == (labels @ [100, 10, 1]).tolist()
  assert diag.stacked_diagnostics(x, clf, keep.probs) == diag.stacked_diagnostics(x, clf)
