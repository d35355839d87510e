"""Sample-quality metrics on feature sets (host NumPy, float64): Frechet distance, KID,
precision/recall, density/coverage, Inception Score, class coverage.

  frechet_distance   ||mu1 - mu2||^2 + tr(S1 + S2 - 2 (S1 S2)^(1/2))   (FID on Inception
                     features; Heusel et al., 2017). With S1 = A1^T A1 and S2 = A2^T A2, the
                     eigenvalues of S1 S2 are the squared singular values of A1 A2^T, so
                     tr (S1 S2)^(1/2) = ||A1 A2^T||_* (the nuclear norm): one SVD of a product
                     of square-root factors, never a square root of a product of covariances.
                     fid_from_features takes A = R / sqrt(N - 1) from a QR of the centred
                     features (backward stable: S itself is never formed), frechet_distance
                     A = sqrt(w) V^T from eigh(S). Accurate to round-off for singular and
                     ill-conditioned covariances (no complex parts, no eps offset, unlike
                     scipy.linalg.sqrtm(S1 @ S2)).
  kid                unbiased MMD^2 with k(x, y) = (x.y / d + 1)^3, averaged over random
                     subsets (Binkowski et al., 2018): (mean, std) over subsets.
  precision_recall   Kynkaanniemi et al., 2019: a sample is inside the other set's manifold
                     when it lies within the k-NN radius of one of that set's points.
  density_coverage   Naeem et al., 2020, with k-NN balls around the real points only.
  inception_score    exp(E_x KL(p(y|x) || p(y))) (Salimans et al., 2016), (mean, std) over
                     splits.
  class_coverage     # predicted classes present and KL(p || uniform) of the class histogram.

k-NN radii exclude the point itself (the k-th nearest *other* point), as in the papers' code.
"""
from typing import Optional

import numpy as np

from jaxgan.metrics.modes import kl_to_uniform


def _as_features(x, name: str) -> np.ndarray:
  x = np.asarray(x, np.float64)
  if x.ndim != 2:
    raise ValueError(f"{name}: expected features of shape [N, D], got shape {x.shape}")
  if not np.all(np.isfinite(x)):
    raise ValueError(f"{name}: features contain NaN or Inf")
  return x


# ------------------------------------------------------------------------------- Frechet
def feature_stats(features) -> tuple[np.ndarray, np.ndarray]:
  """(mean [D], covariance [D, D]) of features [N, D] (unbiased covariance, N >= 2)."""
  f = _as_features(features, "features")
  if f.shape[0] < 2:
    raise ValueError(f"need at least 2 feature vectors for a covariance, got {f.shape[0]}")
  return f.mean(0), np.cov(f, rowvar=False).reshape(f.shape[1], f.shape[1])


def feature_factor(features) -> tuple[np.ndarray, np.ndarray]:
  """(mean [D], A [K, D]) of features [N, D] with A^T A = their unbiased covariance, K = min(N, D).

  A = R / sqrt(N - 1) for the QR decomposition X - mean = Q R (Householder, backward stable).
  A's singular values, the square roots of the covariance's eigenvalues, come out to an
  absolute error ~eps ||A||: forming the covariance X^T X / (N - 1) would square both the
  condition number and the error's reach (eps ||S|| in the eigenvalues is sqrt(eps ||S||) in
  their square roots).
  """
  f = _as_features(features, "features")
  if f.shape[0] < 2:
    raise ValueError(f"need at least 2 feature vectors for a covariance, got {f.shape[0]}")
  mean = f.mean(0)
  return mean, np.linalg.qr(f - mean, mode="r") / np.sqrt(f.shape[0] - 1)


def _psd_eigenvalues(w: np.ndarray) -> np.ndarray:
  """Eigenvalues of a PSD matrix with round-off removed: those below D * eps * max|w| (noise
  of the eigensolver, negative ones included) become 0, so null directions add no sqrt(eps)."""
  return np.where(w > w.shape[0] * np.finfo(w.dtype).eps * np.max(np.abs(w), initial=0.0), w, 0.0)


def _psd_factor(s: np.ndarray) -> np.ndarray:
  """A [D, D] with A^T A = S for a symmetric PSD S: sqrt(w) V^T from S = V diag(w) V^T.

  The threshold of _psd_eigenvalues applies to S's own eigenvalues, whose round-off is
  ~D eps ||S||; it would not do on a product such as sqrt(S1) S2 sqrt(S1), whose spectrum spans
  the product of the two condition numbers, so that true eigenvalues fall below it.
  """
  w, v = np.linalg.eigh((s + s.T) / 2)
  return np.sqrt(_psd_eigenvalues(w))[:, None] * v.T


def _trace_sqrt_of_factors(a1: np.ndarray, a2: np.ndarray) -> float:
  """tr((A1^T A1 A2^T A2)^(1/2)) = ||A1 A2^T||_* for A1 [K1, D], A2 [K2, D].

  S1 S2 = A1^T (A1 A2^T A2) has the nonzero eigenvalues of (A1 A2^T A2) A1^T = M M^T with
  M = A1 A2^T, i.e. the squared singular values of M; their square roots sum to ||M||_*. The
  SVD gives each singular value to ~eps ||M||, where an eigensolver on S1 S2 (or on
  sqrt(S1) S2 sqrt(S1)) gives their squares to ~eps ||M||^2.
  """
  return float(np.sum(np.linalg.svd(a1 @ a2.T, compute_uv=False)))


def trace_sqrt_product(s1, s2) -> float:
  """tr((S1 S2)^(1/2)) for symmetric PSD S1, S2, as ||A1 A2^T||_* with S = A^T A from eigh."""
  return _trace_sqrt_of_factors(_psd_factor(np.asarray(s1, np.float64)),
                                _psd_factor(np.asarray(s2, np.float64)))


def _check_shapes(mu1, m1, mu2, m2, rows: str) -> None:
  """Refuse anything but mu [D] and m [rows, D] for both sets ('D': covariances)."""
  d = mu1.shape[0]
  ok = lambda m: m.ndim == 2 and m.shape[1] == d and (rows != "D" or m.shape[0] == d)
  if mu2.shape != (d,) or not ok(m1) or not ok(m2):
    name = "S" if rows == "D" else "A"
    raise ValueError(f"shape mismatch: mu1 {mu1.shape}, {name}1 {m1.shape}, mu2 {mu2.shape}, "
                     f"{name}2 {m2.shape}; expected [D] and [{rows}, D] for both")


def _frechet(diff: np.ndarray, tr1: float, tr2: float, tr_sqrt: float) -> float:
  return float(max(diff @ diff + tr1 + tr2 - 2.0 * tr_sqrt, 0.0))


def frechet_distance(mu1, s1, mu2, s2) -> float:
  """Frechet distance between the Gaussians N(mu1, S1) and N(mu2, S2)."""
  mu1, mu2 = np.asarray(mu1, np.float64), np.asarray(mu2, np.float64)
  s1, s2 = np.asarray(s1, np.float64), np.asarray(s2, np.float64)
  _check_shapes(mu1, s1, mu2, s2, rows="D")
  return _frechet(mu1 - mu2, np.trace(s1), np.trace(s2), trace_sqrt_product(s1, s2))


def frechet_distance_from_factors(mu1, a1, mu2, a2) -> float:
  """Frechet distance between N(mu1, A1^T A1) and N(mu2, A2^T A2), A1 [K1, D], A2 [K2, D]
  (e.g. from feature_factor): tr(S) = ||A||_F^2, tr (S1 S2)^(1/2) = ||A1 A2^T||_*."""
  mu1, mu2 = np.asarray(mu1, np.float64), np.asarray(mu2, np.float64)
  a1, a2 = np.asarray(a1, np.float64), np.asarray(a2, np.float64)
  _check_shapes(mu1, a1, mu2, a2, rows="K")
  return _frechet(mu1 - mu2, np.sum(a1 * a1), np.sum(a2 * a2), _trace_sqrt_of_factors(a1, a2))


def fid_from_features(real, fake) -> float:
  """Frechet distance between the Gaussian fits of two feature sets [N, D], [M, D], from the
  QR factors of the centred features (feature_factor), never from their covariances."""
  return frechet_distance_from_factors(*feature_factor(real), *feature_factor(fake))


# ----------------------------------------------------------------------------------- KID
def polynomial_kernel(x: np.ndarray, y: np.ndarray) -> np.ndarray:
  """k(x, y) = (x.y / d + 1)^3 for rows of x [N, D], y [M, D] -> [N, M]."""
  t = x @ y.T / x.shape[1] + 1.0
  return t * t * t                                                   # (faster than t ** 3)


def mmd2_unbiased(x, y) -> float:
  """Unbiased MMD^2 estimate between samples x [N, D] and y [M, D] (N, M >= 2)."""
  x, y = _as_features(x, "x"), _as_features(y, "y")
  n, m = x.shape[0], y.shape[0]
  kxx, kyy, kxy = polynomial_kernel(x, x), polynomial_kernel(y, y), polynomial_kernel(x, y)
  return float((kxx.sum() - np.trace(kxx)) / (n * (n - 1))
               + (kyy.sum() - np.trace(kyy)) / (m * (m - 1)) - 2.0 * kxy.mean())


def kid(real, fake, num_subsets: int = 100, subset_size: int = 1000,
        seed: int = 0) -> tuple[float, float]:
  """Kernel Inception Distance: (mean, std) of the unbiased MMD^2 over `num_subsets` random
  subsets of `subset_size` points drawn without replacement from each set (the size is capped
  at the smaller set)."""
  real, fake = _as_features(real, "real"), _as_features(fake, "fake")
  if real.shape[1] != fake.shape[1]:
    raise ValueError(f"feature sizes differ: real {real.shape}, fake {fake.shape}")
  size = min(subset_size, real.shape[0], fake.shape[0])
  if size < 2 or num_subsets < 1:
    raise ValueError(f"KID needs subsets of >= 2 points and >= 1 subset, got size {size}, "
                     f"num_subsets {num_subsets}")
  rng = np.random.default_rng(seed)
  values = [mmd2_unbiased(real[rng.choice(real.shape[0], size, replace=False)],
                          fake[rng.choice(fake.shape[0], size, replace=False)])
            for _ in range(num_subsets)]
  return float(np.mean(values)), float(np.std(values))


# ------------------------------------------------------------------- k-NN manifold metrics
def _pairwise_distances(a: np.ndarray, b: np.ndarray, chunk: int = 2048) -> np.ndarray:
  """Euclidean distances [N, M] between rows of a [N, D] and b [M, D], in row chunks."""
  b2 = np.sum(b * b, axis=1)
  out = np.empty((a.shape[0], b.shape[0]))
  for i in range(0, a.shape[0], chunk):
    ai = a[i:i + chunk]
    d2 = np.sum(ai * ai, axis=1)[:, None] + b2[None, :] - 2.0 * ai @ b.T
    out[i:i + chunk] = np.sqrt(np.clip(d2, 0.0, None))
  return out


def knn_radii(x: np.ndarray, k: int, chunk: int = 1024) -> np.ndarray:
  """Distance of each row of x [N, D] to its k-th nearest other row -> [N]."""
  if not 1 <= k < x.shape[0]:
    raise ValueError(f"k must be in [1, N-1] = [1, {x.shape[0] - 1}], got {k}")
  radii = np.empty(x.shape[0])
  for i in range(0, x.shape[0], chunk):                              # [chunk, N] at a time
    d = _pairwise_distances(x[i:i + chunk], x)
    radii[i:i + chunk] = np.partition(d, k, axis=1)[:, k]            # index 0: the point itself
  return radii


def precision_recall(real, fake, k: int = 3,
                     real_radii: Optional[np.ndarray] = None) -> tuple[float, float]:
  """Improved precision and recall (Kynkaanniemi et al., 2019).

  precision: fraction of fake samples within the k-NN radius of at least one real sample;
  recall: fraction of real samples within the k-NN radius of at least one fake sample.
  `real_radii` may pass `knn_radii(real, k)` when the real set is reused.
  """
  real, fake = _as_features(real, "real"), _as_features(fake, "fake")
  real_radii = knn_radii(real, k) if real_radii is None else real_radii
  d = _pairwise_distances(real, fake)                                # [N, M]
  precision = np.mean(np.any(d <= real_radii[:, None], axis=0))
  recall = np.mean(np.any(d <= knn_radii(fake, k)[None, :], axis=1))
  return float(precision), float(recall)


def density_coverage(real, fake, k: int = 3,
                     real_radii: Optional[np.ndarray] = None) -> tuple[float, float]:
  """Density and coverage (Naeem et al., 2020).

  density = 1/(k M) sum_j #{i : fake_j in B(real_i, r_i)}; coverage = fraction of real points
  whose ball B(real_i, r_i) holds at least one fake point; r_i is real_i's k-NN radius.
  """
  real, fake = _as_features(real, "real"), _as_features(fake, "fake")
  real_radii = knn_radii(real, k) if real_radii is None else real_radii
  inside = _pairwise_distances(real, fake) <= real_radii[:, None]  # [N, M]
  return float(inside.sum() / (k * fake.shape[0])), float(np.mean(np.any(inside, axis=1)))


# ----------------------------------------------------------------------- Inception Score
def _log_softmax(logits: np.ndarray) -> np.ndarray:
  z = logits - logits.max(axis=1, keepdims=True)
  return z - np.log(np.sum(np.exp(z), axis=1, keepdims=True))


def inception_score(logits, num_splits: int = 10, seed: int = 0) -> tuple[float, float]:
  """exp(E_x KL(p(y|x) || p(y))) from classifier logits [N, C]; (mean, std) over splits
  (10 as in Salimans et al.). Rows are split after a seeded shuffle, so that a set sorted by
  class (e.g. real data) is not scored split by split as one class each."""
  logits = _as_features(logits, "logits")
  if num_splits < 1 or logits.shape[0] < num_splits:
    raise ValueError(f"num_splits must be in [1, N={logits.shape[0]}], got {num_splits}")
  logits = logits[np.random.default_rng(seed).permutation(logits.shape[0])]
  scores = []
  for part in np.array_split(_log_softmax(logits), num_splits):
    p = np.exp(part)                                                 # p(y|x) [n, C]
    log_py = np.log(p.mean(axis=0))                                  # log p(y) [C]
    kl = np.sum(p * (part - log_py), axis=1)                         # [n]
    scores.append(np.exp(kl.mean()))
  return float(np.mean(scores)), float(np.std(scores))


def class_coverage(labels, num_classes: int) -> dict:
  """Classes present among predicted labels [N] and KL(p || uniform) of their histogram."""
  labels = np.asarray(labels).astype(np.int64)
  if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
    raise ValueError(f"labels must lie in [0, {num_classes}), got [{labels.min()}, {labels.max()}]")
  counts = np.bincount(labels, minlength=num_classes)
  return dict(classes_covered=int(np.sum(counts > 0)), class_kl=kl_to_uniform(counts))


def all_scores(real_features, fake_features, fake_logits: Optional[np.ndarray] = None,
               k: int = 3, kid_subsets: int = 100, kid_subset_size: int = 1000,
               real_radii: Optional[np.ndarray] = None) -> dict:
  """Every feature-set metric above, as one flat dict of floats (`real_radii`: the real
  set's k-NN radii, if already computed)."""
  if real_radii is None:
    real_radii = knn_radii(_as_features(real_features, "real"), k)
  precision, recall = precision_recall(real_features, fake_features, k, real_radii)
  density, coverage = density_coverage(real_features, fake_features, k, real_radii)
  kid_mean, kid_std = kid(real_features, fake_features, kid_subsets, kid_subset_size)
  out = dict(fid=fid_from_features(real_features, fake_features), kid=kid_mean, kid_std=kid_std,
             precision=precision, recall=recall, density=density, coverage=coverage)
  if fake_logits is not None:
    out["inception_score"], out["inception_score_std"] = inception_score(fake_logits)
  return out


# ------------------------------------------------------------------ class-conditional runs

def conditional_scores(real_features, real_labels, fake_features, fake_labels,
                       num_classes: int, fake_predictions=None) -> dict:
  """Metrics of a class-conditional generator, from features [N, D] / [M, D] with their
  labels [N] / [M] (the fakes' labels: the classes they were generated for):

    intra_fid          the mean over classes of FID(real of class c, fakes of class c), and
    intra_fid_<c>      each class's (classes with fewer than 2 real or 2 fake examples are left
                       out, and counted in intra_fid_classes)
    cond_accuracy      with `fake_predictions` (a classifier's labels [M] of the fakes): the
    cond_accuracy_<c>  fraction of fakes classified as the class they were generated for, over
                       all fakes and per class
  """
  real_features = _as_features(real_features, "real")
  fake_features = _as_features(fake_features, "fake")
  real_labels, fake_labels = np.asarray(real_labels), np.asarray(fake_labels)
  if real_labels.shape != (len(real_features),) or fake_labels.shape != (len(fake_features),):
    raise ValueError(f"labels must be [N] and [M] for features {real_features.shape} and "
                     f"{fake_features.shape}; got {real_labels.shape} and {fake_labels.shape}")
  out, fids = {}, []
  for c in range(num_classes):
    r, f = real_features[real_labels == c], fake_features[fake_labels == c]
    if len(r) >= 2 and len(f) >= 2:
      out[f"intra_fid_{c}"] = fid_from_features(r, f)
      fids.append(out[f"intra_fid_{c}"])
  out["intra_fid"] = float(np.mean(fids)) if fids else float("nan")
  out["intra_fid_classes"] = len(fids)
  if fake_predictions is not None:
    hit = np.asarray(fake_predictions) == fake_labels                 # [M]
    out["cond_accuracy"] = float(np.mean(hit))
    for c in range(num_classes):
      if np.any(fake_labels == c):
        out[f"cond_accuracy_{c}"] = float(np.mean(hit[fake_labels == c]))
  return out
