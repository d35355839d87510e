"""DCGAN-32 (w=64) on the embedded 5k MNIST digits resized to 32x32, with R1 on real data.

Run:
  jaxgan train --config experiments/mnist_dcgan32.py --workdir runs/mnist_dcgan32
"""
from jaxgan.config import load_config_file


def get_config():
  c = load_config_file("experiments/mnist_mlp.py")
  c.steps = 5000
  c.checkpoint_every = 1000
  c.sample_every = 500
  c.log_every = 100
  c.data.image_size = 32
  c.model.name = "dcgan"
  c.model.width = 64
  c.model.upsample = "transpose"  # the paper's layer; computed without dilated convs (layers.py)
  c.penalty.weight = 0.1
  return c
