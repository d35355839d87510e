"""experiments/loss_penalty_fid.py: the loss x penalty FID table, on tiny runs of 4 steps."""
import json
import math
import shlex
from pathlib import Path

import pytest

from jaxgan import config as config_lib
from tests.util import load_experiment_script

# 8x8 digits (fewer real images to embed than mnist5k), 16-unit MLPs, samples from G itself
# (after 4 steps an EMA G would still be the initial G of every cell)
TINY = ["--no-progress", "--steps", "4", "--num", "100", "--config.data.name=digits",
        "--config.batch_size=16", "--config.model.g_hidden=(16,)", "--config.model.d_hidden=(16,)",
        "--config.model.latent_dim=8", "--config.num_sample_images=4", "--config.ema_decay=0"]


@pytest.fixture(scope="module")
def table():
  return load_experiment_script("loss_penalty_fid")


@pytest.fixture
def calls(table, monkeypatch):
  """Counts the trainings and evals the script starts."""
  n = dict(train=0, eval=0)
  train, evaluate = table.train, table.evaluate_run
  def counted(name, fn):
    def wrapper(*a, **kw):
      n[name] += 1
      return fn(*a, **kw)
    return wrapper
  monkeypatch.setattr(table, "train", counted("train", train))
  monkeypatch.setattr(table, "evaluate_run", counted("eval", evaluate))
  return n


def test_cells_are_recorded_with_their_commands_and_not_redone(table, calls, tmp_path):
  wd, out, md = tmp_path / "runs", tmp_path / "table.json", tmp_path / "table.md"
  argv = ["--workdir", str(wd), "--only", "hinge/none,least_squares/wgan_gp", "--out", str(out),
          "--markdown", str(md), *TINY]
  res = table.main(argv)
  assert calls == dict(train=2, eval=2)
  assert json.loads(out.read_text()) == res
  assert sorted(res["cells"]) == ["hinge/none", "least_squares/wgan_gp"]
  assert len(res["missing"]) == len(table.LOSSES) * len(table.PENALTIES) - 2
  env = res["environment"]
  assert env["steps"] == 4 and env["num"] == 100 and env["jax"] and "--only" in env["command"]
  for key, weight in [("hinge/none", 0.0), ("least_squares/wgan_gp", 10.0)]:
    cell = res["cells"][key]
    assert cell["status"] == "ok" and cell["diverged"] is False
    assert cell["penalty_weight"] == weight and cell["steps"] == 4
    assert all(math.isfinite(cell[k]) for k in table.METRICS + ("d_loss", "g_loss"))
    assert cell["train_seconds"] > 0 and cell["train_start_step"] == 0
    assert cell["eval"]["num_samples"] == 100 and cell["eval"]["step"] == 4
    assert cell["fid"] == cell["eval"]["fid"]
    # the recorded train command rebuilds the cell's config exactly
    overrides = [a[len("--config."):] for a in shlex.split(cell["commands"]["train"])
                 if a.startswith("--config.")]
    want = config_lib.apply_overrides(config_lib.load_config_file("mnist_mlp"), overrides)
    got = config_lib.config_from_json((Path(cell["workdir"]) / "config.json").read_text())
    assert config_lib.config_diff(got, want) == [] and got.steps == 4
    assert cell["commands"]["eval"] == f"jaxgan eval --workdir {cell['workdir']} --num 100"
  assert res["cells"]["hinge/none"]["fid"] != res["cells"]["least_squares/wgan_gp"]["fid"]
  text = md.read_text()
  assert f"| hinge | {res['cells']['hinge/none']['fid']:.2f} | - | - | - |" in text
  assert text.count("\n| ") == 2 + len(table.LOSSES) + 2 + 2      # headers, FID rows, 2 cells

  # a re-run (here of one cell) trains and evaluates nothing, and still shows both cells
  again = table.main([*argv[:2], "--only", "hinge/none", *argv[4:]])
  assert calls == dict(train=2, eval=2)
  assert again["cells"] == res["cells"]
  # a cell trained but not evaluated (killed in between) is evaluated, not retrained
  (Path(res["cells"]["hinge/none"]["workdir"]) / "eval" / "step_000004_num100_seed0.json").unlink()
  third = table.main(argv)
  assert calls == dict(train=2, eval=3)
  assert third["cells"]["hinge/none"]["fid"] == pytest.approx(res["cells"]["hinge/none"]["fid"])


def test_a_non_finite_run_is_recorded_not_raised(table, calls, tmp_path):
  argv = ["--workdir", str(tmp_path), "--only", "wasserstein/none", *TINY,
          "--config.optim.d.lr=1e30", "--config.optim.g.lr=1e30"]
  cell = table.main(argv)["cells"]["wasserstein/none"]
  assert cell["status"] == "non_finite" and cell["diverged"] is True
  assert 1 <= cell["non_finite_step"] <= 4 and "non-finite" in cell["error"]
  assert cell["fid"] is None and cell["eval"] is None and calls == dict(train=1, eval=0)
  table.main(argv)                                     # recorded: not trained again
  assert calls == dict(train=1, eval=0)
  assert f"NaN (step {cell['non_finite_step']})" in table.markdown(
      {"wasserstein/none": cell}, dict(num=100, steps=4, command="c", date="d", jax="j", data="x",
                                       device="cpu"))


def test_bad_arguments_are_refused(table, tmp_path):
  with pytest.raises(config_lib.ConfigError, match="the table sets loss"):
    table.main(["--workdir", str(tmp_path), "--config.loss=hinge"])
  with pytest.raises(config_lib.ConfigError, match="expected LOSS/PENALTY"):
    table.main(["--workdir", str(tmp_path), "--only", "hinge/dropout"])
  with pytest.raises(config_lib.ConfigError, match="unknown config key"):
    table.main(["--workdir", str(tmp_path), "--config.model.nope=1"])
