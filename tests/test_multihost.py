"""Two real processes on 127.0.0.1 (jax.distributed, gloo CPU collectives, 2 fake devices each)
train one run together: identical params in both, equal to a single-process run up to
rounding, metrics written once, their eval hook equal to a single-process eval, and their
checkpoint restores in a single process; a SIGTERM to one of them stops both at one step with
a checkpoint (JAX's preemption sync)."""
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import jax
import numpy as np
import pytest

from jaxgan import config as config_lib
from jaxgan.cli import main
from jaxgan.runs import load_run
from jaxgan.train import train

REPO = Path(__file__).resolve().parents[1]
OVERRIDES = ["steps=10", "batch_size=16", "log_every=5", "sample_every=10",
             "checkpoint_every=10", "model.g_hidden=(32,32)", "model.d_hidden=(32,32)"]

# One process of the pair: the same `train` that `jaxgan train --coordinator ...` calls, then
# its own copy of the final parameters, for comparison across processes.
WORKER = """
import sys, jax, numpy as np
from jaxgan import config as config_lib, parallel
from jaxgan.train import train
port, pid, workdir, *overrides = sys.argv[1:]
parallel.initialize_distributed(f"127.0.0.1:{port}", 2, int(pid))
assert jax.process_count() == 2 and jax.device_count() == 4 and jax.local_device_count() == 2
config = config_lib.apply_overrides(config_lib.load_config_file(None), overrides)
state = train(config, workdir, progress=False)
leaves = jax.tree.leaves((state.g_params, state.d_params, state.ema_params))
np.savez(f"{workdir}/params_{pid}.npz", *[np.asarray(x.addressable_data(0)) for x in leaves])
print("worker", pid, "done")
"""


def free_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def params(state):
  return [np.asarray(x) for x in jax.tree.leaves((state.g_params, state.d_params,
                                                  state.ema_params))]


def _start_pair(workdir, *overrides):
  env = dict(os.environ, JAX_PLATFORMS="cpu", JAX_CPU_COLLECTIVES_IMPLEMENTATION="gloo",
             XLA_FLAGS="--xla_force_host_platform_device_count=2", PYTHONPATH=str(REPO))
  port = free_port()
  return [subprocess.Popen([sys.executable, "-c", WORKER, str(port), str(i), str(workdir),
                            *overrides], cwd=REPO, env=env, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True) for i in range(2)]


def _finish(procs, timeout=300) -> list[str]:
  try:
    return [p.communicate(timeout=timeout)[0] for p in procs]
  finally:
    for p in procs:
      if p.poll() is None:
        p.kill()
        p.wait()


@pytest.mark.slow
def test_two_processes_train_one_run(tmp_path):
  workdir = tmp_path / "pair"
  procs = _start_pair(workdir, *OVERRIDES, "eval_every=10", "eval_num=100")
  outs = _finish(procs)
  for i, (p, out) in enumerate(zip(procs, outs)):
    assert p.returncode == 0, f"process {i}:\n{out[-3000:]}"
  assert "4 device(s) [cpu] in 2 process(es)" in outs[0]
  assert "device(s)" not in outs[1]  # only process 0 logs

  a, b = (np.load(workdir / f"params_{i}.npz") for i in range(2))
  for k in a.files:  # bit-identical across the processes
    np.testing.assert_array_equal(a[k], b[k])
  rows = [json.loads(r) for r in (workdir / "metrics.jsonl").read_text().splitlines()]
  assert [r["step"] for r in rows] == [5, 10]  # written once, by process 0
  assert (workdir / "samples" / "step_000010.png").exists()

  # equal to a single-process run on this process's 8 devices, up to rounding
  config = config_lib.apply_overrides(config_lib.load_config_file(None), OVERRIDES)
  single = params(train(config, tmp_path / "single", progress=False))
  for k, ref in zip(a.files, single):
    np.testing.assert_allclose(a[k], ref, rtol=1e-3, atol=1e-5)

  # the pair's checkpoint restores in a single process, bit for bit
  _, _, restored, _ = load_run(workdir)
  assert int(restored.step) == 10
  for k, x in zip(a.files, params(restored)):
    np.testing.assert_array_equal(a[k], x)

  # the pair's eval hook (the classifier loaded in each process, samples of the global state)
  # equals a single-process `jaxgan eval` of that checkpoint
  from jaxgan.eval import evaluate_run
  hooked = json.loads((workdir / "eval" / "step_000010_num100_seed0.json").read_text())
  single_eval = evaluate_run(workdir, num=100)
  assert hooked.keys() == single_eval.keys() and hooked["num_real"] == 5000
  for k, v in hooked.items():
    assert v == (single_eval[k] if isinstance(v, str) else
                 pytest.approx(single_eval[k], rel=1e-4, abs=1e-6)), k


@pytest.mark.slow
def test_sigterm_to_one_process_stops_both_at_one_step_with_a_checkpoint(tmp_path):
  """A preemption notice (SIGTERM) to process 1 alone: JAX's preemption sync has both
  processes stop after the same step, commit one checkpoint of it and exit 0; the pair then
  resumes from that step and finishes."""
  workdir = tmp_path / "pair"
  long = [o for o in OVERRIDES if not o.startswith(("steps=", "checkpoint_every="))]
  procs = _start_pair(workdir, *long, "steps=100000", "checkpoint_every=100000")
  rows = workdir / "metrics.jsonl"
  t0 = time.monotonic()
  while not (rows.exists() and rows.read_text().count("\n") >= 2):   # training is under way
    assert all(p.poll() is None for p in procs), _finish(procs)
    assert time.monotonic() - t0 < 240, "no progress"
    time.sleep(0.05)
  procs[1].send_signal(signal.SIGTERM)
  outs = _finish(procs)
  for i, (p, out) in enumerate(zip(procs, outs)):
    assert p.returncode == 0, f"process {i}:\n{out[-3000:]}"
    assert f"worker {i} done" in out
  (stopped,) = [int(d.name) for d in (workdir / "checkpoints").iterdir() if d.name.isdigit()]
  assert 10 <= stopped < 100000
  assert f"SIGTERM: checkpoint of step {stopped} committed" in outs[0]
  a, b = (np.load(workdir / f"params_{i}.npz") for i in range(2))
  for k in a.files:                                  # both stopped after the same step
    np.testing.assert_array_equal(a[k], b[k])
  assert int(load_run(workdir)[2].step) == stopped

  end = stopped + 10
  outs = _finish(_start_pair(workdir, *long, f"steps={end}", "checkpoint_every=100000"))
  assert f"resumed {workdir} from step {stopped}" in outs[0], outs[0][-3000:]
  assert int(load_run(workdir)[2].step) == end


def test_distributed_flags_are_checked(capsys):
  assert main(["train", "--coordinator", "127.0.0.1:1234"]) == 2
  assert "needs --num-processes and --process-id" in capsys.readouterr().err
  assert main(["train", "--num-processes", "2", "--process-id", "1"]) == 2
  assert "need --coordinator" in capsys.readouterr().err
