"""The `jaxgan` command line, run as a user runs it (a subprocess)."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from jaxgan import config as config_lib
from jaxgan.cli import main
from jaxgan.models import build_models

REPO = Path(__file__).resolve().parents[1]
SMALL = ["--config.steps=30", "--config.batch_size=16", "--config.log_every=10",
         "--config.sample_every=15", "--config.checkpoint_every=15",
         "--config.model.g_hidden=(32,32)", "--config.model.d_hidden=(32,32)"]


def jaxgan(*args, cwd=REPO):
  env = dict(os.environ, XLA_FLAGS="", JAX_PLATFORMS="cpu")
  return subprocess.run([sys.executable, "-m", "jaxgan", *args], cwd=cwd, env=env,
                        capture_output=True, text=True, timeout=300)


@pytest.mark.slow
def test_train_then_sample(tmp_path):
  wd = tmp_path / "run"
  r = jaxgan("train", "--workdir", str(wd), "--no-progress", *SMALL)
  assert r.returncode == 0, r.stderr
  assert sorted(p.name for p in (wd / "samples").iterdir()) == ["step_000015.png", "step_000030.png"]
  rows = [json.loads(l) for l in (wd / "metrics.jsonl").read_text().splitlines()]
  assert [r["step"] for r in rows] == [10, 20, 30]
  assert {"d_loss", "g_loss", "penalty", "images_per_sec"} <= set(rows[0])
  assert any((wd / "tensorboard").iterdir())
  assert (wd / "checkpoints" / "30").is_dir()

  r = jaxgan("sample", "--workdir", str(wd), "--num", "10", "--seed", "1",
             "--out", str(tmp_path / "s.npy"))
  assert r.returncode == 0, r.stderr
  x = np.load(tmp_path / "s.npy")
  assert x.shape == (10, 28, 28, 1) and x.dtype == np.float32 and -1 <= x.min() and x.max() <= 1
  r = jaxgan("sample", "--workdir", str(wd), "--num", "9", "--out", str(tmp_path / "s.png"))
  assert r.returncode == 0, r.stderr
  assert Image.open(tmp_path / "s.png").size[0] > 0

  # Re-running with a larger `steps` continues from the checkpoint.
  r = jaxgan("train", "--workdir", str(wd), "--no-progress", *SMALL[1:], "--config.steps=45")
  assert r.returncode == 0, r.stderr
  assert "resumed" in r.stdout and "from step 30" in r.stdout
  assert (wd / "checkpoints" / "45").is_dir()


def test_unknown_config_key_lists_valid_keys(tmp_path, capsys):
  assert main(["train", "--workdir", str(tmp_path), "--config.stepz=3"]) == 2
  err = capsys.readouterr().err
  assert "unknown config key 'stepz'" in err and "steps" in err and "penalty.weight" in err
  assert not (tmp_path / "checkpoints").exists()


@pytest.mark.parametrize("override,match", [
    ("steps=ten", "expected a int"), ("model.spectral_norm=maybe", "boolean"),
    ("steps=1.5", "expected an int"), ("steps=0", "must be > 0"),
    ("model.d_minibatch_std=3", "d_minibatch_std must be 0 (off) or a group size >= 1 that "
                                "divides D's batch, batch_size / pack = 64; got 3"),
    ("model.g_out_conv=-1", "g_out_conv must be >= 0")])
def test_ill_typed_values_are_refused(tmp_path, capsys, override, match):
  assert main(["train", "--workdir", str(tmp_path), f"--config.{override}"]) == 2
  assert match in capsys.readouterr().err


@pytest.mark.parametrize("override,valid", [
    ("loss=hindge", "non_saturating, minimax, hinge"), ("penalty.name=r3", "none, r1, r2, wgan_gp"),
    ("model.name=resnet", "mlp, dcgan"), ("precision=fp16", "fp32, bf16"),
    ("model.out_activation=sigmoid", "tanh, none"),
    ("model.d_activation=gelu", "relu, leaky_relu"),
    ("model.name=dcgan model.upsample=bilinear", "transpose, subpixel")])
def test_unknown_choices_are_refused_with_the_valid_ones(tmp_path, capsys, override, valid):
  overrides = [f"--config.{o}" for o in override.split()]
  assert main(["train", "--workdir", str(tmp_path), *overrides]) == 2
  key, value = override.split()[-1].split("=")
  assert f"config.{key} = {value!r} is not one of: {valid}" in capsys.readouterr().err
  assert not (tmp_path / "checkpoints").exists()


@pytest.mark.parametrize("args,match", [
    (["--config", "experiments/ring8.py", "--config.model.g_out_conv=4"],
     "g_out_conv > 0 needs images [H, W, C] with even H and W; the data has shape (2,)"),
    (["--config.model.name=dcgan"],
     "model 'dcgan' needs 32x32 or 64x64 images; the data has shape (28, 28, 1)")])
def test_a_model_that_cannot_make_the_data_is_a_clear_error(tmp_path, capsys, args, match):
  assert main(["train", "--workdir", str(tmp_path), *args]) == 2
  assert match in capsys.readouterr().err
  assert not (tmp_path / "checkpoints").exists()


def test_missing_data_set_is_a_clear_error(tmp_path, capsys):
  code = main(["train", "--workdir", str(tmp_path), "--config.data.name=cifar10",
               f"--config.data.data_dir={tmp_path}"])
  assert code == 2
  assert "tfds build cifar10" in capsys.readouterr().err


def test_sample_refuses_an_unknown_output_format(tmp_path, capsys):
  assert main(["sample", "--workdir", str(tmp_path), "--out", str(tmp_path / "s.txt")]) == 2
  assert "--out must end in .npy or .png" in capsys.readouterr().err


def test_missing_config_file(capsys):
  assert main(["train", "--config", "experiments/nope.py"]) == 2
  assert "not found" in capsys.readouterr().err


def test_overrides_are_typed():
  c = config_lib.apply_overrides(config_lib.load_config_file(None),
                                 ["steps=7", "penalty.weight=0.5", "model.g_hidden=(8, 9)",
                                  "model.spectral_norm=true", "loss=hinge"])
  assert (c.steps, c.penalty.weight, c.model.g_hidden, c.model.spectral_norm, c.loss) == \
      (7, 0.5, (8, 9), True, "hinge")
  assert isinstance(c.penalty.weight, float)


@pytest.mark.parametrize("path", sorted(str(p.relative_to(REPO)) for p in (REPO / "experiments").glob("*.py")))
def test_every_experiment_config_builds(path):
  """Each config loads, documents its run command, and builds a state for its data."""
  import jax
  from jaxgan.data import make_source
  from jaxgan.state import create_state, spec_from_config
  text = (REPO / path).read_text()
  if "def get_config" not in text:
    pytest.skip("not a training config")
  assert "Run:" in text or "jaxgan " in text, f"{path} has no run command in its docstring"
  config = config_lib.apply_overrides(config_lib.load_config_file(path), [])
  config_lib.validate(config)
  source = make_source(config.data, config.batch_size, config.seed)
  spec = spec_from_config(config, source.shape, source.num_classes)
  jax.eval_shape(lambda: create_state(spec, jax.random.key(0), source.shape))


def test_lr_decay_schedule_and_its_validation():
  """optim.lr_decay = (start, end): lr until start, then linearly to 0 at end; bad pairs are
  refused; a run written before the key existed resumes as (0, 0)."""
  from jaxgan.state import learning_rate
  sched = learning_rate(1e-3, (10, 30))
  np.testing.assert_allclose([float(sched(s)) for s in (0, 10, 20, 30, 40)],
                             [1e-3, 1e-3, 5e-4, 0.0, 0.0], atol=1e-9)
  assert learning_rate(1e-3, (0, 0)) == 1e-3                         # constant: plain Adam
  base = config_lib.load_config_file(None)
  for bad in ("(30,10)", "(5,5)", "(1,2,3)"):
    with pytest.raises(config_lib.ConfigError, match="lr_decay"):
      config_lib.validate(config_lib.apply_overrides(base, [f"optim.lr_decay={bad}"]))
  old = config_lib.config_from_json(config_lib.config_to_json(base))
  del old.optim["lr_decay"]                                          # a config.json from before
  assert config_lib.config_diff(old, base) == []
  decayed = config_lib.apply_overrides(base, ["optim.lr_decay=(10,30)"])
  assert config_lib.config_diff(old, decayed) == ["optim.lr_decay: [0, 0] -> [10, 30]"]


def test_pack_must_divide_the_batch_and_old_runs_resume_unpacked():
  base = config_lib.load_config_file(None)                           # batch 64
  for bad in ("0", "3"):
    with pytest.raises(config_lib.ConfigError, match="pack must be >= 1 and divide batch_size"):
      config_lib.validate(config_lib.apply_overrides(base, [f"pack={bad}"]))
  config_lib.validate(config_lib.apply_overrides(base, ["pack=4"]))
  old = config_lib.config_from_json(config_lib.config_to_json(base))
  del old["pack"]                                                    # a config.json from before
  assert config_lib.config_diff(old, base) == []
  assert config_lib.config_diff(old, config_lib.apply_overrides(base, ["pack=2"])) == [
      "pack: 1 -> 2"]


def test_minibatch_std_group_must_divide_d_batch_and_old_runs_resume_without_it():
  base = config_lib.load_config_file(None)                           # batch 64
  packed = config_lib.apply_overrides(base, ["pack=2"])              # D batch 32
  with pytest.raises(config_lib.ConfigError, match="batch_size / pack = 32; got 64"):
    config_lib.validate(config_lib.apply_overrides(packed, ["model.d_minibatch_std=64"]))
  with pytest.raises(config_lib.ConfigError, match="d_minibatch_std must be 0"):
    config_lib.validate(config_lib.apply_overrides(base, ["model.d_minibatch_std=-1"]))
  config_lib.validate(config_lib.apply_overrides(packed, ["model.d_minibatch_std=32"]))
  old = config_lib.config_from_json(config_lib.config_to_json(base))
  del old.model["d_minibatch_std"]                                   # a config.json from before
  assert config_lib.config_diff(old, base) == []
  assert config_lib.config_diff(
      old, config_lib.apply_overrides(base, ["model.d_minibatch_std=8"])) == [
          "model.d_minibatch_std: 0 -> 8"]
  assert build_models(old.model, (28, 28, 1))[1].minibatch_std == 0
