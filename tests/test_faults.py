"""Fault tolerance: a run can be killed at any moment and resumed with nothing lost and the same
result; bad input is refused with a clear message. The fault list, and the test of each:

  kill -9 at random moments, also mid checkpoint write   test_kill_9_at_random_moments...
      every restart resumes from the latest complete checkpoint; final state and samples are
      bit-identical to an uninterrupted run (real subprocesses, seeded kill times)
  SIGTERM (preemption), Ctrl-C (SIGINT)                  test_sigterm_...
      finishes the step, commits a checkpoint, exits 0 with a message (Ctrl-C: exits 130,
      "interrupted"; a second Ctrl-C stops at once); resume is exact
  corrupt / partial checkpoint: truncated file, missing  test_corrupt_checkpoint_...
      commit marker, unfinished tmp dir, deleted array file: reported with step and path,
      moved to corrupt_checkpoints/, the previous good step is used (and the result is exact);
      no stray tracebacks from the failed restore's other reads
  checkpoints exist but none restores                    test_unrestorable_run_is_refused...
      refused (exit 1); never trained over from scratch; nothing moved or rewritten
  NaN/Inf in a loss, gradient or parameter               test_nonfinite_stops_...
      error naming the first bad step and the quantities (recorded on device, checked at
      log/sample/checkpoint points), exit 1, no checkpoint of the bad state, none rotated away
  skip_nonfinite=true                                    test_skip_nonfinite_...
      the update is dropped (state unchanged but for the step), counted as skipped_updates
  divergence diagnostics                                 test_diagnostics_...
      D accuracy on real/fake, ADA r_t, G/D gradient norms, fakes' pairwise distance in
      metrics.jsonl; warnings (logged and counted) for "D wins" and collapse
  a workdir holding a run of another config              test_workdir_of_another_config...
      refused naming the differing keys, unless --force; steps/log/sample/checkpoint cadence
      may change (config.RESUMABLE_KEYS): a larger steps continues the run
  a full disk on save (OSError ENOSPC), when the save    test_full_disk_...
      starts or in the async commit: clear error naming the step, exit 1, the committed
      checkpoints intact
  a batch of the wrong shape or dtype                    test_bad_batch_is_refused...
  Covered elsewhere: unknown and ill-typed config keys and values (test_cli.py), images of the
  wrong shape, dtype or value range and a batch larger than the data (test_data.py), a data
  set that is missing (test_cli.py::test_missing_data_set_is_a_clear_error), a batch size that
  does not divide by the device count (jaxgan/parallel.py, test_parallel.py, issue 3).
"""
import dataclasses
import errno
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
import types
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
import orbax.checkpoint as ocp
import pytest

from jaxgan import config as config_lib
from jaxgan import data as data_lib
from jaxgan.checkpoint import CheckpointError, Checkpoints
from jaxgan.cli import main
from jaxgan.models import MLPDiscriminator, MLPGenerator
from jaxgan.state import GANSpec, create_state
from jaxgan.runs import load_run, sample
from jaxgan.train import NonFiniteError, _Diagnostics, train
from jaxgan.train_step import NONFINITE, mean_pairwise_distance, train_step
from tests.util import assert_trees_equal, visible_scalars

REPO = Path(__file__).resolve().parents[1]
# A tiny run: 8x8 digits, 16-unit MLPs, no penalty; each subprocess needs a few CPU seconds.
TINY = ["batch_size=16", "data.name=digits", "penalty.name=none", "model.g_hidden=(16,16)",
        "model.d_hidden=(16,16)", "model.latent_dim=8", "log_every=5", "sample_every=1000",
        "num_sample_images=4"]


def tiny_config(*overrides):
  return config_lib.apply_overrides(config_lib.load_config_file(None), [*TINY, *overrides])


def cli_args(workdir, *overrides):
  return ["train", "--workdir", str(workdir), "--no-progress",
          *(f"--config.{o}" for o in [*TINY, *overrides])]


def steps_in(ckpt_dir: Path) -> list[int]:
  return sorted(int(p.name) for p in ckpt_dir.iterdir() if p.name.isdigit()) \
      if ckpt_dir.exists() else []


def unfinished_in(ckpt_dir: Path) -> list[Path]:
  return list(ckpt_dir.glob("*.orbax-checkpoint-tmp*")) if ckpt_dir.exists() else []


# --------------------------------------------------------------------- real subprocesses
RUN_STEPS = 100


@pytest.fixture(scope="module")
def env(tmp_path_factory):
  """Subprocess environment; a shared compilation cache makes restarts cheap."""
  return dict(os.environ, XLA_FLAGS="", JAX_PLATFORMS="cpu",
              JAX_COMPILATION_CACHE_DIR=str(tmp_path_factory.mktemp("jax_cache")),
              JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0")


def start(workdir, env, *overrides, sigint=False):
  """`sigint`: Ctrl-C handled as in a terminal, even where the test runner was started with
  SIGINT ignored (a background job): an ignored signal is inherited and kept by the child, a
  handled one is reset to the default by exec (no preexec_fn: it forks a multithreaded JAX)."""
  ignored = sigint and signal.getsignal(signal.SIGINT) == signal.SIG_IGN
  if ignored:
    signal.signal(signal.SIGINT, signal.default_int_handler)
  try:
    return subprocess.Popen([sys.executable, "-m", "jaxgan", *cli_args(workdir, *overrides)],
                            cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
  finally:
    if ignored:
      signal.signal(signal.SIGINT, signal.SIG_IGN)


def wait_until(cond, proc, timeout=120.0) -> bool:
  """Polls `cond` until it holds (True) or `proc` exits (False)."""
  t0 = time.monotonic()
  while not cond():
    if proc.poll() is not None:
      return False
    if time.monotonic() - t0 > timeout:
      proc.kill()
      raise AssertionError(f"timed out after {timeout}s: {proc.communicate()[0][-2000:]}")
    time.sleep(0.01)
  return True


@pytest.fixture(scope="module")
def reference(tmp_path_factory, env):
  """An uninterrupted run of RUN_STEPS steps (one checkpoint, at the end)."""
  wd = tmp_path_factory.mktemp("reference") / "run"
  p = start(wd, env, f"steps={RUN_STEPS}", f"checkpoint_every={RUN_STEPS}")
  out = p.communicate(timeout=300)[0]
  assert p.returncode == 0, out
  return wd


def assert_same_result(workdir, reference, tmp_path):
  """Final state, final sample grid and `jaxgan sample` output equal bit for bit; metric rows
  once per log point."""
  assert_trees_equal(load_run(workdir)[2], load_run(reference)[2])
  name = f"samples/step_{RUN_STEPS:06d}.png"
  assert (workdir / name).read_bytes() == (reference / name).read_bytes()
  np.testing.assert_array_equal(sample(workdir, 8, 1, tmp_path / "a.npy"),
                                sample(reference, 8, 1, tmp_path / "b.npy"))
  rows = [json.loads(r)["step"] for r in (workdir / "metrics.jsonl").read_text().splitlines()]
  assert rows == list(range(5, RUN_STEPS + 1, 5))
  tb = [step for step, _ in visible_scalars(workdir / "tensorboard", "d_loss")]
  assert tb == list(range(5, RUN_STEPS + 1, 5))


@pytest.mark.slow
def test_kill_9_at_random_moments_resumes_bit_identical(tmp_path, env, reference):
  """SIGKILL a checkpoint-every-step run 4 times at seeded random moments after it has made
  progress, then once while a checkpoint write is in flight; the restarts finish the run."""
  rng = random.Random(6)
  wd, ck = tmp_path / "run", tmp_path / "run" / "checkpoints"
  args = (f"steps={RUN_STEPS}", "checkpoint_every=1")
  kills, mid_write, outputs, latest = 0, False, [], []
  while kills < 4 or (not mid_write and kills < 10):
    before = max(steps_in(ck), default=0)
    p = start(wd, env, *args)
    assert wait_until(lambda: max(steps_in(ck), default=0) > before, p), \
        f"finished before it could be killed: {p.communicate()[0][-2000:]}"
    if kills < 4:
      time.sleep(rng.uniform(0.0, 0.3))
    else:
      wait_until(lambda: unfinished_in(ck), p)
    p.kill()
    outputs.append(p.communicate(timeout=60)[0])
    kills += 1
    mid_write = kills > 4 and bool(unfinished_in(ck))
    print(f"kill {kills}: committed {steps_in(ck)}, unfinished {unfinished_in(ck)}")
    assert steps_in(ck) and max(steps_in(ck)) < RUN_STEPS
    latest.append(max(steps_in(ck)))
  p = start(wd, env, *args)
  outputs.append(p.communicate(timeout=300)[0])
  assert p.returncode == 0, outputs[-1]
  for out, step in zip(outputs[1:], latest):   # each restart: the latest committed step
    assert f"resumed {wd} from step {step}\n" in out, out[-2000:]
  assert "ignoring an unfinished checkpoint write" in outputs[-1]
  assert not unfinished_in(ck)
  assert_same_result(wd, reference, tmp_path)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_sigterm_and_ctrl_c_commit_a_checkpoint_and_resume_exactly(tmp_path, env, reference, sig):
  """SIGTERM (preemption): checkpoint, exit 0. Ctrl-C (SIGINT): the same checkpoint, then
  "interrupted" and exit 130, as an interrupted command should."""
  wd = tmp_path / "run"
  args = (f"steps={RUN_STEPS}", f"checkpoint_every={RUN_STEPS}")
  p = start(wd, env, *args, sigint=True)
  out = ""
  while "training steps" not in out:   # the loop is set up (it compiles next): preempt it
    line = p.stdout.readline()
    assert line, out
    out += line
  p.send_signal(sig)
  out += p.communicate(timeout=120)[0]
  assert p.returncode == (0 if sig == signal.SIGTERM else 130), out
  (stopped,) = steps_in(wd / "checkpoints")          # the signal's checkpoint, committed
  assert 1 <= stopped < RUN_STEPS, out
  assert f"{sig.name}: checkpoint of step {stopped} committed" in out
  if sig == signal.SIGTERM:
    assert f"stopped at step {stopped} of {RUN_STEPS}" in out
  else:
    assert "Ctrl-C again to stop at once" in out and "jaxgan: interrupted" in out
    assert "Traceback" not in out
  assert not unfinished_in(wd / "checkpoints")
  assert int(load_run(wd)[2].step) == stopped

  p = start(wd, env, *args)
  out = p.communicate(timeout=300)[0]
  assert p.returncode == 0 and f"from step {stopped}" in out, out
  assert_same_result(wd, reference, tmp_path)


# ------------------------------------------------------------------------ checkpoints
@pytest.fixture(scope="module")
def good_run(tmp_path_factory):
  """20 steps, checkpoints at 10 and 20; (workdir, final state)."""
  wd = tmp_path_factory.mktemp("good") / "run"
  state = train(tiny_config("steps=20", "checkpoint_every=10"), wd, progress=False)
  return wd, state


def _array_data_files(step_dir: Path) -> list[Path]:
  """Every file of a step's array data: OCDBT's data files sit in `d/` folders (the merged
  `default/d/` and `default/ocdbt.process_0/d/`). How the bytes split into files varies from
  save to save, so choosing "the largest file" of the step could pick `_sharding` instead, which
  a restore with target shardings never reads (that made this test flaky in CI)."""
  files = [p for p in step_dir.rglob("*") if p.is_file() and p.parent.name == "d"]
  assert files, f"no array data files under {step_dir}"
  return files


CORRUPTIONS = {
    "truncated_file": lambda d: [os.truncate(p, p.stat().st_size // 2)
                                 for p in _array_data_files(d)],
    "deleted_array_file": lambda d: [p.unlink() for p in _array_data_files(d)],
    "missing_commit_marker": lambda d: (d / "commit_success.txt").unlink(),
    "unfinished_tmp_dir": lambda d: d.rename(d.with_name(d.name + ".orbax-checkpoint-tmp-17")),
}


# A failed restore must not spill TensorStore's stray callbacks onto Orbax's closed event loop
# ("RuntimeError: Event loop is closed", dozens of tracebacks in the CLI): pytest reports them
# as unraisable-exception warnings, made errors here (jaxgan.checkpoint filters them).
@pytest.mark.filterwarnings("error::pytest.PytestUnraisableExceptionWarning")
@pytest.mark.parametrize("corruption", sorted(CORRUPTIONS))
def test_corrupt_checkpoint_is_reported_and_the_previous_step_used(tmp_path, good_run, capsys,
                                                                   corruption):
  src, final = good_run
  wd = tmp_path / "run"
  shutil.copytree(src, wd)
  step_dir = wd / "checkpoints" / "20"
  CORRUPTIONS[corruption](step_dir)
  state = train(tiny_config("steps=20", "checkpoint_every=10"), wd, progress=False)
  time.sleep(0.5)                             # the failed restore's other reads land in this test
  out = capsys.readouterr().out
  assert "resumed" in out and "from step 10" in out
  if corruption == "unfinished_tmp_dir":
    assert "ignoring an unfinished checkpoint write" in out and "20.orbax-checkpoint-tmp" in out
    assert not unfinished_in(wd / "checkpoints")
  else:
    assert "checkpoint step 20 is unusable" in out and str(step_dir) in out
    (moved,) = (wd / "corrupt_checkpoints").iterdir()
    assert moved.name.startswith("20-")
  assert_trees_equal(state, final)            # re-trained from step 10 to the same state
  assert steps_in(wd / "checkpoints") == [10, 20]


def test_closed_loop_filter_drops_only_stray_callbacks(monkeypatch):
  """The filter drops "Event loop is closed" raised by a callback onto a closed loop and passes
  every other unraisable exception (and that message from elsewhere) on."""
  import asyncio
  from jaxgan.checkpoint import quiet_stray_closed_loop_callbacks
  seen = []
  monkeypatch.setattr(sys, "unraisablehook", seen.append)
  quiet_stray_closed_loop_callbacks()
  quiet_stray_closed_loop_callbacks()                      # idempotent: one filter, not two
  assert getattr(sys.unraisablehook, "_jaxgan_closed_loop_filter", False)

  def raised(fn):
    try:
      fn()
    except Exception as e:                                  # noqa: BLE001
      return e
    raise AssertionError("no exception")

  loop = asyncio.new_event_loop()
  loop.close()
  stray = raised(lambda: loop.call_soon_threadsafe(print))  # what TensorStore's threads hit
  elsewhere = raised(lambda: (_ for _ in ()).throw(RuntimeError("Event loop is closed")))
  other = raised(lambda: 1 / 0)
  for e in (stray, elsewhere, other):
    sys.unraisablehook(types.SimpleNamespace(exc_type=type(e), exc_value=e,
                                             exc_traceback=e.__traceback__, err_msg=None,
                                             object=None))
  assert [u.exc_value for u in seen] == [elsewhere, other]


def test_unrestorable_run_is_refused_not_restarted(tmp_path, good_run, capsys):
  src, _ = good_run
  wd = tmp_path / "run"
  shutil.copytree(src, wd)
  for step in (10, 20):
    (wd / "checkpoints" / str(step) / "commit_success.txt").unlink()
  before = sorted(str(p.relative_to(wd)) for p in wd.rglob("*"))
  assert main(cli_args(wd, "steps=20", "checkpoint_every=10")) == 1
  err = capsys.readouterr().err
  assert "refusing to start from scratch" in err and "steps [10, 20]" in err
  assert "Traceback" not in err
  assert sorted(str(p.relative_to(wd)) for p in wd.rglob("*")) == before


# ------------------------------------------------------------------------- non-finite
def nan_at(step_index: int):
  """make_source that poisons the real batch of one step with NaN (a corrupt record)."""
  make_source = data_lib.make_source

  def make(cfg, batch_size, seed):
    src = make_source(cfg, batch_size, seed)
    poison = lambda b, s: dict(b, image=b["image"] * (jnp.nan if s == step_index else 1.0))
    return dataclasses.replace(src, batch=lambda s: poison(src.batch(s), s))
  return make


def test_nonfinite_stops_naming_step_and_quantity_and_keeps_checkpoints(tmp_path, monkeypatch,
                                                                        capsys):
  """NaN data at step 13; checkpoints every 2 steps, 3 kept. Nothing is saved at 14, so the
  max_to_keep rotation deletes nothing: 8, 10, 12 stay, and 12 is finite."""
  monkeypatch.setattr(data_lib, "make_source", nan_at(12))
  wd = tmp_path / "run"
  assert main(cli_args(wd, "steps=20", "checkpoint_every=2")) == 1
  err = capsys.readouterr().err
  assert "jaxgan: error: non-finite d_loss" in err and "at step 13 (detected at step 14)" in err
  assert "last good checkpoint (step 12)" in err and "Traceback" not in err
  assert steps_in(wd / "checkpoints") == [8, 10, 12]
  state = load_run(wd)[2]
  assert int(state.step) == 12 and int(state.nonfinite["first_step"]) == 0
  assert all(np.isfinite(x).all() for x in jax.tree.leaves(state.g_params))


def test_nonfinite_error_carries_the_first_bad_step(tmp_path):
  """Callers that record a divergence (experiments/loss_penalty_fid.py) read the step from the
  error, not its message."""
  config = tiny_config("steps=16", "checkpoint_every=16")
  src = nan_at(12)(config.data, config.batch_size, config.seed)
  with pytest.raises(NonFiniteError, match="at step 13") as e:
    train(config, tmp_path / "run", source=src, progress=False)
  assert e.value.step == 13


def test_skip_nonfinite_drops_the_update_and_counts_it(tmp_path):
  config = tiny_config("steps=15", "checkpoint_every=15", "skip_nonfinite=true")
  src = nan_at(12)(config.data, config.batch_size, config.seed)
  state = train(config, tmp_path / "run", source=src, progress=False)
  assert int(state.step) == 15
  assert {k: int(v) for k, v in state.nonfinite.items()} == \
      dict(first_step=13, what=int(state.nonfinite["what"]), skipped=1)
  assert {"d_loss", "d_grads", "g_params"} <= {NONFINITE[i] for i in range(len(NONFINITE))
                                                if int(state.nonfinite["what"]) >> i & 1}
  rows = [json.loads(r) for r in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
  assert [r["skipped_updates"] for r in rows] == [0, 0, 1]
  assert all(np.isfinite(x).all() for x in jax.tree.leaves(state.d_params))


def _small_spec(**kw):
  return GANSpec(generator=MLPGenerator((6,), (16,), "none"), discriminator=MLPDiscriminator((16,)),
                 g_tx=optax.adam(1e-3), d_tx=optax.adam(1e-3), latent_dim=4, **kw)


@pytest.mark.parametrize("skip", [False, True])
def test_step_records_the_first_nonfinite_step_and_skips_exactly(skip):
  spec = _small_spec(skip_nonfinite=skip)
  step = jax.jit(lambda s, b: train_step(spec, s, b))
  state, _ = step(create_state(spec, jax.random.key(0), (6,)), jnp.ones((8, 6)))
  bad, metrics = step(state, jnp.full((8, 6), jnp.nan))
  assert int(bad.step) == 2 and int(metrics["nonfinite"]) != 0
  assert int(bad.nonfinite["first_step"]) == 2 and int(bad.nonfinite["skipped"]) == int(skip)
  if skip:   # everything but the step and the record is the previous state, bit for bit
    assert_trees_equal(bad.replace(step=state.step, nonfinite=state.nonfinite), state)
    after, metrics = step(bad, jnp.ones((8, 6)))
    assert int(metrics["nonfinite"]) == 0 and int(after.nonfinite["first_step"]) == 2
  else:
    assert not all(np.isfinite(x).all() for x in jax.tree.leaves(bad.d_params))


# ------------------------------------------------------------------------ diagnostics
def test_diagnostics_metrics_are_consistent(good_run):
  spec = _small_spec()
  state = create_state(spec, jax.random.key(0), (6,))
  real = jax.random.normal(jax.random.key(1), (8, 6))
  _, m = jax.jit(lambda s, b: train_step(spec, s, b))(state, real)
  # ADA's r_t = E[sign(D(real))] = 2 * accuracy_real - 1 (no logit is exactly 0)
  np.testing.assert_allclose(m["ada_r_t"], 2 * m["d_acc_real"] - 1, atol=1e-6)
  assert 0 <= m["d_acc_fake"] <= 1 and m["g_grad_norm"] > 0 and m["d_grad_norm"] > 0
  x = np.asarray(real, np.float64)
  pairs = [np.linalg.norm(x[i] - x[j]) for i in range(8) for j in range(8) if i != j]
  np.testing.assert_allclose(m["real_pdist"], np.mean(pairs), rtol=1e-5)
  assert float(mean_pairwise_distance(jnp.ones((5, 3, 2)))) == 0.0
  row = json.loads((good_run[0] / "metrics.jsonl").read_text().splitlines()[-1])
  assert {"d_acc_real", "d_acc_fake", "ada_r_t", "g_grad_norm", "d_grad_norm", "fake_pdist",
          "real_pdist", "skipped_updates", "d_wins_warnings", "collapse_warnings"} <= set(row)


def test_diagnostics_warn_when_d_wins_or_samples_collapse(capsys):
  config = tiny_config()
  diagnose = _Diagnostics(config, [])
  ok = dict(d_loss=0.7, fake_pdist=3.0, real_pdist=4.0)
  d_wins = dict(ok, d_loss=0.001)
  counts = [dict(diagnose(i, d_wins)) for i in range(1, 7)]
  assert [c["d_wins_warnings"] for c in counts] == [0, 0, 0, 0, 1, 2]   # d_wins_logs = 5
  assert "D wins" in capsys.readouterr().out
  assert diagnose(7, ok)["d_wins_warnings"] == 2 and diagnose(8, d_wins)["d_wins_warnings"] == 2
  assert diagnose(9, dict(ok, fake_pdist=0.01))["collapse_warnings"] == 1
  assert "collapse" in capsys.readouterr().out
  wasserstein = _Diagnostics(tiny_config("loss=wasserstein"), [])
  assert [wasserstein(i, d_wins)["d_wins_warnings"] for i in range(6)] == [0] * 6


def test_diagnostics_of_a_resumed_run_go_on_from_its_kept_rows(capsys):
  """Resumed after 3 log points of D winning (and a collapsed batch), a run counts and warns as
  the uninterrupted one: the D-wins warning at the 5th point, no second collapse onset."""
  config = tiny_config()
  ok = dict(d_loss=0.7, fake_pdist=3.0, real_pdist=4.0)
  d_wins = dict(ok, d_loss=0.001, fake_pdist=0.01)
  straight = _Diagnostics(config, [])
  rows = [dict(d_wins, step=i, **straight(i, d_wins)) for i in (1, 2, 3)]
  rows = [json.loads(json.dumps(r)) for r in rows]          # as metrics.jsonl keeps them
  capsys.readouterr()
  resumed = _Diagnostics(config, rows)
  for i in (4, 5, 6):
    assert dict(resumed(i, d_wins)) == dict(straight(i, d_wins))
  out = capsys.readouterr().out
  assert out.count("D wins") == 2 and "collapse" not in out  # once per diagnoser, at step 5
  assert straight.counts == {"d_wins_warnings": 2, "collapse_warnings": 6}


# ------------------------------------------------------------------------- bad input
def test_workdir_of_another_config_is_refused_unless_force(tmp_path, good_run, capsys):
  src, _ = good_run
  wd = tmp_path / "run"
  shutil.copytree(src, wd)
  base = ("steps=20", "checkpoint_every=10")
  assert main(cli_args(wd, *base, "model.latent_dim=9", "loss=hinge")) == 2
  err = capsys.readouterr().err
  assert "holds a run with a different config" in err and "--force" in err
  assert "model.latent_dim: 8 -> 9" in err and "loss: 'non_saturating' -> 'hinge'" in err
  assert steps_in(wd / "checkpoints") == [10, 20]
  # cadence, eval settings and a larger `steps` may change: the run continues
  assert main(cli_args(wd, "steps=25", "checkpoint_every=5", "log_every=25", "eval_every=25",
                       "eval_num=100")) == 0
  assert "from step 20" in capsys.readouterr().out
  assert (wd / "eval" / "step_000025_num100_seed0.json").exists()
  # --force continues with a changed (compatible) config and records it
  assert main([*cli_args(wd, "steps=30", "checkpoint_every=5", "optim.g.lr=0.001"),
               "--force"]) == 0
  assert "from step 25" in capsys.readouterr().out
  assert json.loads((wd / "config.json").read_text())["optim"]["g"]["lr"] == 0.001


def test_full_disk_on_save_is_a_clear_error_and_keeps_checkpoints(tmp_path, monkeypatch, capsys):
  real_save = ocp.CheckpointManager.save

  def save(self, step, *a, **kw):
    if step == 20:
      raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    return real_save(self, step, *a, **kw)
  monkeypatch.setattr(ocp.CheckpointManager, "save", save)
  wd = tmp_path / "run"
  assert main(cli_args(wd, "steps=30", "checkpoint_every=10")) == 1
  err = capsys.readouterr().err
  assert "could not write checkpoint step 20" in err and "No space left on device" in err
  assert "(steps [10]) are intact" in err and "Traceback" not in err
  monkeypatch.undo()
  assert steps_in(wd / "checkpoints") == [10]
  assert int(load_run(wd)[2].step) == 10


def test_full_disk_during_the_async_write_surfaces_with_its_step(tmp_path, monkeypatch):
  """ENOSPC in Orbax's background commit (its final rename) is raised, by the next wait or
  save, as a CheckpointError naming that step; the committed step stays restorable."""
  from orbax.checkpoint._src.path import async_path
  spec = _small_spec()
  state = create_state(spec, jax.random.key(0), (6,))
  ckpt = Checkpoints(tmp_path / "ckpt")
  ckpt.save(1, state)
  ckpt.wait()

  async def rename(src, dst):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(dst))
  monkeypatch.setattr(async_path, "rename", rename)
  ckpt.save(2, state)                       # returns at once; the write fails in the background
  with pytest.raises(CheckpointError, match=r"checkpoint step 2 .*No space left on device.*"
                                            r"steps \[1\]\) are intact"):
    ckpt.save(3, state)
  monkeypatch.undo()
  assert ckpt.all_steps() == [1]
  assert_trees_equal(ckpt.restore(state, 1), state)
  ckpt.close()


def test_bad_batch_is_refused_before_training(tmp_path):
  config = tiny_config("steps=5")
  src = data_lib.make_source(config.data, config.batch_size, config.seed)
  bad = dataclasses.replace(src, batch=lambda s: dict(src.batch(s),
                                                      image=src.batch(s)["image"].astype(jnp.float16)))
  with pytest.raises(data_lib.DataError, match="dtype float16; the model expects shape"):
    train(config, tmp_path / "run", source=bad, progress=False)
  assert steps_in(tmp_path / "run" / "checkpoints") == []
  assert main(cli_args(tmp_path / "run2", "skip_nonfinite=maybe")) == 2
