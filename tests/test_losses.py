"""Each loss against values computed by hand (numpy, logs written out)."""
import numpy as np
import pytest

from jaxgan import losses

R = np.array([2.0, -1.0, 0.5], np.float32)   # real logits
F = np.array([-0.5, 1.5, 0.0], np.float32)   # fake logits
sig = lambda x: 1 / (1 + np.exp(-x))

EXPECTED = {
    # D: -log D(x) - log(1 - D(G(z)))
    "non_saturating": (np.mean(-np.log(sig(R))) + np.mean(-np.log(1 - sig(F))),
                       np.mean(-np.log(sig(F)))),
    "minimax": (np.mean(-np.log(sig(R))) + np.mean(-np.log(1 - sig(F))),
                np.mean(np.log(1 - sig(F)))),
    "hinge": (np.mean(np.maximum(0, 1 - R)) + np.mean(np.maximum(0, 1 + F)), -np.mean(F)),
    "wasserstein": (np.mean(F) - np.mean(R), -np.mean(F)),
    "least_squares": (0.5 * np.mean((R - 1) ** 2) + 0.5 * np.mean(F ** 2),
                      0.5 * np.mean((F - 1) ** 2)),
    "relativistic": (np.mean(-np.log(sig(R - F))), np.mean(-np.log(sig(F - R)))),
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_loss_values(name):
  loss = losses.get_loss(name)
  d_expected, g_expected = EXPECTED[name]
  np.testing.assert_allclose(loss.d(R, F), d_expected, rtol=1e-5)
  np.testing.assert_allclose(loss.g(R, F), g_expected, rtol=1e-5)


def test_every_loss_is_tested():
  assert set(losses.LOSSES) == set(EXPECTED)


def test_ns_loss_is_stable_for_large_logits():
  loss = losses.get_loss("non_saturating")
  big = np.array([200.0], np.float32)
  assert np.isfinite(loss.d(-big, big)) and np.isfinite(loss.g(-big, -big))
  np.testing.assert_allclose(loss.g(big, -big), 200.0, rtol=1e-5)


def test_unknown_loss_names_valid_ones():
  with pytest.raises(ValueError, match="hinge"):
    losses.get_loss("nope")
