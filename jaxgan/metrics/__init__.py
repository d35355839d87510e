"""Evaluation metrics.

  scores      FID / Frechet distance, KID, precision/recall, density/coverage, Inception Score,
              class coverage, on feature sets (host NumPy, float64)
  modes       mode-collapse metrics for grid25/ring8 and Stacked MNIST
  features    `FeatureExtractor`: one interface for the embedding networks
  classifier  the shipped MNIST classifier (`load_mnist_classifier`)
  inception   the FID Inception-v3 in Flax (`load_fid_inception`, user-provided weights)
"""
from jaxgan.metrics import classifier, features, inception, modes, scores
from jaxgan.metrics.classifier import load_mnist_classifier
from jaxgan.metrics.features import FeatureExtractor
from jaxgan.metrics.inception import load_fid_inception
