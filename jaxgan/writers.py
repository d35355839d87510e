"""Where metrics go: metrics.jsonl (one JSON object per log point) and TensorBoard events."""
import json
import math
import os
import time
from pathlib import Path


def last_metrics(workdir) -> dict:
  """The last row of `workdir/metrics.jsonl` ({} when there is none); non-finite values are
  the strings the writer stores ("nan", "inf")."""
  path = Path(workdir) / "metrics.jsonl"
  rows = [r for r in path.read_text().splitlines() if r] if path.exists() else []
  return json.loads(rows[-1]) if rows else {}


def write_atomic(path: Path, text: str) -> None:
  """A kill mid-write leaves the old file, never half a file."""
  tmp = path.with_name(path.name + ".tmp")
  tmp.write_text(text)
  os.replace(tmp, path)


def _cut_rows(path: Path, step: int) -> list:
  """Drops the log rows beyond `step` (a resumed run writes them again) and a torn last line
  of a killed run; returns the rows kept."""
  rows = []
  if path.exists():
    for line in path.read_text().splitlines():
      try:
        row = json.loads(line)
      except json.JSONDecodeError:
        continue
      if row["step"] <= step:
        rows.append(row)
    write_atomic(path, "".join(json.dumps(r) + "\n" for r in rows))
  return rows


class MetricWriter:
  """Appends log rows to `workdir/metrics.jsonl` and to TensorBoard events in
  `workdir/tensorboard/`, both on disk when `write` returns (a kill -9 loses neither).

  `start_step`: the step the run starts (or resumes) from. The rows an earlier, interrupted run
  wrote beyond it are cut from metrics.jsonl (`self.rows`: the rows kept), and TensorBoard is
  told to hide its events beyond it (a SessionLog.START purge event at start_step + 1). The events are
  written synchronously (tensorboardX's SummaryWriter queues them to a thread and may lose the
  last ones on a kill); log points are rare, so this costs nothing in the step loop."""

  def __init__(self, workdir, enabled: bool = True, start_step: int = 0):
    self.enabled = enabled
    self._events = None
    self.rows = []
    if enabled:
      from tensorboardX.event_file_writer import EventsWriter
      from tensorboardX.proto.event_pb2 import Event, SessionLog
      self.path = Path(workdir) / "metrics.jsonl"
      self.rows = _cut_rows(self.path, int(start_step))
      logdir = Path(workdir) / "tensorboard"
      logdir.mkdir(parents=True, exist_ok=True)
      # The file's name is its creation second and host; the suffix keeps a restart in the same
      # second from overwriting the last file and sorts it after (TensorBoard reads the files
      # in name order).
      self._events = EventsWriter(str(logdir / "events"),
                                  f".from{int(start_step):010d}.{os.getpid()}")
      self._events.write_event(Event(wall_time=time.time(), step=int(start_step) + 1,
                                     session_log=SessionLog(status=SessionLog.START)))
      self._events.flush()

  def write(self, step: int, scalars: dict) -> None:
    if not self.enabled:
      return
    from tensorboardX import summary
    from tensorboardX.proto.event_pb2 import Event
    row = {"step": int(step)}
    for k, v in scalars.items():
      v = float(v)
      row[k] = v if math.isfinite(v) else str(v)
      self._events.write_event(Event(wall_time=time.time(), step=int(step),
                                     summary=summary.scalar(k, v)))
    self._events.flush()
    with open(self.path, "a") as f:
      f.write(json.dumps(row) + "\n")

  def close(self) -> None:
    if self._events is not None:
      self._events.close()
      self._events = None
