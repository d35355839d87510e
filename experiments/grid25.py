"""25-Gaussian grid (VEEGAN/PacGAN's 2D mode-collapse benchmark): MLP G and D.

Run (one GAN, then 10 seeds in one program with the mode metrics in DIR/summary.json):
  jaxgan train --config experiments/grid25.py --workdir runs/grid25
  jaxgan sweep --config experiments/grid25.py --seeds 10 --workdir runs/grid25_sweep
"""
import ml_collections

from jaxgan.config import load_config_file


def get_config():
  c = load_config_file("experiments/mnist_mlp.py")
  c.steps = 40000
  c.batch_size = 256
  c.checkpoint_every = 5000
  c.log_every = 500
  c.sample_every = 5000
  c.num_sample_images = 1000
  c.data.name = "grid25"
  c.model.latent_dim = 2                 # PacGAN's 2-D z: fewer samples between modes than 16-D
  c.model.g_hidden = (128, 128, 128)
  c.model.d_hidden = (128, 128, 128)
  c.model.out_activation = "none"
  c.loss = "non_saturating"
  c.penalty = ml_collections.ConfigDict(dict(name="r1", weight=0.1, every=1))
  c.ema_decay = 0.999
  c.optim.g.lr = 2e-3                    # G faster than D: HQ % rises ~2x faster than at 1e-3
  c.optim.d.lr = 1e-3
  c.optim.lr_decay = (30000, 40000)      # anneal to 0 over the last quarter: sharper modes
  return c
