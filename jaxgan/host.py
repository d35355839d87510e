"""What the host loops of `jaxgan train` and `jaxgan sweep` share: the log line, and SIGTERM /
Ctrl-C handling (`Preemption`). Nothing here is traced."""
import os
import signal

import jax


def is_writer() -> bool:
  """Process 0 writes metrics, images and logs; checkpoints are written collectively."""
  return jax.process_index() == 0


def log(msg: str) -> None:
  """`[jaxgan] msg` on stdout, from the writing process only."""
  if is_writer():
    print(f"[jaxgan] {msg}", flush=True)


class Preemption:
  """Turns SIGTERM and a first Ctrl-C (SIGINT) into a flag, `requested`, that the host loop
  checks between steps; a second Ctrl-C raises KeyboardInterrupt at once. `name` is the first
  signal's name. A process started with SIGINT ignored (nohup, `&` in a script) keeps ignoring
  it. With `handle=False` (several processes: JAX's preemption notifier owns SIGTERM and the
  processes agree on a step to save) no handler is installed and `requested` stays False.

    with Preemption() as preemption:
      for step in ...:
        ...
        if preemption.requested:
          save(step); wait()
          preemption.stop(f"checkpoint of step {step} committed")  # Ctrl-C: raises
          break
  """
  SIGNALS = (signal.SIGTERM, signal.SIGINT)

  def __init__(self, handle: bool = True):
    self.handle = handle
    self.requested = False
    self.name = None
    self._previous = {}

  def __enter__(self):
    for sig in self.SIGNALS if self.handle else ():
      if sig == signal.SIGINT and signal.getsignal(sig) == signal.SIG_IGN:
        continue  # started with SIGINT ignored: keep it so
      try:
        self._previous[sig] = signal.signal(sig, self._handle)
      except ValueError:  # not the main thread: no handler
        pass
    return self

  def _handle(self, signum, frame):
    if self.requested and signum == signal.SIGINT:
      raise KeyboardInterrupt
    if not self.requested:
      self.requested, self.name = True, signal.Signals(signum).name
      if signum == signal.SIGINT:  # os.write: print is not safe inside a signal handler
        os.write(2, b"\n[jaxgan] Ctrl-C: finishing the step and committing a checkpoint; "
                    b"Ctrl-C again to stop at once\n")

  def stop(self, saved: str) -> None:
    """Call once what the loop saves on a stop is committed (`saved` says what): logs that and
    how to resume; after Ctrl-C then raises KeyboardInterrupt (saved, but the caller is still
    interrupted, as Ctrl-C means). Without a handled signal (several processes, where JAX saw
    the SIGTERM) the stop is a SIGTERM's."""
    name = self.name or "SIGTERM"
    log(f"{name}: {saved}; exiting. Re-run the same command to resume.")
    if name == "SIGINT":
      raise KeyboardInterrupt

  def __exit__(self, *exc):
    for sig, previous in self._previous.items():
      signal.signal(sig, previous)
    self._previous = {}
