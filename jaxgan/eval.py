"""Evaluation of a run: `jaxgan eval --workdir DIR [--num N] [--seed S] [--inception FILE]
[--step K]`, and every `eval_every` steps of `jaxgan train`. Results go to `DIR/eval/step_XXXXXX.json` at
the default number of samples and noise seed 0, else to `step_XXXXXX_num{N}_seed{S}.json`, with
`_inception` added in Inception features (`result_path`).

What is measured depends on the run's data:

  grid25, ring8        modes covered, % high-quality samples, reverse KL (metrics/modes.py)
                       on 2,500 samples
  stacked_mnist        modes covered (of 1,000) and KL to uniform, each channel classified by
                       the shipped MNIST classifier, on 26,000 samples
  1-channel images     against the run's real images (the 5,000 embedded digits for mnist5k,
                       also for a run on a data.limit subset of them),
  (MNIST-like)         on 5,000 samples, in the shipped MNIST classifier's 128-d features
                       (resized to 28x28): fid ('MNIST-5k FID, classifier features'), kid,
                       kid_std, precision, recall, density, coverage (k=3), inception_score
                       (its 10-class logits, 10 splits), classes_covered and class_kl
  with --inception     1- or 3-channel images, the same against the run's real images (a whole
                       embedded set, else --num images of the source) in the FID Inception-v3's
                       2048-d pool features (resized to 299x299): fid (the standard FID when
                       the weights are pytorch-fid's), kid, kid_std, precision, recall,
                       density, coverage, inception_score (its 1,008 logits)

A class-conditional run samples the classes in turn (sample i has class i mod C, so the
classes are balanced) and adds, for image data with labels: intra_fid (the mean over classes
of the FID between the real and the generated images of a class; intra_fid_<c> each) and, in
the MNIST classifier's features when the data has its 10 classes (label k the digit k),
cond_accuracy: the fraction of samples the classifier reads as the class they were generated
for (cond_accuracy_<c> per class). See `metrics.scores.conditional_scores`.

Samples come from the EMA generator when the run has one, for the fixed noise of `seed`.
`Evaluator` does the per-run work once (classifier, real features, the jitted generator), so
calling it on each new state during training (or on each member of a sweep, which share G's
architecture) costs only the samples and their metrics. Samples with a NaN/Inf are not scored:
the result is then {num_samples, non_finite_samples}.
"""
import functools
import json
import math
from pathlib import Path
from typing import Callable, Optional

import jax
import numpy as np
import threadpoolctl

from jaxgan import data as data_lib
from jaxgan.config import ConfigError
from jaxgan.metrics import modes, scores
from jaxgan.state import GANSpec, GANState, generate
from jaxgan.runs import draw_samples, load_run, sample_labels
from jaxgan.writers import write_atomic

NUM_IMAGE_SAMPLES = 5000
K = 3  # k-NN of precision/recall and density/coverage
NUM_SAMPLES = {"grid25": modes.NUM_MIXTURE_SAMPLES, "ring8": modes.NUM_MIXTURE_SAMPLES,
               "stacked_mnist": modes.NUM_STACKED_SAMPLES}


def _one_blas_thread():
  """NumPy's BLAS on one thread for the host metrics: beside XLA's thread pool, multi-threaded
  OpenBLAS on the KID's many small matmuls thrashed (35x slower measured on 2 cores), and the
  large ones lose little."""
  return threadpoolctl.threadpool_limits(limits=1, user_api="blas")


def _real_data(source: data_lib.Source, num: int) -> tuple[np.ndarray, Optional[np.ndarray]]:
  """The run's real images and their labels (None without labels): the whole in-memory set,
  else the first `num` examples of the source's batches (at most one epoch of a finite set)."""
  if source.examples is not None:
    return source.examples, source.labels
  num = min(num, source.num_examples or num)
  steps = math.ceil(num / source.batch_size)
  batches = [source.batch(i) for i in range(steps)]
  images = np.concatenate([np.asarray(b["image"]) for b in batches])[:num]
  if not source.num_classes:
    return images, None
  return images, np.concatenate([np.asarray(b["label"]) for b in batches])[:num]


class Evaluator:
  """`evaluator(state) -> {metric: float}` for the run described by (config, spec, meta).

  Image runs are scored in the features of the shipped MNIST classifier (1-channel images), or
  with `inception` (the path of FID Inception-v3 weights, see `metrics.inception`) in the FID
  Inception's pool features, for any 1- or 3-channel images.
  `classify` (digit images [M, H, W, 1] -> labels [M] in 0..9) labels the Stacked MNIST
  channels in place of the shipped MNIST classifier, which is then not loaded (tests inject a
  cheap one). Image metrics need the classifier's features, so they refuse a `classify`.
  """

  def __init__(self, config, spec: GANSpec, meta: dict, num: Optional[int] = None,
               seed: int = 0, source: Optional[data_lib.Source] = None,
               classify: Optional[Callable[[np.ndarray], np.ndarray]] = None,
               inception: Optional[str] = None):
    self.name, self.shape = meta["name"], tuple(meta["shape"])
    self.value_range = meta["value_range"]
    self.seed = seed
    self.inception = str(inception) if inception else None
    self._gen = jax.jit(functools.partial(generate, spec, use_ema=config.ema_decay > 0))
    self._latent_dim = spec.latent_dim
    self.num_classes = spec.num_classes
    self.real_labels = None
    if self.name in ("grid25", "ring8"):
      self.kind = "mixture"
    elif self.name == "stacked_mnist":
      self.kind = "stacked_mnist"
    elif len(self.shape) == 3 and self.shape[-1] in (1, 3):
      self.kind = "images"
    else:
      raise data_lib.DataError(
          f"no metrics for data {self.name!r} of shape {self.shape}: eval supports "
          f"grid25, ring8, stacked_mnist and 1- or 3-channel images")
    if self.inception and self.kind != "images":
      raise ConfigError(f"--inception (FID Inception features) is for image runs; {self.name} "
                        f"runs are scored by their mode metrics")
    if self.kind == "images" and self.shape[-1] == 3 and not self.inception:
      raise ConfigError(
          f"metrics of RGB images ({self.name}, {self.shape}) need the FID Inception-v3 "
          f"weights: --inception FILE.npz (train: --config.eval_inception=FILE.npz); how to "
          f"make the file: docs/evaluation.md")
    self.num = int(num or default_num(self.name))
    if self.num < 2:
      raise ConfigError(f"--num must be >= 2, got {self.num}")
    self.labels = sample_labels(self.num, self.num_classes)           # [num] or None
    if classify is not None and self.kind == "images":
      raise ValueError("classify replaces only Stacked MNIST's digit labels; the image metrics "
                       "need the shipped classifier's features (pass classify=None)")
    # the metric networks, loaded only where they are used
    from jaxgan.metrics.classifier import load_mnist_classifier
    self.classify = classify
    if self.kind == "stacked_mnist" and classify is None:
      self.classify = load_mnist_classifier().predict
    if self.kind == "images":
      self.extractor = (self._inception_extractor() if self.inception
                        else load_mnist_classifier())
      # every process reads the whole batches; a run on a data.limit subset is scored
      # against the whole set
      if source is None or source.process_count > 1 or config.data.get("limit", 0):
        source = data_lib.make_source(dict(config.data, limit=0), config.batch_size,
                                      config.seed)
      real, real_labels = _real_data(source, self.num)
      self.real_features = self.extractor.features(real)
      self.real_labels = real_labels if self.num_classes else None
      with _one_blas_thread():
        self.real_radii = scores.knn_radii(self.real_features, K)

  def _inception_extractor(self):
    from jaxgan.metrics.inception import load_fid_inception
    try:
      return load_fid_inception(self.inception, batch_size=min(50, self.num))
    except ValueError as e:                           # not an .npz of the Inception's variables
      raise ConfigError(f"--inception: {e}") from None

  def result_path(self, workdir, step: int) -> Path:
    """Where this evaluator's result for `step` is written (`result_path`)."""
    return result_path(workdir, step, self.name, self.num, self.seed, bool(self.inception))

  def record(self, step: int, metrics: dict) -> dict:
    """`metrics` as written: with the step and the noise seed of the samples."""
    return dict(metrics, step=step, noise_seed=self.seed)

  def samples(self, state: GANState) -> np.ndarray:
    return draw_samples(self._gen, state, self._latent_dim, self.num, self.seed, self.value_range,
                        self.labels)

  def __call__(self, state: GANState) -> dict:
    return self.score(self.samples(state))

  def score(self, x: np.ndarray) -> dict:
    """The metrics of samples `x` (as `samples` draws them)."""
    if not np.all(np.isfinite(x)):
      return dict(num_samples=self.num, non_finite_samples=int(np.sum(~np.isfinite(x))))
    if self.kind == "mixture":
      return modes.mixture_metrics(x, self.name)
    if self.kind == "stacked_mnist":
      return modes.stacked_mnist_metrics(x, self.classify)
    feats, logits = self.extractor.features_and_logits(x)
    with _one_blas_thread():
      out = scores.all_scores(self.real_features, feats, logits, K,
                              kid_subset_size=min(1000, self.num), real_radii=self.real_radii)
    if not self.inception:  # the digit classes; ImageNet's 1,008 say little about coverage
      out.update(scores.class_coverage(np.argmax(logits, 1), logits.shape[1]))
    if self.real_labels is not None:
      digits = not self.inception and self.num_classes == logits.shape[1]
      with _one_blas_thread():
        out.update(scores.conditional_scores(
            self.real_features, self.real_labels, feats, self.labels, self.num_classes,
            np.argmax(logits, 1) if digits else None))
    return dict(out, num_samples=self.num, num_real=int(self.real_features.shape[0]),
                features="fid_inception" if self.inception else "mnist_classifier")


def default_num(data_name: str) -> int:
  """The number of samples an eval of `data_name` draws by default."""
  return NUM_SAMPLES.get(data_name, NUM_IMAGE_SAMPLES)


def result_path(workdir, step: int, data_name: str, num: Optional[int] = None,
                seed: int = 0, inception: bool = False) -> Path:
  """Where the eval of `step` on `num` samples (None or 0: the data's default) of noise `seed`
  is written: `workdir/eval/step_XXXXXX.json` at the defaults (plain `jaxgan eval`, and the
  train loop's hook at its default eval_num), else `step_XXXXXX_num{N}_seed{S}.json`; an eval
  in FID Inception features adds `_inception`. So an eval at other settings never overwrites
  another one."""
  num = int(num or default_num(data_name))
  suffix = "" if (num, seed) == (default_num(data_name), 0) else f"_num{num}_seed{seed}"
  suffix += "_inception" if inception else ""
  return Path(workdir) / "eval" / f"step_{step:06d}{suffix}.json"


def write(path: Path, metrics: dict) -> Path:
  """Writes `metrics` as JSON to `path` (see `result_path`), whole or not at all; returns it."""
  path.parent.mkdir(parents=True, exist_ok=True)
  write_atomic(path, json.dumps(metrics, indent=2, sort_keys=True) + "\n")
  return path


def evaluate_run(workdir, num: Optional[int] = None, seed: int = 0,
                 inception: Optional[str] = None, step: Optional[int] = None) -> dict:
  """Metrics of the latest checkpoint of the run in `workdir` (or that of `step`), with its
  `step` and the `noise_seed`, also written to `result_path(...)`. `inception`: FID
  Inception-v3 weights (.npz) for image metrics in its features."""
  config, spec, state, meta = load_run(workdir, step)
  evaluator = Evaluator(config, spec, meta, num, seed, inception=inception)
  metrics = evaluator.record(int(state.step), evaluator(state))
  write(evaluator.result_path(workdir, int(state.step)), metrics)
  return metrics
