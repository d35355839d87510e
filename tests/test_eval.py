"""`jaxgan eval` and the train loop's eval_every hook, on tiny trained runs."""
import json
import math

import numpy as np
import pytest
import tensorflow_datasets as tfds

from jaxgan import config as config_lib
from jaxgan.cli import main
from jaxgan.data import load_embedded_images
from jaxgan.metrics import classifier, scores
from jaxgan.runs import sample
from jaxgan.train import train

IMAGE_KEYS = {"fid", "kid", "kid_std", "precision", "recall", "density", "coverage",
              "inception_score", "inception_score_std", "classes_covered", "class_kl",
              "num_samples", "num_real", "step"}


def _run_json(capsys, argv):
  assert main(argv) == 0
  return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


@pytest.mark.slow
def test_eval_cli_on_tiny_mnist_run(tmp_path, capsys, mlp_config):
  mlp_config.eval_every, mlp_config.eval_num = 10, 200            # the train loop's hook
  wd = tmp_path / "run"
  train(mlp_config, wd, progress=False)
  hook_files = ["step_000010_num200_seed0.json", "step_000020_num200_seed0.json"]
  assert sorted(p.name for p in (wd / "eval").iterdir()) == hook_files
  hooked = json.loads((wd / "eval" / hook_files[1]).read_text())
  assert IMAGE_KEYS <= set(hooked) and hooked["num_samples"] == 200
  assert hooked["step"] == 20 and hooked["noise_seed"] == 0

  out = _run_json(capsys, ["eval", "--workdir", str(wd), "--num", "300", "--seed", "3"])
  assert IMAGE_KEYS <= set(out)
  assert all(isinstance(v, (int, float)) and math.isfinite(v)
             for k, v in out.items() if k != "features")
  assert out["step"] == 20 and out["num_samples"] == 300 and out["num_real"] == 5000
  assert out["noise_seed"] == 3
  assert 0 <= out["precision"] <= 1 and 0 <= out["recall"] <= 1 and 1 <= out["inception_score"]
  # each setting has its own file: the hook's result is not overwritten
  assert json.loads((wd / "eval" / "step_000020_num300_seed3.json").read_text()) == out
  assert json.loads((wd / "eval" / hook_files[1]).read_text()) == hooked

  # Reference: the same numbers from `jaxgan sample`'s output and the metric functions.
  x = sample(wd, 300, 3, tmp_path / "s.npy")
  clf = classifier.load_mnist_classifier()
  real = clf.features(load_embedded_images("mnist5k"))
  fake, logits = clf.features_and_logits(x)
  np.testing.assert_allclose(out["fid"], scores.fid_from_features(real, fake), rtol=1e-6)
  np.testing.assert_allclose([out["precision"], out["recall"]],
                             scores.precision_recall(real, fake), rtol=1e-6)
  np.testing.assert_allclose(out["inception_score"], scores.inception_score(logits)[0], rtol=1e-6)
  assert out["classes_covered"] == len(np.unique(np.argmax(logits, 1)))


def test_eval_cli_on_tiny_mixture_run(tmp_path, capsys, mlp_config):
  c = config_lib.apply_overrides(mlp_config, ["data.name=ring8", "model.out_activation=none",
                                              "checkpoint_every=10"])
  wd = tmp_path / "ring"
  train(c, wd, progress=False)
  out = _run_json(capsys, ["eval", "--workdir", str(wd)])
  assert {"modes", "num_modes", "hq_percent", "kl", "num_samples", "step"} <= set(out)
  assert out["num_samples"] == 2500 and out["num_modes"] == 8 and out["step"] == 20
  assert 0 <= out["modes"] <= 8 and 0 <= out["hq_percent"] <= 100
  assert json.loads((wd / "eval" / "step_000020.json").read_text()) == out  # the defaults
  assert out["noise_seed"] == 0
  # the defaults spelled out name the same file; any other setting its own
  assert _run_json(capsys, ["eval", "--workdir", str(wd), "--num", "2500", "--seed", "0"]) == out
  again = _run_json(capsys, ["eval", "--workdir", str(wd), "--seed", "1"])
  assert again["noise_seed"] == 1 and again["num_samples"] == 2500
  assert sorted(p.name for p in (wd / "eval").iterdir()) == ["step_000020.json",
                                                             "step_000020_num2500_seed1.json"]
  assert json.loads((wd / "eval" / "step_000020.json").read_text()) == out

  # --step: an earlier checkpoint, the metrics of `jaxgan sample --step`'s samples
  from jaxgan.metrics import modes
  early = _run_json(capsys, ["eval", "--workdir", str(wd), "--step", "10"])
  x = sample(wd, 2500, 0, tmp_path / "s.npy", step=10)
  assert early == dict(modes.mixture_metrics(x, "ring8"), step=10, noise_seed=0)
  assert not np.array_equal(x, sample(wd, 2500, 0, tmp_path / "t.npy"))  # not the latest's
  assert json.loads((wd / "eval" / "step_000010.json").read_text()) == early
  assert main(["sample", "--workdir", str(wd), "--num", "4", "--out", str(tmp_path / "s.png"),
               "--step", "15"]) == 1
  err = capsys.readouterr().err
  assert "no checkpoint of step 15" in err and "(its steps: 10, 20)" in err


def test_eval_errors_are_clear(tmp_path, capsys):
  assert main(["eval", "--workdir", str(tmp_path)]) == 2
  assert "holds no jaxgan run" in capsys.readouterr().err
  for override, match in [("eval_every=-1", "eval_every must be >= 0"),
                          ("eval_num=-5", "eval_num must be >= 0")]:
    assert main(["train", "--workdir", str(tmp_path / "x"), f"--config.{override}"]) == 2
    assert match in capsys.readouterr().err


@pytest.mark.slow
def test_eval_cli_on_tiny_stacked_mnist_run(tmp_path, capsys, mlp_config):
  from jaxgan.metrics import modes
  c = config_lib.apply_overrides(mlp_config, ["data.name=stacked_mnist", "checkpoint_every=20"])
  wd = tmp_path / "stacked"
  train(c, wd, progress=False)
  out = _run_json(capsys, ["eval", "--workdir", str(wd), "--num", "400"])
  x = sample(wd, 400, 0, tmp_path / "s.npy")                       # the same samples
  want = modes.stacked_mnist_metrics(x, classifier.load_mnist_classifier().predict)
  assert out == dict(want, step=20, noise_seed=0)
  assert out["num_modes"] == 1000 and 1 <= out["modes"] <= 400


def test_evaluator_refuses_classify_for_image_metrics(mlp_config):
  """`classify` stands in for the classifier's labels on Stacked MNIST only; the image metrics
  need its features."""
  from jaxgan.eval import Evaluator
  from jaxgan.state import spec_from_config
  meta = dict(name="mnist5k", shape=[28, 28, 1], value_range=[-1.0, 1.0])
  spec = spec_from_config(mlp_config, meta["shape"])
  with pytest.raises(ValueError, match="classify replaces only Stacked MNIST"):
    Evaluator(mlp_config, spec, meta, classify=lambda d: np.zeros(len(d), int))


@pytest.fixture(scope="module")
def inception_weights(tmp_path_factory):
  """Random FID Inception-v3 weights in the converter's .npz format."""
  from jaxgan.metrics import inception
  path = tmp_path_factory.mktemp("inception") / "w.npz"
  inception.save_npz(path, inception.random_variables(seed=0))
  return path


@pytest.mark.slow
def test_eval_with_inception_on_an_rgb_tfds_run(tmp_path, capsys, mlp_config, inception_weights):
  """An RGB run (TFDS cifar10, mock data) is scored in the FID Inception's features, by
  `jaxgan eval --inception` and by the train hook, against the reference: the metric functions
  on the same samples' and real images' features. Without the weights, RGB is refused."""
  from jaxgan.data import make_source
  from jaxgan.eval import _real_data
  from jaxgan.metrics.inception import load_fid_inception
  c = config_lib.apply_overrides(mlp_config, [
      "data.name=cifar10", "steps=10", "batch_size=8", "model.g_hidden=(16,)",
      "model.d_hidden=(16,)", "eval_every=10", "eval_num=16",
      f"eval_inception={inception_weights}"])
  wd = tmp_path / "rgb"
  with tfds.testing.mock_data(num_examples=40):
    train(c, wd, progress=False)                                  # the hook at step 10
    hooked = json.loads((wd / "eval" / "step_000010_num16_seed0_inception.json").read_text())
    out = _run_json(capsys, ["eval", "--workdir", str(wd), "--num", "16", "--inception",
                             str(inception_weights)])
    real = _real_data(make_source(c.data, c.batch_size, c.seed), 16)[0]
    assert main(["eval", "--workdir", str(wd), "--num", "16"]) == 2
    assert "need the FID Inception-v3 weights: --inception" in capsys.readouterr().err
  assert out == hooked                                      # the same samples, the same file
  assert out["features"] == "fid_inception" and out["num_samples"] == out["num_real"] == 16
  assert IMAGE_KEYS - {"classes_covered", "class_kl"} <= set(out)
  assert "classes_covered" not in out                     # ImageNet classes say little here
  ext = load_fid_inception(inception_weights, batch_size=16)
  fake, logits = ext.features_and_logits(sample(wd, 16, 0, tmp_path / "s.npy"))
  np.testing.assert_allclose(out["fid"], scores.fid_from_features(ext.features(real), fake),
                             rtol=1e-6)
  np.testing.assert_allclose(out["inception_score"], scores.inception_score(logits)[0],
                             rtol=1e-6)


def test_inception_settings_are_checked_before_training(tmp_path, capsys, inception_weights):
  """A missing or malformed weights file, and --inception on a run without image metrics, are
  clear errors; the train hook's file is checked before any step is trained."""
  wd = tmp_path / "run"
  assert main(["train", "--workdir", str(wd), "--config.eval_every=10",
               f"--config.eval_inception={tmp_path / 'missing.npz'}"]) == 2
  assert "no Inception weights at" in capsys.readouterr().err
  assert not list((wd / "checkpoints").glob("[0-9]*"))                 # nothing trained
  (tmp_path / "bad.npz").write_text("not an npz")
  ring = tmp_path / "ring"
  assert main(["train", "--workdir", str(ring), "--config.data.name=ring8",
               "--config.model.out_activation=none", "--config.steps=2",
               "--config.checkpoint_every=2", "--no-progress"]) == 0
  capsys.readouterr()
  assert main(["eval", "--workdir", str(ring), "--inception", str(inception_weights)]) == 2
  assert "--inception (FID Inception features) is for image runs" in capsys.readouterr().err
  assert main(["train", "--workdir", str(tmp_path / "x"), "--config.steps=10",
               "--config.eval_every=10", f"--config.eval_inception={tmp_path / 'bad.npz'}"]) == 2
  assert "is not an .npz of FID Inception-v3 variables" in capsys.readouterr().err


def test_real_images_are_the_same_in_every_process(mlp_config):
  """With several processes a source gives each its rows of a batch; the Evaluator's real
  images (for a TFDS set: the first `num` of the global batches) are those of the whole
  batches, so every process scores against the same reals."""
  from jaxgan.data import make_source
  from jaxgan.eval import Evaluator, _real_data
  from jaxgan.state import spec_from_config
  c = config_lib.apply_overrides(mlp_config, ["data.name=mnist", "batch_size=8"])
  meta = dict(name="mnist", shape=[28, 28, 1], value_range=[-1.0, 1.0])
  spec = spec_from_config(c, meta["shape"])
  with tfds.testing.mock_data(num_examples=40):
    whole = _real_data(make_source(c.data, 8, c.seed), 24)[0]                  # [24, 28, 28, 1]
    part = make_source(c.data, 8, c.seed, process_index=1, process_count=2)
    assert not np.array_equal(_real_data(part, 24)[0][:12], whole[:12])  # rows 4-7 of each
    evaluator = Evaluator(c, spec, meta, num=24, source=part)
  np.testing.assert_allclose(evaluator.real_features, evaluator.extractor.features(whole),
                             rtol=1e-6)
