"""Inception-v3 as used for FID (the TF 2015-12-05 graph, as ported by pytorch-fid), in Flax.

The FID variant differs from torchvision's Inception-v3 in its blocks (pytorch-fid's
FIDInceptionA/C/E): the 3x3 average pools in the A, C and E blocks do not count padding
(count_include_pad=False), and the last E block (Mixed_7c) pools with a 3x3 max pool instead.
Features are the 2048-d global average pool; logits are the 1008-way `fc`.

Weights: the standard FID weights `pt_inception-2015-12-05-6726825d.pth` (a PyTorch state
dict) converted once to .npz by `experiments/convert_fid_inception.py`; nothing is downloaded
at run time. Submodule names follow the PyTorch ones (`Mixed_5b.branch5x5_1.conv` ...), so
the conversion is a renaming plus transposes (`variables_from_torch`).

Input: [N, H, W, C] in [-1, 1], C in (1, 3); resized bilinearly to 299x299 (pytorch-fid
resizes [0, 1] images and maps them to [-1, 1]; bilinear resizing commutes with that map).
"""
import functools
import zipfile
from typing import Any, Mapping, Sequence

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jaxgan.metrics.features import FeatureExtractor, resize_to

INPUT_SIZE = 299
FEATURE_DIM = 2048
NUM_LOGITS = 1008


class BasicConv(nn.Module):
  """Conv (no bias) + BatchNorm(eps=1e-3, inference) + ReLU; PyTorch's BasicConv2d."""
  features: int
  kernel: Sequence[int]
  stride: int = 1
  padding: Sequence[int] = (0, 0)

  @nn.compact
  def __call__(self, x):
    ph, pw = self.padding
    x = nn.Conv(self.features, tuple(self.kernel), (self.stride, self.stride),
                padding=((ph, ph), (pw, pw)), use_bias=False, name="conv")(x)
    x = nn.BatchNorm(use_running_average=True, epsilon=1e-3, name="bn")(x)
    return nn.relu(x)


def _avg3(x):
  """3x3 stride-1 average pool, padding 1, padded cells not counted (FID variant)."""
  return nn.avg_pool(x, (3, 3), (1, 1), ((1, 1), (1, 1)), count_include_pad=False)


def _max3(x, stride=2, pad=0):
  return nn.max_pool(x, (3, 3), (stride, stride), ((pad, pad), (pad, pad)))


class InceptionA(nn.Module):                                         # FIDInceptionA
  pool_features: int

  @nn.compact
  def __call__(self, x):
    b1 = BasicConv(64, (1, 1), name="branch1x1")(x)
    b5 = BasicConv(48, (1, 1), name="branch5x5_1")(x)
    b5 = BasicConv(64, (5, 5), padding=(2, 2), name="branch5x5_2")(b5)
    b3 = BasicConv(64, (1, 1), name="branch3x3dbl_1")(x)
    b3 = BasicConv(96, (3, 3), padding=(1, 1), name="branch3x3dbl_2")(b3)
    b3 = BasicConv(96, (3, 3), padding=(1, 1), name="branch3x3dbl_3")(b3)
    bp = BasicConv(self.pool_features, (1, 1), name="branch_pool")(_avg3(x))
    return jnp.concatenate([b1, b5, b3, bp], -1)


class InceptionB(nn.Module):
  @nn.compact
  def __call__(self, x):
    b3 = BasicConv(384, (3, 3), stride=2, name="branch3x3")(x)
    bd = BasicConv(64, (1, 1), name="branch3x3dbl_1")(x)
    bd = BasicConv(96, (3, 3), padding=(1, 1), name="branch3x3dbl_2")(bd)
    bd = BasicConv(96, (3, 3), stride=2, name="branch3x3dbl_3")(bd)
    return jnp.concatenate([b3, bd, _max3(x)], -1)


class InceptionC(nn.Module):                                         # FIDInceptionC
  channels_7x7: int

  @nn.compact
  def __call__(self, x):
    c = self.channels_7x7
    b1 = BasicConv(192, (1, 1), name="branch1x1")(x)
    b7 = BasicConv(c, (1, 1), name="branch7x7_1")(x)
    b7 = BasicConv(c, (1, 7), padding=(0, 3), name="branch7x7_2")(b7)
    b7 = BasicConv(192, (7, 1), padding=(3, 0), name="branch7x7_3")(b7)
    bd = BasicConv(c, (1, 1), name="branch7x7dbl_1")(x)
    bd = BasicConv(c, (7, 1), padding=(3, 0), name="branch7x7dbl_2")(bd)
    bd = BasicConv(c, (1, 7), padding=(0, 3), name="branch7x7dbl_3")(bd)
    bd = BasicConv(c, (7, 1), padding=(3, 0), name="branch7x7dbl_4")(bd)
    bd = BasicConv(192, (1, 7), padding=(0, 3), name="branch7x7dbl_5")(bd)
    bp = BasicConv(192, (1, 1), name="branch_pool")(_avg3(x))
    return jnp.concatenate([b1, b7, bd, bp], -1)


class InceptionD(nn.Module):
  @nn.compact
  def __call__(self, x):
    b3 = BasicConv(192, (1, 1), name="branch3x3_1")(x)
    b3 = BasicConv(320, (3, 3), stride=2, name="branch3x3_2")(b3)
    b7 = BasicConv(192, (1, 1), name="branch7x7x3_1")(x)
    b7 = BasicConv(192, (1, 7), padding=(0, 3), name="branch7x7x3_2")(b7)
    b7 = BasicConv(192, (7, 1), padding=(3, 0), name="branch7x7x3_3")(b7)
    b7 = BasicConv(192, (3, 3), stride=2, name="branch7x7x3_4")(b7)
    return jnp.concatenate([b3, b7, _max3(x)], -1)


class InceptionE(nn.Module):                                         # FIDInceptionE_1 / _2
  max_pool: bool = False

  @nn.compact
  def __call__(self, x):
    b1 = BasicConv(320, (1, 1), name="branch1x1")(x)
    b3 = BasicConv(384, (1, 1), name="branch3x3_1")(x)
    b3 = jnp.concatenate([BasicConv(384, (1, 3), padding=(0, 1), name="branch3x3_2a")(b3),
                          BasicConv(384, (3, 1), padding=(1, 0), name="branch3x3_2b")(b3)], -1)
    bd = BasicConv(448, (1, 1), name="branch3x3dbl_1")(x)
    bd = BasicConv(384, (3, 3), padding=(1, 1), name="branch3x3dbl_2")(bd)
    bd = jnp.concatenate([BasicConv(384, (1, 3), padding=(0, 1), name="branch3x3dbl_3a")(bd),
                          BasicConv(384, (3, 1), padding=(1, 0), name="branch3x3dbl_3b")(bd)], -1)
    pooled = _max3(x, stride=1, pad=1) if self.max_pool else _avg3(x)
    bp = BasicConv(192, (1, 1), name="branch_pool")(pooled)
    return jnp.concatenate([b1, b3, bd, bp], -1)


class FIDInceptionV3(nn.Module):
  """[B, H, W, C] in [-1, 1] -> (pool features [B, 2048], logits [B, 1008])."""

  @nn.compact
  def __call__(self, x):
    x = resize_to(x, INPUT_SIZE, 3)                                  # [B, 299, 299, 3]
    x = BasicConv(32, (3, 3), stride=2, name="Conv2d_1a_3x3")(x)     # [B, 149, 149, 32]
    x = BasicConv(32, (3, 3), name="Conv2d_2a_3x3")(x)               # [B, 147, 147, 32]
    x = BasicConv(64, (3, 3), padding=(1, 1), name="Conv2d_2b_3x3")(x)
    x = _max3(x)                                                     # [B, 73, 73, 64]
    x = BasicConv(80, (1, 1), name="Conv2d_3b_1x1")(x)
    x = BasicConv(192, (3, 3), name="Conv2d_4a_3x3")(x)              # [B, 71, 71, 192]
    x = _max3(x)                                                     # [B, 35, 35, 192]
    x = InceptionA(32, name="Mixed_5b")(x)                           # [B, 35, 35, 256]
    x = InceptionA(64, name="Mixed_5c")(x)                           # [B, 35, 35, 288]
    x = InceptionA(64, name="Mixed_5d")(x)
    x = InceptionB(name="Mixed_6a")(x)                               # [B, 17, 17, 768]
    x = InceptionC(128, name="Mixed_6b")(x)
    x = InceptionC(160, name="Mixed_6c")(x)
    x = InceptionC(160, name="Mixed_6d")(x)
    x = InceptionC(192, name="Mixed_6e")(x)
    x = InceptionD(name="Mixed_7a")(x)                               # [B, 8, 8, 1280]
    x = InceptionE(name="Mixed_7b")(x)                               # [B, 8, 8, 2048]
    x = InceptionE(max_pool=True, name="Mixed_7c")(x)
    features = jnp.mean(x, axis=(1, 2))                              # [B, 2048]
    return features, nn.Dense(NUM_LOGITS, name="fc")(features)       # [B, 1008]


def init_variables(key: jax.Array):
  """Flax-initialised variables; use under `jax.eval_shape` for the structure (a real init at
  299x299 compiles for minutes on a CPU; `random_variables` is the fast stand-in)."""
  return FIDInceptionV3().init(key, jnp.zeros((1, INPUT_SIZE, INPUT_SIZE, 3), jnp.float32))


@functools.lru_cache(maxsize=1)
def _variable_shapes():
  return flax.traverse_util.flatten_dict(
      flax.core.unfreeze(jax.eval_shape(init_variables, jax.random.key(0))))


def variable_shapes() -> dict:
  """{path tuple: ShapeDtypeStruct} of every variable."""
  return dict(_variable_shapes())


def random_variables(seed: int = 0) -> dict:
  """Random weights with the right structure (He-scaled kernels, identity BatchNorm), drawn
  in NumPy: for tests of shapes and determinism without the real weights."""
  rng = np.random.default_rng(seed)
  out = {}
  for path, spec in variable_shapes().items():
    if path[-1] == "kernel":
      fan_in = int(np.prod(spec.shape[:-1]))
      w = rng.normal(0.0, np.sqrt(2.0 / fan_in), spec.shape)
    else:
      w = np.ones(spec.shape) if path[-1] in ("scale", "var") else np.zeros(spec.shape)
    out[path] = w.astype(np.float32)
  return flax.traverse_util.unflatten_dict(out)


# ------------------------------------------------------------------ PyTorch weight mapping
_TORCH_NAMES = {  # (collection, flax leaf) -> PyTorch parameter suffix
    ("params", "kernel"): "weight", ("params", "scale"): "weight", ("params", "bias"): "bias",
    ("batch_stats", "mean"): "running_mean", ("batch_stats", "var"): "running_var"}
_IGNORED_TORCH_KEYS = ("num_batches_tracked", "AuxLogits.")


def torch_name(path: Sequence[str]) -> str:
  """('params', 'Mixed_5b', 'branch1x1', 'conv', 'kernel') -> 'Mixed_5b.branch1x1.conv.weight'."""
  collection, *modules, leaf = path
  return ".".join([*modules, _TORCH_NAMES[(collection, leaf)]])


def _to_flax_layout(leaf: str, w: np.ndarray) -> np.ndarray:
  if leaf == "kernel" and w.ndim == 4:
    return w.transpose(2, 3, 1, 0)                                   # [O, I, kh, kw] -> HWIO
  if leaf == "kernel" and w.ndim == 2:
    return w.T                                                       # [O, I] -> [I, O]
  return w


def variables_from_torch(state_dict: Mapping[str, Any]) -> dict:
  """Flax variables of `FIDInceptionV3` from the pytorch-fid state dict (name -> array).

  Every variable must be found with the right shape; unknown keys (other than BatchNorm's
  `num_batches_tracked` and the unused auxiliary head) are refused.
  """
  flat = variable_shapes()
  out, used, errors = {}, set(), []
  for path, spec in flat.items():
    name = torch_name(path)
    if name not in state_dict:
      errors.append(f"missing {name} (for {'/'.join(path)}, shape {spec.shape})")
      continue
    w = _to_flax_layout(path[-1], np.asarray(state_dict[name], np.float32))
    if w.shape != spec.shape:
      errors.append(f"{name}: shape {tuple(np.shape(state_dict[name]))} does not fit "
                    f"{'/'.join(path)} {spec.shape}")
    out[path] = w
    used.add(name)
  extra = sorted(k for k in state_dict if k not in used
                 and not any(s in k for s in _IGNORED_TORCH_KEYS))
  if extra:
    errors.append(f"unexpected keys: {', '.join(extra[:10])}{' ...' if len(extra) > 10 else ''}")
  if errors:
    raise ValueError("the state dict is not the pytorch-fid Inception-v3 "
                     "(pt_inception-2015-12-05): " + "; ".join(errors[:10]))
  return flax.traverse_util.unflatten_dict(out)


def save_npz(path, variables) -> None:
  flat = flax.traverse_util.flatten_dict(flax.core.unfreeze(variables), sep="/")
  np.savez(path, **{k: np.asarray(v) for k, v in flat.items()})


def load_fid_inception(path, batch_size: int = 50) -> FeatureExtractor:
  """The FID Inception-v3 with weights from an .npz written by convert_fid_inception.py."""
  try:
    with np.load(path) as f:
      flat = {k: f[k] for k in f.files}
  except FileNotFoundError:
    raise FileNotFoundError(
        f"no Inception weights at {path}. Download pt_inception-2015-12-05-6726825d.pth "
        f"(see docs/evaluation.md) and convert it with "
        f"`python experiments/convert_fid_inception.py IN.pth {path}`") from None
  except (OSError, ValueError, zipfile.BadZipFile) as e:                # not an .npz
    raise ValueError(f"{path} is not an .npz of FID Inception-v3 variables "
                     f"({type(e).__name__}); make one with experiments/convert_fid_inception.py"
                     ) from None
  variables = flax.traverse_util.unflatten_dict(flat, sep="/")
  template = {"/".join(k): v for k, v in variable_shapes().items()}
  bad = sorted(set(template) ^ set(flat)) + [
      k for k in template if k in flat and flat[k].shape != template[k].shape]
  if bad:
    raise ValueError(f"{path} does not hold FID Inception-v3 variables (mismatched: "
                     f"{', '.join(bad[:5])}{' ...' if len(bad) > 5 else ''})")
  return FeatureExtractor("fid_inception_v3", FIDInceptionV3(), variables, batch_size)
