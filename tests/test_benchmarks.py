"""benchmarks/: the FLOP model, the PyTorch peers' parameter counts, the JSON; and the fast
DCGAN layers (same function as the plain Flax layers) and bf16 mixed precision."""
import functools
import json

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

from benchmarks import flops
from jaxgan import config as config_lib
from jaxgan.models import build_models, layers
from jaxgan.models.dcgan import Upsample2x
from jaxgan.state import create_state, spec_from_config
from jaxgan.train_step import train_step


def test_forward_flops_match_a_hand_count():
  dense = nn.Sequential([nn.Dense(4), nn.relu, nn.Dense(5)])
  v = dense.init(jax.random.key(0), jnp.zeros((1, 3)))
  assert flops.forward_flops(dense.apply, v, jnp.zeros((2, 3))) == 2 * 2 * (3 * 4 + 4 * 5)
  conv = nn.Conv(3, (4, 4), strides=(2, 2), padding=((1, 1), (1, 1)))
  v = conv.init(jax.random.key(0), jnp.zeros((1, 8, 8, 2)))
  # 4x4 outputs x 3 channels, each 4*4*2 multiply-adds
  assert flops.forward_flops(conv.apply, v, jnp.zeros((1, 8, 8, 2))) == 2 * (16 * 3) * (16 * 2)
  # a transposed conv counts useful MACs: each of the 4x4x2 inputs meets 16 taps x 3 outputs
  tconv = nn.ConvTranspose(3, (4, 4), strides=(2, 2), padding="SAME")
  v = tconv.init(jax.random.key(0), jnp.zeros((1, 4, 4, 2)))
  assert flops.forward_flops(tconv.apply, v, jnp.zeros((1, 4, 4, 2))) == 2 * (16 * 2) * (16 * 3)
  # ... and so does the fast layer that computes the same function
  fast = layers.ConvTranspose4x4(3)
  assert flops.forward_flops(fast.apply, v, jnp.zeros((1, 4, 4, 2))) == 2 * (16 * 2) * (16 * 3)


def test_step_flop_formula():
  g, d = 10.0, 100.0
  assert flops.step_flops(g, d, "none") == g + 3 * 2 * d + 3 * g + 2 * d
  assert flops.step_flops(g, d, "r1", reuse_penalty_pass=False) == 4 * g + 8 * d + 6 * d
  assert flops.step_flops(g, d, "r1", reuse_penalty_pass=True) == 4 * g + 8 * d + 3 * d
  assert flops.step_flops(g, d, "wgan_gp", reuse_penalty_pass=True, penalty_every=4) == (
      4 * g + 8 * d + 6 * d / 4)


def test_peak_table():
  assert flops.peak_flops("gpu", "NVIDIA H100 80GB HBM3", "bf16", 1)[0] == 989.4e12
  assert flops.peak_flops("gpu", "NVIDIA H200", "fp32", 1)[0] == 494.7e12
  assert flops.peak_flops("gpu", "Tesla T4", "bf16", 1)[0] is None


def test_fast_transpose_conv_is_flax_conv_transpose():
  x = jax.random.normal(jax.random.key(0), (2, 4, 6, 3))
  ref = nn.ConvTranspose(5, (4, 4), strides=(2, 2), padding="SAME", use_bias=False)
  v = ref.init(jax.random.key(1), x)
  fast = layers.ConvTranspose4x4(5)
  np.testing.assert_array_equal(fast.init(jax.random.key(1), x)["params"]["kernel"],
                                v["params"]["kernel"])               # same parameter and init
  np.testing.assert_allclose(fast.apply(v, x), ref.apply(v, x), atol=1e-5)


def test_subpixel_upsampling_contains_the_transposed_conv():
  """The 3x3 sub-pixel layer with weights built from a 4x4 stride-2 transposed conv's
  equals that transposed conv: phase (a, b) reads window rows a+s, cols b+u with taps
  (a+2s, b+2u)."""
  c_in, f = 3, 2
  x = jax.random.normal(jax.random.key(0), (2, 5, 4, c_in))
  ref = nn.ConvTranspose(f, (4, 4), strides=(2, 2), padding="SAME", use_bias=False)
  k = np.asarray(ref.init(jax.random.key(1), x)["params"]["kernel"])  # [4, 4, Cin, F]
  w3 = np.zeros((3, 3, c_in, 2, 2, f), np.float32)
  for a in (0, 1):
    for b in (0, 1):
      for s in (0, 1):
        for u in (0, 1):
          w3[a + s, b + u, :, a, b, :] = k[a + 2 * s, b + 2 * u]
  sub = Upsample2x(f, "subpixel")
  out = sub.apply({"params": {"Conv_0": {"kernel": jnp.asarray(w3.reshape(3, 3, c_in, 4 * f))}}}, x)
  np.testing.assert_allclose(out, ref.apply({"params": {"kernel": k}}, x), atol=1e-5)


def test_fast_strided_conv_gradients_match_lax():
  x = jax.random.normal(jax.random.key(0), (2, 8, 8, 3))
  k = jax.random.normal(jax.random.key(1), (4, 4, 3, 5))
  ref = lambda x, k: lax.conv_general_dilated(x, k, (2, 2), ((1, 1), (1, 1)),
                                              dimension_numbers=("NHWC", "HWIO", "NHWC"))
  for conv in (ref, layers.conv_4x4_s2):
    assert conv(x, k).shape == (2, 4, 4, 5)
  loss = lambda conv: lambda x, k: jnp.sum(jnp.sin(conv(x, k)))
  for a, b in zip(jax.grad(loss(ref), (0, 1))(x, k), jax.grad(loss(layers.conv_4x4_s2), (0, 1))(x, k)):
    np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-4)
  # the R1-style double backward: d/dk ||d loss / dx||^2
  r1 = lambda conv: lambda k: jnp.sum(jax.grad(loss(conv))(x, k) ** 2)
  np.testing.assert_allclose(jax.grad(r1(layers.conv_4x4_s2))(k), jax.grad(r1(ref))(k),
                             rtol=1e-4, atol=1e-3)
  # nn.Conv with the fast function is the same layer; other convs go to lax unchanged
  conv = functools.partial(nn.Conv, 5, (4, 4), strides=(2, 2), padding=((1, 1), (1, 1)))
  v = conv().init(jax.random.key(2), x)
  np.testing.assert_array_equal(conv(conv_general_dilated=layers.conv_general_dilated).apply(v, x),
                                conv().apply(v, x))
  jaxpr = jax.make_jaxpr(nn.Conv(5, (3, 3), conv_general_dilated=layers.conv_general_dilated)
                         .init)(jax.random.key(0), x)
  assert "custom_vjp" not in str(jaxpr)


def _tiny_dcgan_config(precision):
  c = config_lib.load_config_file("experiments/mnist_dcgan32.py")
  c.model.width, c.model.latent_dim, c.precision = 4, 8, precision
  return c


def test_bf16_step_stays_close_to_fp32():
  shape, batch = (32, 32, 1), 4
  real = jnp.tanh(jax.random.normal(jax.random.key(1), (batch, *shape)))
  out = {}
  for precision in ("fp32", "bf16"):
    spec = spec_from_config(_tiny_dcgan_config(precision), shape)
    state = create_state(spec, jax.random.key(0), shape)
    new, metrics = jax.jit(functools.partial(train_step, spec))(state, real)
    out[precision] = (state, new, metrics)
  s32, n32, m32 = out["fp32"]
  s16, n16, m16 = out["bf16"]
  # fp32 master weights, fp32 optimizer state and metrics
  assert all(x.dtype == jnp.float32 for x in jax.tree.leaves((n16.g_params, n16.d_params)))
  assert all(m16[k].dtype == jnp.float32 for k in ("d_loss", "g_loss", "penalty"))
  for k in ("d_loss", "g_loss", "penalty", "d_real", "d_fake"):
    np.testing.assert_allclose(m16[k], m32[k], rtol=0.05, atol=0.02, err_msg=k)
  # the parameter updates point the same way
  upd = lambda n, s: np.concatenate([np.ravel(a - b) for a, b in
                                     zip(jax.tree.leaves(n.d_params), jax.tree.leaves(s.d_params))])
  u16, u32 = upd(n16, s16), upd(n32, s32)
  assert np.dot(u16, u32) / (np.linalg.norm(u16) * np.linalg.norm(u32)) > 0.9
  # and the convolutions really run in bf16
  spec = spec_from_config(_tiny_dcgan_config("bf16"), shape)
  jaxpr = str(jax.make_jaxpr(lambda v, x: spec.discriminator.apply(v, x))(
      {"params": s16.d_params}, real))
  assert "bf16" in jaxpr


def test_unknown_precision_is_refused():
  c = _tiny_dcgan_config("fp16")
  with pytest.raises(ValueError, match="config.precision = 'fp16' is not one of: fp32, bf16"):
    build_models(c.model, (32, 32, 1), c.precision)


@pytest.mark.slow
def test_benchmark_json(tmp_path):
  from benchmarks import train_step as bench
  out = tmp_path / "b.json"
  result = bench.main(["--model", "mlp", "--batch-size", "8", "--penalty", "r1",
                       "--repeats", "2", "--warmup", "1", "--target-s", "0.01",
                       "--json", str(out)])
  assert json.loads(out.read_text()) == json.loads(json.dumps(result))
  row, = result["rows"]
  for key in ("images_per_sec", "step_ms_median", "compile_s", "backend", "device_kind",
              "flops_per_step", "xla_flops_per_step", "achieved_flops_per_s", "mfu",
              "peak_memory_bytes", "params_g", "params_d"):
    assert key in row, key
  assert row["backend"] == "cpu" and row["peer"] == "jaxgan"
  assert row["images_per_sec"] == pytest.approx(8 / (row["step_ms_median"] / 1e3))
  # the analytic model and XLA's own count agree to within the non-matmul work
  assert 0.8 < row["flops_per_step"] / row["xla_flops_per_step"] < 1.4
  for key in ("date", "jax", "cpu", "load_avg"):
    assert key in result["env"]


@pytest.mark.parametrize("model,upsample", [("mlp", "transpose"), ("dcgan32", "transpose"),
                                            ("dcgan32", "subpixel"), ("dcgan64", "transpose")])
def test_torch_peer_has_the_same_parameter_count(model, upsample):
  pytest.importorskip("torch")
  from benchmarks import train_step as bench
  from benchmarks.peers import torch_gan
  args = bench.parser().parse_args(["--model", model, "--upsample", upsample])
  config, shape = bench.make_config(args)
  m = config.model
  spec = spec_from_config(config, shape)
  state = jax.eval_shape(lambda: create_state(spec, jax.random.key(0), shape))
  G, D = torch_gan.build(model, shape, m.latent_dim, m.width, m.upsample, tuple(m.g_hidden),
                         tuple(m.d_hidden))
  count = lambda t: sum(int(np.prod(x.shape)) for x in jax.tree.leaves(t))
  print(model, upsample, "G", count(state.g_params), torch_gan.num_params(G),
        "D", count(state.d_params), torch_gan.num_params(D))
  assert torch_gan.num_params(G) == count(state.g_params)
  assert torch_gan.num_params(D) == count(state.d_params)
