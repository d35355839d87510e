"""Limited data: the default MLP GAN on 500 of the embedded digits (10%, 50 per class, the
same subset for every seed: data.limit), with ADA (adaptive augmentation of D's inputs,
target r_t 0.6), 6,000 steps. FID is scored against all 5,000 digits.

Which augmentation helps here, and how much, is measured in experiments/RESULTS.md
("Limited data") by `python experiments/limited_data_grid.py` (none / DiffAugment / ADA at
100%, 10% and 2% of the digits, 3 seeds each).

Run:
  jaxgan train --config experiments/mnist_limited.py --workdir runs/mnist_limited
  jaxgan sweep --config experiments/mnist_limited.py --seeds 3 --workdir runs/mnist_limited_sweep
"""
from jaxgan.config import load_config_file


def get_config():
  c = load_config_file("experiments/mnist_mlp.py")
  c.data.limit = 500
  c.augment.policy = "ada"                  # "" | "ada" | e.g. "color,translation,cutout"
  c.augment.ada_target = 0.6
  c.augment.ada_kimg = 100.0                # p can go 0 -> 1 in 100k images (of 384k here)
  c.steps = 6000
  c.checkpoint_every = 2000
  c.sample_every = 2000
  return c
