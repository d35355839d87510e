"""Where metrics go: metrics.jsonl (one JSON object per log point) and TensorBoard events."""
import json
import math
import os
from pathlib import Path


def last_metrics(workdir) -> dict:
  """The last row of `workdir/metrics.jsonl` ({} when there is none); non-finite values are
  the strings the writer stores ("nan", "inf")."""
  path = Path(workdir) / "metrics.jsonl"
  rows = [r for r in path.read_text().splitlines() if r] if path.exists() else []
  return json.loads(rows[-1]) if rows else {}


class MetricWriter:
  """Appends log rows to `workdir/metrics.jsonl` and to TensorBoard.

  `start_step`: the step the run starts (or resumes) from. TensorBoard is told to hide the
  events an earlier, interrupted run wrote beyond it (a SessionLog.START purge event at
  start_step + 1), as the caller cuts metrics.jsonl back to the same step."""

  def __init__(self, workdir, enabled: bool = True, start_step: int = 0):
    self.enabled = enabled
    self._tb = None
    if enabled:
      self.path = Path(workdir) / "metrics.jsonl"
      from tensorboardX import SummaryWriter
      # The event file's name is its creation second and host; the suffix keeps a restart in
      # the same second from overwriting the last file and sorts it after (TensorBoard reads
      # the files in name order).
      self._tb = SummaryWriter(str(Path(workdir) / "tensorboard"), purge_step=int(start_step) + 1,
                               filename_suffix=f".from{int(start_step):010d}.{os.getpid()}")

  def write(self, step: int, scalars: dict) -> None:
    if not self.enabled:
      return
    row = {"step": int(step)}
    for k, v in scalars.items():
      v = float(v)
      row[k] = v if math.isfinite(v) else str(v)
      self._tb.add_scalar(k, v, int(step))
    with open(self.path, "a") as f:
      f.write(json.dumps(row) + "\n")

  def image(self, step: int, tag: str, pixels) -> None:
    if self.enabled:
      self._tb.add_image(tag, pixels, int(step), dataformats="HWC" if pixels.ndim == 3 else "HW")

  def close(self) -> None:
    if self._tb is not None:
      self._tb.close()
