"""Orbax checkpoints of the whole `GANState` (typed RNG keys included).

Saves are asynchronous; a step becomes visible to `latest_step` only once Orbax has committed
it (written into `N.orbax-checkpoint-tmp-*`, then renamed to `N`), so a run killed mid-write
resumes from the previous complete step. `restore_latest` also checks what Orbax does not: a
step without its commit marker, or whose files are truncated or missing, is reported with its
step and path, moved aside to `corrupt_checkpoints/`, and the previous good step is used.

When one read of a restore fails, Orbax closes its event loop while TensorStore's other reads
are still in flight; as they finish, their callbacks onto the closed loop raise "RuntimeError:
Event loop is closed" in TensorStore's threads, which Python prints as dozens of tracebacks
after our one-line report (or pytest turns into warnings). `restore` therefore installs (once,
process-wide) a `sys.unraisablehook` filter that drops exactly those and passes every other
unraisable exception on to the previous hook.
"""
import dataclasses
import errno
import shutil
import sys
import time
from pathlib import Path
from typing import Callable, Optional

import jax
import orbax.checkpoint as ocp

COMMIT_MARKER = "commit_success.txt"   # Orbax writes it last, before the final rename
TMP_SUFFIX = ".orbax-checkpoint-tmp"


class CheckpointError(RuntimeError):
  pass


def _reason(e: BaseException) -> str:
  """A one-line reason (TensorStore errors carry pages of spec)."""
  text = str(e).strip().splitlines()[0] if str(e).strip() else ""
  return f"{type(e).__name__}: {text[:200]}"


def _is_stray_closed_loop_callback(unraisable) -> bool:
  """An asyncio callback scheduled onto a loop that is already closed (see the docstring)."""
  e = unraisable.exc_value
  if not (isinstance(e, RuntimeError) and str(e) == "Event loop is closed"):
    return False
  tb, names = e.__traceback__, set()
  while tb is not None:
    names.add(tb.tb_frame.f_code.co_name)
    tb = tb.tb_next
  return "call_soon_threadsafe" in names


def quiet_stray_closed_loop_callbacks() -> None:
  """Installs the unraisable-exception filter of the module docstring (idempotent)."""
  previous = sys.unraisablehook
  if getattr(previous, "_jaxgan_closed_loop_filter", False):
    return

  def hook(unraisable):
    if not _is_stray_closed_loop_callback(unraisable):
      previous(unraisable)

  hook._jaxgan_closed_loop_filter = True
  sys.unraisablehook = hook


class Checkpoints:
  def __init__(self, directory, max_to_keep: int = 3, cleanup_unfinished: bool = False):
    """`cleanup_unfinished` deletes the tmp directories of writes that never committed (only
    the process that writes the checkpoints may do that)."""
    self.directory = Path(directory).absolute()
    self._pending = None
    self.unfinished = sorted(self.directory.glob(f"*{TMP_SUFFIX}*"))
    self.manager = ocp.CheckpointManager(
        self.directory,
        options=ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=True,
                                             enable_async_checkpointing=True,
                                             cleanup_tmp_directories=cleanup_unfinished))

  def latest_step(self) -> Optional[int]:
    return self.manager.latest_step()

  def all_steps(self) -> list[int]:
    return sorted(self.manager.all_steps())

  def _fail(self, step: int, e: BaseException):
    hint = ("the disk is full; free some space and re-run to resume"
            if isinstance(e, OSError) and e.errno == errno.ENOSPC else "re-run to resume")
    done = [s for s in self.all_steps() if s != step]
    raise CheckpointError(
        f"could not write checkpoint step {step} to {self.directory / str(step)}: {_reason(e)}. "
        f"The committed checkpoints (steps {done}) are intact; {hint}.") from e

  def save(self, step: int, state) -> None:
    """Starts an asynchronous save of `state` as `step` (no-op if that step exists)."""
    if step in self.manager.all_steps():
      return
    self.wait()  # Orbax waits for the previous write anyway; this attributes its errors
    try:
      self.manager.save(step, args=ocp.args.StandardSave(state))
    except Exception as e:
      self._fail(step, e)
    self._pending = step

  def restore(self, template, step: Optional[int] = None):
    """Restores the latest (or given) step into the structure, dtypes and shardings of
    `template` (a state or its abstract `jax.ShapeDtypeStruct` tree)."""
    step = self.latest_step() if step is None else step
    if step is None:
      raise CheckpointError(f"no checkpoint in {self.directory}")
    path = self.directory / str(step)
    if not path.exists():
      raise CheckpointError(f"no checkpoint of step {step} in {self.directory} (its steps: "
                            f"{', '.join(map(str, self.all_steps())) or 'none'})")
    if not (path / COMMIT_MARKER).exists():
      raise CheckpointError(f"checkpoint step {step} at {path} has no commit marker "
                            f"({COMMIT_MARKER}): it was not completely written")
    abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, template)
    quiet_stray_closed_loop_callbacks()  # before: the strays may come before `except` runs
    try:
      state = self.manager.restore(step, args=ocp.args.StandardRestore(abstract))
    except Exception as e:
      state = self._restore_before_augment(step, template, abstract)
      if state is None:
        raise CheckpointError(f"could not restore step {step} from {path}: {_reason(e)}") from e
    return state

  def _restore_before_augment(self, step: int, template, abstract):
    """A checkpoint written before GANState had its `augment` field (ADA's state, {} for a run
    without ADA) restores into a template whose `augment` is {}; None when that does not
    apply or fails too."""
    if getattr(template, "augment", None) != {}:
      return None
    fields = {f.name: getattr(abstract, f.name) for f in dataclasses.fields(abstract)
              if f.name != "augment"}
    try:
      old = self.manager.restore(step, args=ocp.args.StandardRestore(fields))
    except Exception:
      return None
    return type(template)(**old, augment={})

  def restore_latest(self, template, log: Callable[[str], None] = print):
    """(state, step) of the newest step that restores (a `GANState`, whose `step` must match);
    (None, None) if there is none.

    Unreadable newer steps are moved to `../corrupt_checkpoints/` (kept for inspection) once
    an older step has restored. If steps exist but none restores, raises: a run is never
    silently restarted from scratch over its own checkpoints.
    """
    for path in self.unfinished:
      log(f"ignoring an unfinished checkpoint write (no commit): {path}")
    steps = self.all_steps()
    failures = []
    for step in reversed(steps):
      try:
        state = self.restore(template, step)
        if int(state.step) != step:
          raise CheckpointError(f"checkpoint step {step} at {self.directory / str(step)} holds "
                                f"a state of step {int(state.step)}")
      except CheckpointError as e:
        failures.append((step, str(e)))
        log(f"checkpoint step {step} is unusable: {e}")
        continue
      for bad, _ in failures:
        dest = self.directory.parent / "corrupt_checkpoints" / f"{bad}-{time.time_ns()}"
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(self.directory / str(bad)), str(dest))
        log(f"moved the unusable checkpoint step {bad} to {dest}; using step {step}")
      if failures:
        self.manager.reload()
      return state, step
    if failures:
      raise CheckpointError(
          f"none of the checkpoints in {self.directory} (steps {steps}) can be restored; "
          f"refusing to start from scratch over an existing run. If the config changed the "
          f"model, use the run's config (config.json); to start afresh, use a new --workdir. "
          f"Newest error: {failures[0][1]}")
    return None, None

  def wait(self) -> None:
    """Blocks until the pending async write has committed."""
    try:
      self.manager.wait_until_finished()
    except Exception as e:
      self._fail(self._pending, e)
    self._pending = None

  def close(self) -> None:
    try:
      self.wait()
    finally:
      self.manager.close()
