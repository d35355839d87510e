"""Where metrics go: metrics.jsonl (one JSON object per log point) and TensorBoard events."""
import json
import math
from pathlib import Path


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
