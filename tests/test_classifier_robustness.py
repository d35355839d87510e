"""experiments/classifier_robustness.py: the blur, and the clean row against the shipped record."""
import numpy as np
import pytest

from tests.util import load_experiment_script


@pytest.fixture(scope="module")
def rob():
  return load_experiment_script("classifier_robustness")


def test_blur_of_one_pixel_is_the_gaussian_kernel(rob):
  x = -np.ones((1, 15, 15, 1), np.float32)
  x[0, 7, 7, 0] = 1.0                                                # one pixel, 2 above background
  sigma = 1.2
  out = rob.blur(x, sigma)[0, :, :, 0] + 1.0                         # [15, 15], background 0
  g = np.exp(-0.5 * (np.arange(-7, 8) / sigma) ** 2)
  g[np.abs(np.arange(-7, 8)) > np.ceil(3 * sigma)] = 0               # the kernel's support
  g /= g.sum()
  np.testing.assert_allclose(out, 2.0 * np.outer(g, g), atol=1e-6)
  assert out.sum() == pytest.approx(2.0, rel=1e-5)                   # mass kept off the border


def test_clean_row_is_the_shipped_held_out_accuracy(rob):
  from jaxgan.metrics.classifier import shipped_accuracy
  rows = rob.main([])
  assert rows[0]["corruption"] == "clean"
  assert rows[0]["accuracy"] == pytest.approx(shipped_accuracy()["test_accuracy"], abs=1e-9)
  assert all(abs(sum(r["class_freq"]) - 1) < 0.01 for r in rows)
  assert all(r["accuracy"] < rows[0]["accuracy"] + 1e-9 for r in rows[1:])  # damage never helps
