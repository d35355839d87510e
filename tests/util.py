"""Shared test helpers."""
import jax
import numpy as np


def _plain(x):
  if hasattr(x, "dtype") and jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
    return np.asarray(jax.random.key_data(x))
  return np.asarray(x)


def assert_trees_equal(a, b):
  """Bitwise equality of two pytrees (typed PRNG keys compared by their data)."""
  assert jax.tree.structure(a) == jax.tree.structure(b)
  jax.tree.map(lambda x, y: np.testing.assert_array_equal(_plain(x), _plain(y)), a, b)


def assert_trees_close(a, b, rtol=1e-5, atol=1e-6):
  assert jax.tree.structure(a) == jax.tree.structure(b)
  jax.tree.map(lambda x, y: np.testing.assert_allclose(_plain(x), _plain(y), rtol=rtol, atol=atol),
               a, b)


def tensorboard_events(logdir):
  """[(file name, step, kind, value)] of every event in logdir's TensorBoard files, files in
  name (= creation time) order; kind is the scalar tag or "session_start". Reads the TFRecord
  framing (u64 length, u32 crc, data, u32 crc) without TensorFlow."""
  import struct
  from pathlib import Path
  from tensorboardX.proto.event_pb2 import Event
  out = []
  for path in sorted(Path(logdir).glob("events.out.tfevents.*")):
    data, pos = path.read_bytes(), 0
    while pos < len(data):
      (n,) = struct.unpack("<Q", data[pos:pos + 8]) if pos + 8 <= len(data) else (len(data),)
      if pos + 12 + n + 4 > len(data):       # a record torn by kill -9: TensorBoard stops too
        break
      event = Event.FromString(data[pos + 12:pos + 12 + n])
      pos += 12 + n + 4
      if event.HasField("session_log") and event.session_log.status == event.session_log.START:
        out.append((path.name, event.step, "session_start", None))
      for v in event.summary.value:
        out.append((path.name, event.step, v.tag, v.simple_value))
  return out


def visible_scalars(logdir, tag):
  """[(step, value)] as TensorBoard shows them: a session start at step s hides the events
  at steps >= s read before it (TensorBoard's restart purge)."""
  seen = []
  for _, step, kind, value in tensorboard_events(logdir):
    if kind == "session_start":
      seen = [(s, v) for s, v in seen if s < step]
    elif kind == tag:
      seen.append((step, value))
  return sorted(seen)


def load_experiment_script(name):
  """experiments/<name>.py as a module (the scripts are not a package)."""
  import importlib.util
  from pathlib import Path
  path = Path(__file__).resolve().parents[1] / "experiments" / f"{name}.py"
  spec = importlib.util.spec_from_file_location(name, path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def small_mlp_config():
  """The default config, shrunk for tests (the `mlp_config` fixture)."""
  from jaxgan import config as config_lib
  c = config_lib.load_config_file("experiments/mnist_mlp.py")
  c.steps, c.batch_size, c.log_every, c.sample_every, c.checkpoint_every = 20, 16, 5, 10, 10
  c.model.g_hidden, c.model.d_hidden = (32, 32), (32, 32)
  return c
