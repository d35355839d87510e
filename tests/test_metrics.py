"""Sample-quality metrics against references: scipy's sqrtm, pytorch-fid's FID, an exact SVD
route, direct O(n^2) loops, closed forms and hand-built point sets with known answers."""
import warnings

import jax
import numpy as np
import pytest
import scipy.linalg

from jaxgan.metrics import scores
from tests import util


def _random_factor(rng, d, rank, tiny=0.0):
  """F [d, rank (+ d)] with covariance S = F F^T = A A^T / rank + tiny I."""
  f = rng.normal(size=(d, rank)) / np.sqrt(rank)
  return np.concatenate([f, np.sqrt(tiny) * np.eye(d)], 1) if tiny else f


def _scipy_frechet(mu1, s1, mu2, s2):
  """The usual reference (pytorch-fid): scipy.linalg.sqrtm of the product, real part."""
  covmean = scipy.linalg.sqrtm(s1 @ s2)
  diff = mu1 - mu2
  return diff @ diff + np.trace(s1) + np.trace(s2) - 2.0 * np.trace(covmean).real


def _pytorch_fid(x1, x2, eps=1e-6):
  """pytorch-fid 0.3.0 on two feature sets: its statistics (np.mean, np.cov) and its
  calculate_frechet_distance, line for line (sqrtm's `disp=False` only added an error
  estimate, deprecated since scipy 1.16 and left out here)."""
  mu1, mu2 = np.mean(x1, axis=0), np.mean(x2, axis=0)
  sigma1, sigma2 = np.cov(x1, rowvar=False), np.cov(x2, rowvar=False)
  diff = mu1 - mu2
  with warnings.catch_warnings():
    warnings.simplefilter("ignore", scipy.linalg.LinAlgWarning)     # "Matrix is singular"
    covmean = scipy.linalg.sqrtm(sigma1.dot(sigma2))
    if not np.isfinite(covmean).all():
      offset = np.eye(sigma1.shape[0]) * eps
      covmean = scipy.linalg.sqrtm((sigma1 + offset).dot(sigma2 + offset))
  if np.iscomplexobj(covmean):
    if not np.allclose(np.diagonal(covmean).imag, 0, atol=1e-3):
      raise ValueError(f"Imaginary component {np.max(np.abs(covmean.imag))}")
    covmean = covmean.real
  return diff.dot(diff) + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covmean)


def _exact_fid(x1, x2):
  """FID of two feature sets to round-off, from the thin SVDs of the centred features.

  With X = U diag(s) V^T (centred, [N, D]) and S = X^T X / (N - 1), the eigenvalues of S1 S2
  are the squared singular values of X1 X2^T = U1 (diag(s1) V1^T V2 diag(s2)) U2^T, so
  tr (S1 S2)^(1/2) = ||diag(s1) V1^T V2 diag(s2)||_* / sqrt((N1 - 1)(N2 - 1)), and
  tr S = ||s||^2 / (N - 1). No covariance is formed; jaxgan's route is a QR, not this SVD.
  """
  (n1, _), (n2, _) = x1.shape, x2.shape
  _, s1, v1 = np.linalg.svd(x1 - x1.mean(0), full_matrices=False)
  _, s2, v2 = np.linalg.svd(x2 - x2.mean(0), full_matrices=False)
  cross = s1[:, None] * (v1 @ v2.T) * s2[None, :]
  tr_sqrt = np.linalg.svd(cross, compute_uv=False).sum() / np.sqrt((n1 - 1) * (n2 - 1))
  diff = x1.mean(0) - x2.mean(0)
  return diff @ diff + s1 @ s1 / (n1 - 1) + s2 @ s2 / (n2 - 1) - 2.0 * tr_sqrt


def _decaying_feature_sets(d, n1, n2, power, seed=0):
  """Feature sets with the decaying spectra of Inception pool features (issue 30):
  relu(3 Z F^T + 0.2), Z ~ N(0, I), F = Q diag(i^-power) for a random orthogonal Q; the second
  set's F mixes 0.95 Q + 0.05 Q'. Rounded to float32, as network features are."""
  rng = np.random.default_rng(seed)
  q1, _ = np.linalg.qr(rng.normal(size=(d, d)))
  q2, _ = np.linalg.qr(rng.normal(size=(d, d)))
  s = np.arange(1, d + 1) ** -power
  f1, f2 = q1 * s, (0.95 * q1 + 0.05 * q2) * s
  x1 = np.maximum(rng.normal(size=(n1, d)) @ f1.T * 3 + 0.2, 0)
  x2 = np.maximum(rng.normal(size=(n2, d)) @ f2.T * 3 + 0.2, 0)
  return x1.astype(np.float32).astype(np.float64), x2.astype(np.float32).astype(np.float64)


# --------------------------------------------------------------------------------- Frechet
@pytest.mark.parametrize("d,rank1,rank2,tiny", [
    (16, 16, 16, 0.0),     # full rank
    (32, 64, 40, 0.0),     # full rank, more samples than dims
    (20, 5, 20, 0.0),      # one rank-deficient
    (20, 3, 7, 0.0),       # both rank-deficient (the N < D case of small sample sets)
    (24, 24, 4, 1e-10),    # tiny eigenvalues
])
def test_frechet_matches_scipy_sqrtm(d, rank1, rank2, tiny):
  rng = np.random.default_rng(d * 100 + rank1 + rank2)
  f1, f2 = _random_factor(rng, d, rank1, tiny), _random_factor(rng, d, rank2, tiny)
  s1, s2 = f1 @ f1.T, f2 @ f2.T
  mu1, mu2 = rng.normal(size=d), rng.normal(size=d)
  got = scores.frechet_distance(mu1, s1, mu2, s2)
  np.testing.assert_allclose(got, _scipy_frechet(mu1, s1, mu2, s2), rtol=1e-5, atol=1e-5)
  # Exact reference: S1 S2 = F1 (F1^T F2) F2^T is similar to (F1^T F2)(F1^T F2)^T, so
  # tr (S1 S2)^(1/2) is the sum of singular values of F1^T F2 (scipy is off by ~1e-6 when
  # the covariances are singular; this is not).
  nuclear = np.linalg.svd(f1.T @ f2, compute_uv=False).sum()
  np.testing.assert_allclose(scores.trace_sqrt_product(s1, s2), nuclear, rtol=1e-10, atol=1e-7)


def test_frechet_commuting_near_singular_closed_form():
  """S1, S2 with the same eigenvectors: tr sqrt(S1 S2) = sum_i sqrt(a_i b_i), exactly, with
  eigenvalues spanning 0, 1e-14 .. 10 (where sqrtm of the product is ill-conditioned)."""
  rng = np.random.default_rng(0)
  d = 30
  q, _ = np.linalg.qr(rng.normal(size=(d, d)))
  a = np.concatenate([np.zeros(5), np.logspace(-14, 1, d - 5)])
  b = rng.permutation(np.concatenate([np.zeros(3), np.logspace(-12, 0.5, d - 3)]))
  s1, s2 = (q * a) @ q.T, (q * b) @ q.T
  np.testing.assert_allclose(scores.trace_sqrt_product(s1, s2), np.sum(np.sqrt(a * b)),
                             rtol=0, atol=1e-6)
  mu = rng.normal(size=d)
  want = np.sum((np.sqrt(a) - np.sqrt(b)) ** 2)                     # FD of commuting Gaussians
  np.testing.assert_allclose(scores.frechet_distance(mu, s1, mu, s2), want, rtol=0, atol=2e-6)


def test_frechet_of_identical_singular_sets_is_zero():
  rng = np.random.default_rng(1)
  x = rng.normal(size=(10, 64))                                     # N < D: covariance of rank 9
  value = scores.fid_from_features(x, x)
  assert 0.0 <= value < 1e-10
  y = x + np.array([3.0] + [0.0] * 63)                               # shifted: FD = 3^2
  np.testing.assert_allclose(scores.fid_from_features(x, y), 9.0, atol=1e-10)


# The old route (sqrt(S1) by eigh, then the eigenvalues of sqrt(S1) S2 sqrt(S1) with those
# below D eps max zeroed) was off by 4.2e-3, 1.0e-3, 3.7e-4, 7.6e-5 and 1.5e-2 (relative) here.
DECAYING = [
    pytest.param(512, 2000, 2000, 1.5, id="D512-i^-1.5"),           # issue 30's, at half size
    pytest.param(256, 4000, 4000, 2.0, id="D256-i^-2"),
    pytest.param(512, 300, 300, 1.5, id="D512-N300<D"),            # covariances of rank 299
    pytest.param(512, 300, 200, 1.5, id="D512-N300,200<D"),
    pytest.param(1024, 4000, 4000, 1.5, id="D1024-i^-1.5", marks=pytest.mark.slow),  # the issue's
]


@pytest.mark.parametrize("d,n1,n2,power", DECAYING)
def test_fid_of_decaying_spectra_matches_exact_and_pytorch_fid(d, n1, n2, power):
  x1, x2 = _decaying_feature_sets(d, n1, n2, power)
  exact, got = _exact_fid(x1, x2), scores.fid_from_features(x1, x2)
  np.testing.assert_allclose(got, exact, rtol=1e-9)
  # Precomputed statistics (frechet_distance on covariances, factored by eigh) as well.
  stats = scores.frechet_distance(*scores.feature_stats(x1), *scores.feature_stats(x2))
  np.testing.assert_allclose(stats, exact, rtol=1e-9)
  # pytorch-fid agrees to 1e-7 where N > D. With N < D, S1 S2 is singular and scipy's sqrtm of it
  # is off by sqrt(eps)-sized amounts: 1.5e-5 and 1.9e-5 relative here with scipy 1.17; older
  # scipy (1.11) returns imaginary parts of 1e6..1e9 and pytorch-fid raises.
  try:
    reference = _pytorch_fid(x1, x2)
  except ValueError as e:
    pytest.skip(f"pytorch-fid has no value here with scipy {scipy.__version__}: {e}")
  np.testing.assert_allclose(got, reference, rtol=1e-6 if min(n1, n2) > d else 1e-4)


def test_feature_factor_is_a_covariance_factor():
  x = np.random.default_rng(2).normal(size=(7, 12)) * np.arange(1, 13)
  for f in (x, x[:5, :3]):
    mu, a = scores.feature_factor(f)
    assert a.shape == (min(f.shape), f.shape[1])
    np.testing.assert_allclose(mu, f.mean(0), rtol=1e-12)
    np.testing.assert_allclose(a.T @ a, np.cov(f, rowvar=False), rtol=1e-10, atol=1e-10)
  with pytest.raises(ValueError, match=r"shape mismatch"):
    scores.frechet_distance_from_factors(np.zeros(3), np.eye(3), np.zeros(3), np.eye(4))


def test_frechet_bad_shapes_are_refused():
  with pytest.raises(ValueError, match="shape mismatch"):
    scores.frechet_distance(np.zeros(3), np.eye(3), np.zeros(4), np.eye(4))
  with pytest.raises(ValueError, match=r"\[N, D\]"):
    scores.fid_from_features(np.zeros(5), np.zeros((5, 2)))
  with pytest.raises(ValueError, match="NaN"):
    scores.fid_from_features(np.full((5, 2), np.nan), np.zeros((5, 2)))


# -------------------------------------------------------------------------------------- KID
def _mmd2_loops(x, y):
  """Direct O(n^2) unbiased MMD^2 with k(a, b) = (a.b / d + 1)^3."""
  d = x.shape[1]
  k = lambda a, b: (np.dot(a, b) / d + 1.0) ** 3
  n, m = len(x), len(y)
  xx = sum(k(x[i], x[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
  yy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
  xy = sum(k(x[i], y[j]) for i in range(n) for j in range(m)) / (n * m)
  return xx + yy - 2 * xy


def test_mmd2_matches_loops():
  rng = np.random.default_rng(2)
  x, y = rng.normal(size=(17, 5)), rng.normal(0.5, 1.2, size=(23, 5))
  np.testing.assert_allclose(scores.mmd2_unbiased(x, y), _mmd2_loops(x, y), rtol=1e-10)


def test_kid_subsets():
  rng = np.random.default_rng(3)
  x, y = rng.normal(size=(30, 4)), rng.normal(1.0, 1.0, size=(30, 4))
  # One subset of the whole set is a permutation of it: the full-set estimate, std 0.
  mean, std = scores.kid(x, y, num_subsets=1, subset_size=30)
  np.testing.assert_allclose(mean, _mmd2_loops(x, y), rtol=1e-10)
  assert std == 0.0
  # Subsets of 10: the mean of the per-subset estimates, drawn reproducibly.
  r = np.random.default_rng(7)
  want = [_mmd2_loops(x[r.choice(30, 10, replace=False)], y[r.choice(30, 10, replace=False)])
          for _ in range(5)]
  mean, std = scores.kid(x, y, num_subsets=5, subset_size=10, seed=7)
  np.testing.assert_allclose([mean, std], [np.mean(want), np.std(want)], rtol=1e-10)
  # Unbiased: same-distribution sets give values around 0 (negative ones included).
  a, b = rng.normal(size=(400, 4)), rng.normal(size=(400, 4))
  same, _ = scores.kid(a, b, num_subsets=20, subset_size=100)
  far, _ = scores.kid(a, b + 1.0, num_subsets=20, subset_size=100)
  assert abs(same) < 0.05 < far


# ----------------------------------------------------------- precision/recall, density/coverage
def test_identical_sets():
  x = np.random.default_rng(4).normal(size=(50, 3))
  assert scores.precision_recall(x, x) == (1.0, 1.0)
  density, coverage = scores.density_coverage(x, x, k=3)
  assert coverage == 1.0
  # Each real ball holds its own centre and its k nearest neighbours (no ties): (k + 1) / k.
  np.testing.assert_allclose(density, 4 / 3)


def test_disjoint_far_sets():
  rng = np.random.default_rng(5)
  x, y = rng.normal(size=(40, 3)), rng.normal(size=(40, 3)) + 100.0
  assert scores.precision_recall(x, y) == (0.0, 0.0)
  assert scores.density_coverage(x, y) == (0.0, 0.0)


def test_hand_checked_example():
  """Real points on a line at 0, 1, 2, 10 (k=1 radii: 1, 1, 1, 8); fakes at 0.5, 5, 30.

  precision: 0.5 is within 1 of 0; 5 is within 8 of 10; 30 is in no ball -> 2/3.
  fake k=1 radii: 4.5, 4.5, 25 -> recall: 0, 1, 2 within 4.5 of 0.5; 10 within 25 of 30 -> 1.
  density: 0.5 lies in the balls of 0 and 1 (2), 5 in the ball of 10 (1), 30 in none -> 3/(1*3).
  coverage: balls of 0, 1 and 10 hold a fake, the ball of 2 (radius 1) holds none -> 3/4.
  """
  real = np.array([[0.0], [1.0], [2.0], [10.0]])
  fake = np.array([[0.5], [5.0], [30.0]])
  np.testing.assert_array_equal(scores.knn_radii(real, 1, chunk=3), [1.0, 1.0, 1.0, 8.0])
  np.testing.assert_array_equal(scores.knn_radii(real, 2, chunk=1), [2.0, 1.0, 2.0, 9.0])
  p, r = scores.precision_recall(real, fake, k=1)
  np.testing.assert_allclose([p, r], [2 / 3, 1.0])
  d, c = scores.density_coverage(real, fake, k=1)
  np.testing.assert_allclose([d, c], [1.0, 0.75])
  with pytest.raises(ValueError, match="k must be in"):
    scores.precision_recall(real, fake, k=3)                         # fake has only 3 points


# ------------------------------------------------------------------------ Inception Score
def test_inception_score_known_distributions():
  c = 10
  labels = np.arange(1000) % c
  confident = 100.0 * np.eye(c)[labels]                             # one-hot, balanced
  mean, std = scores.inception_score(confident, num_splits=1)
  np.testing.assert_allclose(mean, c, rtol=1e-6)
  assert std == 0.0
  # Sorted by class: each of the 10 (shuffled) splits still sees about all classes.
  mean, std = scores.inception_score(100.0 * np.eye(c)[np.sort(labels)], num_splits=10)
  assert 9.0 < mean <= 10.0 and std < 0.5
  same = np.tile(np.random.default_rng(6).normal(size=(1, c)), (100, 1))
  np.testing.assert_allclose(scores.inception_score(same, num_splits=1)[0], 1.0, rtol=1e-12)
  # Two equiprobable classes, each prediction (0.9, 0.1) or (0.1, 0.9): exp(KL) by hand.
  logits = np.log(np.array([[0.9, 0.1], [0.1, 0.9]] * 50))
  kl = 0.9 * np.log(0.9 / 0.5) + 0.1 * np.log(0.1 / 0.5)
  np.testing.assert_allclose(scores.inception_score(logits, num_splits=1)[0], np.exp(kl))


def test_class_coverage():
  out = scores.class_coverage(np.array([0, 0, 1, 3]), num_classes=4)
  assert out["classes_covered"] == 3
  p = np.array([0.5, 0.25, 0.25])
  np.testing.assert_allclose(out["class_kl"], np.sum(p * np.log(p * 4)))
  with pytest.raises(ValueError, match="labels must lie"):
    scores.class_coverage(np.array([4]), num_classes=4)


# ---------------------------------------------------------------------- feature extractors
def test_shipped_classifier_is_accurate_on_held_out_digits():
  from jaxgan.data import load_embedded_images, load_embedded_labels
  from jaxgan.metrics import classifier
  x, y = load_embedded_images("mnist5k"), load_embedded_labels("mnist5k")
  train_idx, test_idx = classifier.holdout_split(y)
  assert len(test_idx) == 1000 and len(np.intersect1d(train_idx, test_idx)) == 0
  assert np.all(np.bincount(y[test_idx]) == 100)
  extractor = classifier.load_mnist_classifier()
  feats, logits = extractor.features_and_logits(x[test_idx])
  assert feats.shape == (1000, 128) and logits.shape == (1000, 10)
  accuracy = np.mean(np.argmax(logits, 1) == y[test_idx])
  record = classifier.shipped_accuracy()
  assert accuracy >= 0.97
  assert abs(accuracy - record["test_accuracy"]) <= 0.002          # the README's number
  # Batching and padding change nothing: 7 images in batches of 3 (padded to 9).
  small = classifier.FeatureExtractor("c", extractor.module, extractor.variables, batch_size=3)
  np.testing.assert_allclose(small.features(x[test_idx[:7]]), feats[:7], rtol=1e-5, atol=1e-5)


@pytest.mark.slow
def test_classifier_training_function_tiny_run(tmp_path):
  from jaxgan.data import load_embedded_images, load_embedded_labels
  from jaxgan.metrics import classifier
  script = util.load_experiment_script("train_mnist_classifier")
  x, y = load_embedded_images("mnist5k")[::10], load_embedded_labels("mnist5k")[::10]  # 500
  variables = script.train_classifier(x, y, steps=60, batch_size=32, lr=3e-3)
  classifier.save_classifier(tmp_path / "clf", variables)
  extractor = classifier.load_mnist_classifier(tmp_path / "clf")
  assert script.accuracy(extractor, x, y) > 0.6                     # chance is 0.1
  untrained = classifier.init_variables(classifier.MNISTClassifier(), jax.random.key(0))
  base = classifier.FeatureExtractor("c", classifier.MNISTClassifier(), untrained)
  assert script.accuracy(base, x, y) < 0.3


def test_classifier_missing_checkpoint_is_a_clear_error(tmp_path):
  from jaxgan.metrics import classifier
  with pytest.raises(FileNotFoundError, match="train_mnist_classifier.py"):
    classifier.load_mnist_classifier(tmp_path / "nope")


def _torch_state_dict(variables):
  """The PyTorch layout of `variables` under pytorch-fid's names (what the .pth holds)."""
  import flax
  from jaxgan.metrics import inception
  state = {}
  for path, w in flax.traverse_util.flatten_dict(variables).items():
    w = np.asarray(w)
    if path[-1] == "kernel":
      w = w.transpose(3, 2, 0, 1) if w.ndim == 4 else w.T
    state[inception.torch_name(path)] = w
    if path[-1] == "mean":
      state[inception.torch_name(path).replace("running_mean", "num_batches_tracked")] = np.int64(0)
  return state


def test_inception_weights_from_torch_state_dict(tmp_path):
  from jaxgan.metrics import inception
  variables = inception.random_variables(seed=1)
  state = _torch_state_dict(variables)
  # The PyTorch names and shapes of torchvision's Inception3 (FID head: 1008 classes).
  assert state["Conv2d_1a_3x3.conv.weight"].shape == (32, 3, 3, 3)
  assert state["Mixed_5b.branch_pool.conv.weight"].shape == (32, 192, 1, 1)
  assert state["Mixed_6e.branch7x7dbl_5.conv.weight"].shape == (192, 192, 1, 7)
  assert state["Mixed_7b.branch3x3dbl_1.conv.weight"].shape == (448, 1280, 1, 1)
  assert state["Mixed_7c.branch_pool.conv.weight"].shape == (192, 2048, 1, 1)
  assert state["Mixed_7c.branch3x3_2b.bn.running_var"].shape == (384,)
  assert state["fc.weight"].shape == (1008, 2048) and state["fc.bias"].shape == (1008,)
  assert sum(np.size(v) for k, v in state.items() if "num_batches" not in k) == 23_885_392
  converted = inception.variables_from_torch(dict(state, **{"AuxLogits.fc.weight": np.zeros(1)}))
  util.assert_trees_equal(converted, variables)
  inception.save_npz(tmp_path / "w.npz", converted)
  loaded = inception.load_fid_inception(tmp_path / "w.npz")
  util.assert_trees_equal(loaded.variables, variables)

  bad = dict(state)
  del bad["Mixed_6a.branch3x3.bn.running_mean"]
  bad["fc.weight"] = bad["fc.weight"][:1000]
  bad["Mixed_8.conv.weight"] = np.zeros(1)
  with pytest.raises(ValueError) as e:
    inception.variables_from_torch(bad)
  assert "missing Mixed_6a.branch3x3.bn.running_mean" in str(e.value)
  assert "fc.weight: shape (1000, 2048)" in str(e.value)
  assert "unexpected keys: Mixed_8.conv.weight" in str(e.value)
  with pytest.raises(FileNotFoundError, match="convert_fid_inception.py"):
    inception.load_fid_inception(tmp_path / "missing.npz")
  np.savez(tmp_path / "other.npz", x=np.zeros(3))
  with pytest.raises(ValueError, match="does not hold FID Inception-v3"):
    inception.load_fid_inception(tmp_path / "other.npz")


@pytest.mark.slow
def test_fid_inception_shapes_and_determinism():
  from jaxgan.metrics import inception
  ext = inception.FeatureExtractor("inc", inception.FIDInceptionV3(),
                                   inception.random_variables(seed=0), batch_size=2)
  rng = np.random.default_rng(0)
  gray = rng.uniform(-1, 1, (3, 28, 28, 1)).astype(np.float32)
  f, y = ext.features_and_logits(gray[:2])
  assert f.shape == (2, 2048) and y.shape == (2, 1008)
  assert np.all(np.isfinite(f)) and np.all(f >= 0) and np.all(np.isfinite(y))   # pooled ReLUs
  assert not np.allclose(f[0], f[1])
  f2, y2 = ext.features_and_logits(gray[:2])
  np.testing.assert_array_equal(f, f2)
  np.testing.assert_array_equal(y, y2)
  # Gray input is the RGB image with equal channels; an odd N is padded, not recompiled.
  f3 = ext.features(np.repeat(gray, 3, axis=-1))
  np.testing.assert_allclose(f3[:2], f, rtol=1e-4, atol=1e-5)
  assert f3.shape == (3, 2048)


def test_inception_blocks_match_pytorch():
  """Mixed_5b (FIDInceptionA: avg pool without padded cells) and Mixed_7c (FIDInceptionE_2:
  max pool) against the same blocks written with PyTorch ops and the converted weights.
  Checks the weight layout, padding, pooling and concatenation order. Needs torch (the
  `bench` extra); skipped without it."""
  torch = pytest.importorskip("torch")
  import flax
  import jax.numpy as jnp
  F = torch.nn.functional
  from jaxgan.metrics import inception

  rng = np.random.default_rng(0)

  def state_of(block, x_shape):
    """Random variables of `block` (positive BatchNorm scales and variances), in both layouts."""
    shapes = flax.traverse_util.flatten_dict(flax.core.unfreeze(
        jax.eval_shape(block.init, jax.random.key(0), jnp.zeros(x_shape))))
    flat = {}
    for k, v in shapes.items():
      w = rng.normal(0.0, 0.2, v.shape).astype(np.float32)
      flat[k] = np.abs(w) + 0.5 if k[-1] in ("scale", "var") else w
    variables = flax.traverse_util.unflatten_dict(flat)
    return variables, _torch_state_dict(variables)

  def conv(sd, name, x, stride=1, padding=0):
    t = lambda k: torch.tensor(sd[f"{name}.{k}"])
    x = F.conv2d(x, t("conv.weight"), stride=stride, padding=padding)
    x = F.batch_norm(x, t("bn.running_mean"), t("bn.running_var"), t("bn.weight"),
                     t("bn.bias"), eps=1e-3)
    return F.relu(x)

  def block_a(sd, x):
    b1 = conv(sd, "branch1x1", x)
    b5 = conv(sd, "branch5x5_2", conv(sd, "branch5x5_1", x), padding=2)
    b3 = conv(sd, "branch3x3dbl_1", x)
    b3 = conv(sd, "branch3x3dbl_3", conv(sd, "branch3x3dbl_2", b3, padding=1), padding=1)
    bp = conv(sd, "branch_pool", F.avg_pool2d(x, 3, 1, 1, count_include_pad=False))
    return torch.cat([b1, b5, b3, bp], 1)

  def block_e_max(sd, x):
    b1 = conv(sd, "branch1x1", x)
    b3 = conv(sd, "branch3x3_1", x)
    b3 = torch.cat([conv(sd, "branch3x3_2a", b3, padding=(0, 1)),
                    conv(sd, "branch3x3_2b", b3, padding=(1, 0))], 1)
    bd = conv(sd, "branch3x3dbl_2", conv(sd, "branch3x3dbl_1", x), padding=1)
    bd = torch.cat([conv(sd, "branch3x3dbl_3a", bd, padding=(0, 1)),
                    conv(sd, "branch3x3dbl_3b", bd, padding=(1, 0))], 1)
    bp = conv(sd, "branch_pool", F.max_pool2d(x, 3, 1, 1))
    return torch.cat([b1, b3, bd, bp], 1)

  for block, reference, shape in [(inception.InceptionA(32), block_a, (2, 5, 5, 192)),
                                  (inception.InceptionE(max_pool=True), block_e_max, (1, 4, 3, 64))]:
    variables, sd = state_of(block, shape)
    x = rng.normal(size=shape).astype(np.float32)
    got = np.asarray(block.apply(variables, jnp.asarray(x)))
    want = reference(sd, torch.tensor(x.transpose(0, 3, 1, 2))).numpy().transpose(0, 2, 3, 1)
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
