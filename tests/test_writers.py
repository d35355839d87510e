"""metrics.jsonl and TensorBoard after a resume: each log point once."""
import json

from jaxgan.writers import MetricWriter, last_metrics
from tests.util import tensorboard_events, visible_scalars


def test_resume_hides_the_interrupted_runs_later_points(tmp_path):
  first = MetricWriter(tmp_path)
  for step in (1, 2, 3, 4):                  # the run logs 4 points, its checkpoint is at 2
    first.write(step, {"d_loss": 10.0 + step})
  first.close()
  resumed = MetricWriter(tmp_path, start_step=2)
  for step in (3, 4):
    resumed.write(step, {"d_loss": 20.0 + step})
  resumed.close()
  assert visible_scalars(tmp_path / "tensorboard", "d_loss") == [
      (1, 11.0), (2, 12.0), (3, 23.0), (4, 24.0)]
  starts = [(step, kind) for _, step, kind, _ in tensorboard_events(tmp_path / "tensorboard")
            if kind == "session_start"]
  assert starts == [(1, "session_start"), (3, "session_start")]
  assert last_metrics(tmp_path) == {"step": 4, "d_loss": 24.0}


def test_fresh_writer_appends_rows(tmp_path):
  w = MetricWriter(tmp_path)
  w.write(5, {"a": 1, "b": float("nan")})
  w.close()
  rows = [json.loads(r) for r in (tmp_path / "metrics.jsonl").read_text().splitlines()]
  assert rows == [{"step": 5, "a": 1.0, "b": "nan"}]
