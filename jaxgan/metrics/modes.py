"""Mode-collapse metrics: the 2D mixtures (grid25, ring8) and Stacked MNIST.

2D mixtures, as in VEEGAN (Srivastava et al., 2017, Sec. 5.1) and PacGAN (Lin et al., 2018,
Sec. 4), on 2,500 samples:

  high quality   a sample within 3 std (the mixture's component std) of its nearest mean
  hq_percent     100 * (# high-quality samples) / (# samples)
  modes          # modes that are the nearest mean of at least one high-quality sample
  kl             reverse KL of the mode histogram to uniform:
                   p_k = (# high-quality samples nearest to mode k) / (# high-quality samples)
                   KL(p || uniform) = sum_k p_k log(p_k K) = log K - H(p)     (natural log)
                 with 0 log 0 = 0, so a missing mode adds nothing and a single covered mode
                 gives log K (3.22 for K=25, 2.08 for K=8); inf when no sample is high quality.

Stacked MNIST (VEEGAN Sec. 5.2, PacGAN Sec. 4; 1,000 modes): each of the 3 channels is
classified as a digit by a single-digit classifier; the mode is 100 d_R + 10 d_G + d_B.

  modes          # distinct modes among the samples
  kl             KL(p || uniform over 1,000) of the mode histogram of all samples (natural log)
  kl_channels    sum over the 3 channels of KL(digit histogram of the channel || uniform over
                 10): the part of `kl` that unbalanced digits explain (for independent channels
                 kl = kl_channels + the channels' mutual information). A generator whose blurry
                 digits the classifier reads as 3s and 8s has a large kl_channels with every
                 mode covered.

Everything here is plain NumPy on host arrays: the metrics run once per evaluation.
"""
from typing import Callable

import numpy as np

from jaxgan.data import MIXTURE_STD, mixture_means

NUM_MIXTURE_SAMPLES = 2500
NUM_STACKED_MODES = 1000
NUM_STACKED_SAMPLES = 26000


def kl_to_uniform(counts: np.ndarray) -> float:
  """KL(p || uniform) in nats, for the histogram `counts` [K] (p = counts / sum)."""
  counts = np.asarray(counts, np.float64)
  total = counts.sum()
  if total <= 0:
    return float("inf")
  p = counts[counts > 0] / total
  return float(np.sum(p * np.log(p * counts.shape[0])))


def mode_counts(x: np.ndarray, means: np.ndarray, std: float):
  """(counts [K] of high-quality samples per nearest mode, high-quality mask [N]).

  x: samples [N, 2]; means: [K, 2]; a sample is high quality when its distance to the
  nearest mean is at most 3 * std. Non-finite samples are never high quality.
  """
  x = np.asarray(x, np.float64)
  means = np.asarray(means, np.float64)
  if x.ndim != 2 or x.shape[1] != means.shape[1]:
    raise ValueError(f"samples must have shape [N, {means.shape[1]}], got {x.shape}")
  d2 = np.sum((x[:, None, :] - means[None, :, :]) ** 2, axis=-1)    # [N, K]
  d2 = np.where(np.isfinite(d2), d2, np.inf)
  nearest = np.argmin(d2, axis=1)                                    # [N]
  hq = np.min(d2, axis=1) <= (3.0 * std) ** 2                        # [N]
  counts = np.bincount(nearest[hq], minlength=means.shape[0])        # [K]
  return counts, hq


def mixture_metrics(x: np.ndarray, name: str) -> dict:
  """Modes covered, % high-quality samples and reverse KL for the mixture `name` (grid25 or
  ring8); x: generated samples [N, 2] (the benchmark uses N = 2,500)."""
  means = mixture_means(name)
  counts, hq = mode_counts(x, means, MIXTURE_STD[name])
  return dict(modes=int(np.sum(counts > 0)), num_modes=int(means.shape[0]),
              hq_percent=float(100.0 * hq.mean()) if hq.size else 0.0,
              kl=kl_to_uniform(counts), num_samples=int(x.shape[0]))


def stacked_modes(images: np.ndarray, classify: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
  """Mode index 100 d_0 + 10 d_1 + d_2 of each stacked image [N, H, W, 3] -> int [N].

  `classify` maps single-digit images [M, H, W, 1] to digit labels [M] in 0..9.
  """
  images = np.asarray(images)
  if images.ndim != 4 or images.shape[-1] != 3:
    raise ValueError(f"stacked MNIST images must have shape [N, H, W, 3], got {images.shape}")
  n, h, w, _ = images.shape
  digits = images.transpose(0, 3, 1, 2).reshape(n * 3, h, w, 1)      # [3N, H, W, 1]
  labels = np.asarray(classify(digits)).reshape(n, 3).astype(np.int64)
  if labels.min() < 0 or labels.max() > 9:
    raise ValueError(f"the classifier must return digits 0..9, got values in "
                     f"[{labels.min()}, {labels.max()}]")
  return labels @ np.array([100, 10, 1])                             # [N]


def stacked_mnist_metrics(images: np.ndarray, classify: Callable[[np.ndarray], np.ndarray]) -> dict:
  """Modes covered (of 1,000), KL(p || uniform) and the channels' digit KLs of generated
  stacked digits [N, H, W, 3]."""
  mode = stacked_modes(images, classify)                             # [N]
  counts = np.bincount(mode, minlength=NUM_STACKED_MODES)
  digits = (mode[:, None] // np.array([100, 10, 1])) % 10            # [N, 3]
  kl_channels = sum(kl_to_uniform(np.bincount(digits[:, c], minlength=10)) for c in range(3))
  return dict(modes=int(np.sum(counts > 0)), num_modes=NUM_STACKED_MODES,
              kl=kl_to_uniform(counts), kl_channels=float(kl_channels),
              num_samples=int(images.shape[0]))
