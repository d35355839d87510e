"""Seed populations: member i of one vmapped program equals the single run with seed i."""
import json
import logging
import shutil
import signal

import jax
import numpy as np
import pytest
from flax.traverse_util import flatten_dict

from jaxgan import config as config_lib
from jaxgan.checkpoint import Checkpoints
from jaxgan.eval import Evaluator
from jaxgan.sweep import EVAL_NOISE_SEED, members, summarize, sweep
from jaxgan.runs import load_run
from jaxgan.train import train
from tests.util import assert_trees_close, visible_scalars


def small_grid_config():
  c = config_lib.load_config_file("experiments/grid25.py")
  return config_lib.apply_overrides(c, [
      "steps=6", "batch_size=32", "log_every=3", "sample_every=6", "checkpoint_every=3",
      "num_sample_images=16", "model.latent_dim=4", "model.g_hidden=(16,16)",
      "model.d_hidden=(16,16)", "seed=5", "ema_decay=0.9", "penalty.every=2"])


@pytest.fixture
def grid_config():
  return small_grid_config()


@pytest.fixture(scope="module")
def seed_sweep(tmp_path_factory):
  """Seeds 5 and 6 of the small grid25 GAN, 6 steps, in one program."""
  workdir = tmp_path_factory.mktemp("seed_sweep")
  return workdir, sweep(small_grid_config(), workdir, seeds=2, progress=False)


def _state(workdir):
  return load_run(workdir)[2]


def test_member_equals_the_single_run_with_its_seed(seed_sweep, tmp_path):
  workdir, summary = seed_sweep
  member = workdir / "seed6"                     # the second member: seed 6, not the base seed
  assert json.loads((member / "config.json").read_text())["seed"] == 6
  want = train(config_lib.apply_overrides(small_grid_config(), ["seed=6"]), tmp_path / "single",
               progress=False)
  got = _state(member)
  assert int(got.step) == 6
  assert_trees_close(got, want, rtol=1e-4, atol=1e-5)
  rows = [json.loads(r) for r in (member / "metrics.jsonl").read_text().splitlines()]
  ref = [json.loads(r) for r in (tmp_path / "single" / "metrics.jsonl").read_text().splitlines()]
  assert [r["step"] for r in rows] == [r["step"] for r in ref] == [3, 6]
  for k in ("d_loss", "g_loss", "penalty"):
    np.testing.assert_allclose([r[k] for r in rows], [r[k] for r in ref], rtol=1e-4, atol=1e-6)
  assert (member / "samples" / "step_000006.png").exists()
  # different seeds are different GANs
  a = _state(workdir / "seed5")
  assert not np.allclose(jax.tree.leaves(a.g_params)[0], jax.tree.leaves(got.g_params)[0])


def test_summary_aggregates_the_members(seed_sweep):
  workdir, summary = seed_sweep
  agg = summary["aggregate"]["all"]
  assert agg["modes"]["n"] == 2 and agg["num_samples"]["mean"] == 2500
  per = [summary["members"][f"seed{s}"]["modes"] for s in (5, 6)]
  assert agg["modes"]["mean"] == pytest.approx(np.mean(per))
  assert agg["modes"]["std"] == pytest.approx(np.std(per, ddof=1))
  assert summary["members"]["seed5"]["checkpoint_step"] == 6
  assert agg["excluded"] == {} and summary["members"]["seed5"]["status"] == "ok"
  assert json.loads((workdir / "summary.json").read_text()) == summary


def test_summary_scores_with_the_evaluator_at_the_sweep_noise_seed(seed_sweep):
  """The summary's mode metrics are the Evaluator's, for the noise of EVAL_NOISE_SEED."""
  workdir, summary = seed_sweep
  config, spec, state, meta = load_run(workdir / "seed6")
  want = Evaluator(config, spec, meta, seed=EVAL_NOISE_SEED)(state)
  assert want["num_samples"] == 2500
  assert {k: summary["members"]["seed6"][k] for k in want} == want


def test_member_with_non_finite_samples_is_excluded_from_the_mean(seed_sweep, tmp_path):
  """A member whose checkpoint generates NaN is marked, not scored as 0 modes, and left out
  of the mean/std (listed in `excluded`)."""
  workdir = tmp_path / "sweep"
  shutil.copytree(seed_sweep[0], workdir)
  state = _state(workdir / "seed6")
  state = state.replace(ema_params=jax.tree.map(lambda p: p * np.nan, state.ema_params))
  shutil.rmtree(workdir / "seed6" / "checkpoints")
  ckpt = Checkpoints(workdir / "seed6" / "checkpoints")
  ckpt.save(6, state)
  ckpt.close()
  summary = summarize(workdir)
  bad, good = summary["members"]["seed6"], summary["members"]["seed5"]
  assert bad["status"] == "non_finite_samples" and bad["diverged"] is True
  assert bad["non_finite_samples"] == 2500 * 2 and "modes" not in bad
  agg = summary["aggregate"]["all"]
  assert agg["excluded"] == {"seed6": "non_finite_samples"}
  assert agg["modes"] == dict(mean=good["modes"], std=0.0, n=1)
  assert agg["d_loss"]["n"] == 1 and "non_finite_samples" not in agg


@pytest.mark.parametrize("param,values", [
    ("penalty.weight", ("0.5", "3")),
    pytest.param("optim.d.lr", ("0.01", "0.0001"), marks=pytest.mark.slow)])
def test_traced_hyper_parameter_equals_a_single_run(grid_config, tmp_path, param, values):
  """A swept value reaches the step as a traced per-member scalar; the member equals a single
  run with that value set in its config (a swept lr inside an lr_decay schedule too)."""
  if param.startswith("optim."):
    grid_config = config_lib.apply_overrides(grid_config, ["optim.lr_decay=(2,6)"])
  sweep(grid_config, tmp_path / "sweep", seeds=1, param=param, values=values, progress=False)
  states = [_state(tmp_path / "sweep" / f"{param}_{v}_seed5") for v in values]
  cfg = json.loads((tmp_path / "sweep" / f"{param}_{values[1]}_seed5" / "config.json").read_text())
  for part in param.split("."):
    cfg = cfg[part]
  assert cfg == float(values[1])
  want = train(config_lib.apply_overrides(grid_config, [f"{param}={values[1]}"]),
               tmp_path / "single", progress=False)
  assert_trees_close(states[1], want, rtol=1e-4, atol=1e-5)
  assert not np.allclose(jax.tree.leaves(states[0].d_params)[0],
                         jax.tree.leaves(states[1].d_params)[0])


def test_resume_continues_every_member(seed_sweep, tmp_path):
  straight, _ = seed_sweep
  sweep(config_lib.apply_overrides(small_grid_config(), ["steps=3"]), tmp_path, seeds=2,
        progress=False)
  sweep(small_grid_config(), tmp_path, seeds=2, progress=False)
  for s in ("seed5", "seed6"):
    assert_trees_close(_state(tmp_path / s), _state(straight / s), rtol=1e-6, atol=1e-7)


def test_interrupted_sweep_writes_each_log_row_once(seed_sweep, tmp_path):
  """Killed after its step-6 log rows but before its step-6 checkpoints (simulated by deleting
  them), a sweep resumes from step 3: metrics.jsonl and TensorBoard show steps 3 and 6 once."""
  straight, _ = seed_sweep
  shutil.copytree(straight, tmp_path / "sweep")
  for s in ("seed5", "seed6"):
    assert sorted(p.name for p in (tmp_path / "sweep" / s / "checkpoints").iterdir()) == ["3", "6"]
    shutil.rmtree(tmp_path / "sweep" / s / "checkpoints" / "6")
  sweep(small_grid_config(), tmp_path / "sweep", seeds=2, progress=False)
  for s in ("seed5", "seed6"):
    member = tmp_path / "sweep" / s
    rows = [json.loads(r)["step"] for r in (member / "metrics.jsonl").read_text().splitlines()]
    assert rows == [3, 6]
    assert [step for step, _ in visible_scalars(member / "tensorboard", "d_loss")] == [3, 6]
    assert_trees_close(_state(member), _state(straight / s), rtol=1e-6, atol=1e-7)


def test_one_step_per_call_equals_the_scanned_chunks(seed_sweep, tmp_path):
  """--steps-per-call 1 (the vmapped step itself, no scan: conv sweeps on CPU) trains the same
  members as the default chunks of 3 scanned steps."""
  straight, _ = seed_sweep
  sweep(small_grid_config(), tmp_path, seeds=2, steps_per_call=1, progress=False)
  for s in ("seed5", "seed6"):
    assert_trees_close(_state(tmp_path / s), _state(straight / s), rtol=1e-6, atol=1e-7)
    rows = [json.loads(r)["step"] for r in (tmp_path / s / "metrics.jsonl").read_text().splitlines()]
    assert rows == [3, 6]


def _chunk_of(config, k):
  """(spec, key -> a member's initial state, `sweep._chunk` of k steps with the spec and data
  bound) for `config`."""
  import functools
  from jaxgan import data as data_lib
  from jaxgan.state import create_state, spec_from_config
  from jaxgan.sweep import _chunk
  source = data_lib.make_source(config.data, config.batch_size, config.seed)
  spec = spec_from_config(config, source.shape)
  create = lambda key: create_state(spec, key, source.shape)
  return spec, create, functools.partial(_chunk, spec, config, source.keyed_batch, k)


@pytest.mark.parametrize("k, scanned", [(1, False), (3, True)])
def test_chunk_scans_only_when_it_has_several_steps(grid_config, k, scanned):
  _, create, chunk = _chunk_of(grid_config, k)
  key = jax.random.key(0)
  jaxpr = jax.make_jaxpr(chunk)(create(key), key, {})
  assert ("scan" in str(jaxpr)) == scanned


@pytest.mark.parametrize("shared_step", [True, False])
def test_members_share_the_step_so_the_lazy_penalty_stays_a_cond(grid_config, shared_step):
  """With the step batched, vmap turns `lax.cond(step % k == 0, R1, 0)` into a select that runs
  R1 on every step (and keeps it on 1 step in k); `_lockstep` shares the step.
  The numerics of the lazy penalty in a sweep: test_member_equals_the_single_run_with_its_seed
  (penalty.every=2)."""
  from jaxgan.sweep import _lockstep
  spec, create, chunk = _chunk_of(grid_config, 1)
  keys = jax.vmap(jax.random.key)(np.arange(2))
  state = jax.vmap(create)(keys)
  fn = _lockstep(chunk) if shared_step else jax.vmap(chunk)
  assert spec.penalty_every == 2
  assert ("cond[" in str(jax.make_jaxpr(fn)(state, keys, {}))) == shared_step
  if shared_step:
    out, metrics = jax.jit(fn)(state, keys, {})
    assert out.step.tolist() == [1, 1] and metrics["g_loss"].shape == (2,)


def test_steps_per_call_must_divide_the_cadence(grid_config, tmp_path):
  with pytest.raises(config_lib.ConfigError, match="must divide log_every.*their gcd is 3"):
    sweep(grid_config, tmp_path / "a", seeds=1, steps_per_call=2, progress=False)
  assert not (tmp_path / "a").exists()                               # refused before any file
  with pytest.raises(config_lib.ConfigError, match="--steps-per-call must be >= 1"):
    sweep(grid_config, tmp_path / "b", seeds=1, steps_per_call=0, progress=False)


def test_bad_sweep_arguments_are_refused(grid_config):
  with pytest.raises(config_lib.ConfigError, match="sweepable keys: penalty.weight"):
    members(grid_config, 2, "model.d_hidden", ["(8,)"])
  with pytest.raises(config_lib.ConfigError, match="--param and --values go together"):
    members(grid_config, 2, "penalty.weight", [])
  with pytest.raises(config_lib.ConfigError, match="--seeds must be >= 1"):
    members(grid_config, 0)
  with pytest.raises(config_lib.ConfigError, match="penalty.weight: expected a float"):
    members(grid_config, 1, "penalty.weight", ["abc"])


def test_cli_summarize_and_errors(seed_sweep, capsys):
  from jaxgan.cli import main
  workdir, summary = seed_sweep
  assert main(["sweep", "--summarize", "--workdir", str(workdir)]) == 0
  assert json.loads((workdir / "summary.json").read_text()) == summary
  assert main(["sweep", "--config", "grid25", "--seeds", "2", "--param", "model.width",
               "--values", "8,16"]) == 2
  assert "sweepable keys" in capsys.readouterr().err
  assert main(["sweep", "--summarize", "--workdir", str(workdir / "nothing")]) == 2


def test_stacked_mnist_sweep_counts_modes_with_the_classifier(tmp_path, monkeypatch):
  """A Stacked MNIST member is scored on 26,000 samples, each channel through `classify`; the
  shipped classifier is then never loaded."""
  from jaxgan.metrics import classifier
  def no_load():
    raise AssertionError("the shipped classifier was loaded although classify was given")
  monkeypatch.setattr(classifier, "load_mnist_classifier", no_load)
  c = config_lib.apply_overrides(config_lib.load_config_file("experiments/mnist_mlp.py"), [
      "data.name=stacked_mnist", "steps=2", "batch_size=8", "log_every=1", "sample_every=2",
      "checkpoint_every=2", "num_sample_images=4", "model.latent_dim=4",
      "model.g_hidden=(8,)", "model.d_hidden=(8,)"])
  seen = []
  def classify(digits):                          # [M, 28, 28, 1] -> brightness decile
    seen.append(digits.shape)
    return np.clip(((digits.mean(axis=(1, 2, 3)) + 1) * 5).astype(int), 0, 9)
  summary = sweep(c, tmp_path, seeds=1, progress=False, classify=classify)
  member = summary["members"]["seed0"]
  assert sum(s[0] for s in seen) == 3 * 26000 and seen[0][1:] == (28, 28, 1)
  assert member["num_samples"] == 26000 and member["num_modes"] == 1000
  assert 1 <= member["modes"] <= 1000 and member["kl"] >= 0


class _SignalAt:
  """Stands in for tqdm's bar: sends `sig` to this process once the sweep has done `step` steps
  (the bar is updated after each chunk, as a signal may land at any point of the loop)."""

  def __init__(self, sig, step):
    self.sig, self.step = sig, step

  def __call__(self, total, initial, **kwargs):
    self.done = initial
    return self

  def update(self, k):
    self.done += k
    if self.done == self.step:
      signal.raise_signal(self.sig)

  def close(self):
    pass


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_signal_checkpoints_the_sweep_at_its_step_and_resume_is_exact(seed_sweep, tmp_path,
                                                                      monkeypatch, sig):
  """SIGTERM / Ctrl-C at step 4 (no checkpoint step; one step per call): every member commits a
  checkpoint of step 4, no summary is written (SIGINT: then KeyboardInterrupt); the same sweep
  resumes from step 4 with chunks that still end on the step-6 log/sample/checkpoint point, and
  equals the uninterrupted sweep."""
  import tqdm
  straight, _ = seed_sweep
  monkeypatch.setattr(tqdm, "tqdm", _SignalAt(sig, 4))
  ignored = signal.getsignal(sig) == signal.SIG_IGN   # a runner started as a background job
  if ignored:                                         # ignores SIGINT, and so would the sweep
    signal.signal(sig, signal.default_int_handler)
  handler = signal.getsignal(sig)
  try:
    if sig == signal.SIGTERM:
      assert sweep(small_grid_config(), tmp_path, seeds=2, steps_per_call=1) is None
    else:
      with pytest.raises(KeyboardInterrupt):
        sweep(small_grid_config(), tmp_path, seeds=2, steps_per_call=1)
    assert signal.getsignal(sig) == handler           # the sweep's handler is gone again
  finally:
    if ignored:
      signal.signal(sig, signal.SIG_IGN)
  assert not (tmp_path / "summary.json").exists()
  for s in ("seed5", "seed6"):
    assert sorted(p.name for p in (tmp_path / s / "checkpoints").iterdir()) == ["3", "4"]
  summary = sweep(small_grid_config(), tmp_path, seeds=2, progress=False)  # default chunks
  assert summary is not None and (tmp_path / "summary.json").exists()
  for s in ("seed5", "seed6"):
    assert_trees_close(_state(tmp_path / s), _state(straight / s), rtol=1e-6, atol=1e-7)
    rows = [json.loads(r)["step"] for r in (tmp_path / s / "metrics.jsonl").read_text().splitlines()]
    assert rows == [3, 6]
    assert sorted(p.name for p in (tmp_path / s / "checkpoints").iterdir()) == ["3", "4", "6"]


@pytest.mark.parametrize("when", ["setup", "last_chunk"])
def test_sigterm_in_setup_or_last_chunk_stops_without_summary(seed_sweep, tmp_path,
                                                              monkeypatch, when):
  """A SIGTERM while the sweep sets up (here: as it writes the run files) stops it after the
  first chunk (step 3); one in the last chunk keeps the final checkpoints but writes no summary.
  Either way the same command then finishes, with the uninterrupted sweep's summary."""
  import tqdm
  from jaxgan import sweep as sweep_lib
  straight, want = seed_sweep
  if when == "setup":
    write_run_files = sweep_lib.write_run_files
    def write_and_signal(*args):
      write_run_files(*args)
      signal.raise_signal(signal.SIGTERM)
    monkeypatch.setattr(sweep_lib, "write_run_files", write_and_signal)
  else:
    monkeypatch.setattr(tqdm, "tqdm", _SignalAt(signal.SIGTERM, 6))
  handler = signal.getsignal(signal.SIGTERM)
  assert sweep(small_grid_config(), tmp_path, seeds=2) is None
  assert signal.getsignal(signal.SIGTERM) == handler
  assert not (tmp_path / "summary.json").exists()
  stopped = ["3"] if when == "setup" else ["3", "6"]
  for s in ("seed5", "seed6"):
    assert sorted(p.name for p in (tmp_path / s / "checkpoints").iterdir()) == stopped
  monkeypatch.undo()
  summary = sweep(small_grid_config(), tmp_path, seeds=2, progress=False)
  got, expected = (flatten_dict(a["aggregate"], sep="/") for a in (summary, want))
  assert got.keys() == expected.keys() and got == pytest.approx(expected, rel=1e-5, abs=1e-7)
  for s in ("seed5", "seed6"):
    assert_trees_close(_state(tmp_path / s), _state(straight / s), rtol=1e-6, atol=1e-7)


def test_the_sweep_compiles_its_chunk_once(tmp_path, caplog):
  """Four chunks (12 steps, 3 per call), one compilation of the vmapped chunk: no recompile
  after the first call."""
  c = config_lib.apply_overrides(small_grid_config(), ["steps=12", "checkpoint_every=6",
                                                       "sample_every=12"])
  with jax.log_compiles(), caplog.at_level(logging.WARNING):
    sweep(c, tmp_path, seeds=2, progress=False)
  compiles = [r.getMessage() for r in caplog.records if "Compiling" in r.getMessage()]
  assert sum("jit(lockstep_chunk)" in m for m in compiles) == 1, compiles


def test_chunks_divide_the_resumed_step(grid_config):
  """Resumed at step 1 (a stop between checkpoints) with 6 steps to go, chunks of the cadence's
  3 steps would end on 4 and 7 and skip the log/checkpoint points 3 and 6: K divides the start."""
  from jaxgan.sweep import _check_steps_per_call
  assert _check_steps_per_call(None, grid_config, left=6) == 3
  assert _check_steps_per_call(None, grid_config, left=6, start=1) == 1
  with pytest.raises(config_lib.ConfigError, match=r"and the resumed step \(1\); their gcd is 1"):
    _check_steps_per_call(3, grid_config, left=6, start=1)
