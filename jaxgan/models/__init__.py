"""Generator / discriminator modules and the one place that builds them from a config."""
from typing import Sequence

import flax.linen as nn
import jax.numpy as jnp

from jaxgan.config import ConfigError, check_choices
from jaxgan.models import dcgan, mlp
from jaxgan.models.dcgan import DCGANDiscriminator, DCGANGenerator
from jaxgan.models.layers import depth_to_space
from jaxgan.models.mlp import MLPDiscriminator, MLPGenerator

MODELS = ("mlp", "dcgan")
# Compute dtypes: "bf16" is mixed precision (float32 params, bfloat16 activations and matmuls,
# float32 model outputs, so losses and penalty reductions stay float32).
PRECISIONS = {"fp32": jnp.float32, "bf16": jnp.bfloat16}


def check_config(cfg, precision: str = "fp32") -> None:
  """The model block's names must be known ones (model.name, its activations / upsampling,
  precision); a ConfigError names the valid values."""
  flat = {f"model.{k}": v for k, v in dict(cfg).items()}
  flat["precision"] = precision
  choices = {"model.name": MODELS, "precision": tuple(PRECISIONS)}
  if cfg.get("name") == "mlp":
    choices.update({"model.out_activation": tuple(mlp.ACTIVATIONS),
                    "model.d_activation": tuple(mlp.D_ACTIVATIONS)})
  if cfg.get("name") == "dcgan":
    choices["model.upsample"] = dcgan.UPSAMPLE
  check_choices(flat, choices)


def build_models(cfg, data_shape: Sequence[int], precision: str = "fp32",
                 num_classes: int = 0) -> tuple[nn.Module, nn.Module]:
  """Returns (generator, discriminator) for `cfg` (the config's `model` block); a ConfigError
  (a ValueError) when the model cannot make data of `data_shape`. num_classes > 0: the
  class-conditional G(z, y) and D(x, y) (each model's docstring says how they condition)."""
  check_config(cfg, precision)
  data_shape = tuple(int(d) for d in data_shape)
  dtype = PRECISIONS[precision]
  # g_batch_norm, g_out_conv, d_activation, d_minibatch_std: configs written before these
  # keys get the old model
  mbstd, out_conv = cfg.get("d_minibatch_std", 0), cfg.get("g_out_conv", 0)
  if cfg.name == "mlp":
    if out_conv and (len(data_shape) != 3 or data_shape[0] % 2 or data_shape[1] % 2):
      raise ConfigError(f"config.model.g_out_conv > 0 needs images [H, W, C] with even H and "
                        f"W; the data has shape {data_shape} (set it to 0)")
    return (MLPGenerator(data_shape, tuple(cfg.g_hidden), cfg.out_activation, dtype,
                         batch_norm=cfg.get("g_batch_norm", False), out_conv=out_conv,
                         num_classes=num_classes),
            MLPDiscriminator(tuple(cfg.d_hidden), cfg.spectral_norm, dtype,
                             activation=cfg.get("d_activation", "relu"), minibatch_std=mbstd,
                             num_classes=num_classes))
  if cfg.name == "dcgan":
    if len(data_shape) != 3 or data_shape[0] != data_shape[1] or data_shape[0] not in (32, 64):
      raise ConfigError(f"model 'dcgan' needs 32x32 or 64x64 images; the data has shape "
                        f"{data_shape} (set data.image_size=32 or 64 to resize)")
    return (DCGANGenerator(data_shape, cfg.width, cfg.upsample, dtype, num_classes=num_classes),
            DCGANDiscriminator(cfg.width, cfg.spectral_norm, dtype, minibatch_std=mbstd,
                               num_classes=num_classes))
  raise ConfigError(f"unknown model {cfg.name!r}; valid: {', '.join(MODELS)}")


__all__ = ["MLPGenerator", "MLPDiscriminator", "DCGANGenerator", "DCGANDiscriminator",
           "build_models", "check_config", "depth_to_space", "MODELS", "PRECISIONS"]
