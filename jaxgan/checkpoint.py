"""Orbax checkpoints of the whole `GANState` (typed RNG keys included).

Saves are asynchronous; a step becomes visible to `latest_step` only once Orbax has committed
it, so a run killed mid-write resumes from the previous complete step.
"""
from pathlib import Path
from typing import Optional

import jax
import orbax.checkpoint as ocp


class CheckpointError(RuntimeError):
  pass


class Checkpoints:
  def __init__(self, directory, max_to_keep: int = 3):
    self.directory = Path(directory).absolute()
    self.manager = ocp.CheckpointManager(
        self.directory,
        options=ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=True,
                                             enable_async_checkpointing=True))

  def latest_step(self) -> Optional[int]:
    return self.manager.latest_step()

  def all_steps(self) -> list[int]:
    return sorted(self.manager.all_steps())

  def save(self, step: int, state) -> None:
    """Starts an asynchronous save of `state` as `step` (no-op if that step exists)."""
    if step in self.manager.all_steps():
      return
    self.manager.save(step, args=ocp.args.StandardSave(state))

  def restore(self, template, step: Optional[int] = None):
    """Restores the latest (or given) step into the structure, dtypes and shardings of
    `template` (a state or its abstract `jax.ShapeDtypeStruct` tree)."""
    step = self.latest_step() if step is None else step
    if step is None:
      raise CheckpointError(f"no checkpoint in {self.directory}")
    abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, template)
    try:
      return self.manager.restore(step, args=ocp.args.StandardRestore(abstract))
    except Exception as e:
      raise CheckpointError(f"could not restore step {step} from {self.directory / str(step)}: "
                            f"{type(e).__name__}: {e}") from e

  def wait(self) -> None:
    self.manager.wait_until_finished()

  def close(self) -> None:
    self.manager.wait_until_finished()
    self.manager.close()
