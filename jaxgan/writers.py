"""Where metrics go: metrics.jsonl (one JSON object per log point) and TensorBoard events."""
import json
import math
from pathlib import Path


def last_metrics(workdir) -> dict:
  """The last row of `workdir/metrics.jsonl` ({} when there is none); non-finite values are
  the strings the writer stores ("nan", "inf")."""
  path = Path(workdir) / "metrics.jsonl"
  rows = [r for r in path.read_text().splitlines() if r] if path.exists() else []
  return json.loads(rows[-1]) if rows else {}


class MetricWriter:
  def __init__(self, workdir, enabled: bool = True):
    self.enabled = enabled
    self._tb = None
    if enabled:
      self.path = Path(workdir) / "metrics.jsonl"
      from tensorboardX import SummaryWriter
      self._tb = SummaryWriter(str(Path(workdir) / "tensorboard"))

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
