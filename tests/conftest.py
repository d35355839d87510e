"""8 fake CPU devices for every test (set before JAX is imported)."""
import os

os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") +
                           " --xla_force_host_platform_device_count=8").strip()
os.environ.setdefault("JAX_PLATFORMS", "cpu")

import jax  # noqa: E402
import pytest  # noqa: E402

from jaxgan import config as config_lib  # noqa: E402


@pytest.fixture
def mlp_config():
  """The default config, shrunk for tests."""
  c = config_lib.load_config_file("experiments/mnist_mlp.py")
  c.steps, c.batch_size, c.log_every, c.sample_every, c.checkpoint_every = 20, 16, 5, 10, 10
  c.model.g_hidden, c.model.d_hidden = (32, 32), (32, 32)
  return c


def test_eight_devices():
  assert jax.device_count() == 8
