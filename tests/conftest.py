"""8 fake CPU devices for every test (set before JAX is imported)."""
import os

os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") +
                           " --xla_force_host_platform_device_count=8").strip()
os.environ.setdefault("JAX_PLATFORMS", "cpu")

import atexit  # noqa: E402
import shutil  # noqa: E402
import tempfile  # noqa: E402

import jax  # noqa: E402
import pytest  # noqa: E402

from tests.util import small_mlp_config  # noqa: E402

# Many tests compile a program this session has compiled before (each `train()` call jits its
# step anew; resume tests train one config twice): an XLA compilation cache, empty at the start
# of each session, serves the repeats. Set here, before any test module can compile (the cache
# is looked up once, at the first compile). jit's trace cache, which the no-recompile tests
# count, is not affected; subprocesses do not inherit it.
_XLA_CACHE = tempfile.mkdtemp(prefix="jaxgan-tests-xla-cache-")
atexit.register(shutil.rmtree, _XLA_CACHE, ignore_errors=True)
jax.config.update("jax_compilation_cache_dir", _XLA_CACHE)
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)


@pytest.fixture
def mlp_config():
  """The default config, shrunk for tests."""
  return small_mlp_config()


def test_eight_devices():
  assert jax.device_count() == 8
