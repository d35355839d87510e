"""Generator / discriminator modules and the one place that builds them from a config."""
from typing import Sequence

import flax.linen as nn

from jaxgan.models.dcgan import DCGANDiscriminator, DCGANGenerator, depth_to_space
from jaxgan.models.mlp import MLPDiscriminator, MLPGenerator

MODELS = ("mlp", "dcgan")


def build_models(cfg, data_shape: Sequence[int]) -> tuple[nn.Module, nn.Module]:
  """Returns (generator, discriminator) for `cfg` (the config's `model` block)."""
  data_shape = tuple(int(d) for d in data_shape)
  if cfg.name == "mlp":
    return (MLPGenerator(data_shape, tuple(cfg.g_hidden), cfg.out_activation),
            MLPDiscriminator(tuple(cfg.d_hidden), cfg.spectral_norm))
  if cfg.name == "dcgan":
    if len(data_shape) != 3 or data_shape[0] != data_shape[1] or data_shape[0] not in (32, 64):
      raise ValueError(f"model 'dcgan' needs 32x32 or 64x64 images; the data has shape "
                       f"{data_shape} (set data.image_size=32 or 64 to resize)")
    return (DCGANGenerator(data_shape, cfg.width, cfg.upsample),
            DCGANDiscriminator(cfg.width, cfg.spectral_norm))
  raise ValueError(f"unknown model {cfg.name!r}; valid: {', '.join(MODELS)}")


__all__ = ["MLPGenerator", "MLPDiscriminator", "DCGANGenerator", "DCGANDiscriminator",
           "build_models", "depth_to_space", "MODELS"]
