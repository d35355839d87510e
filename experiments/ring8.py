"""8-Gaussian ring (VEEGAN/PacGAN's 2D mode-collapse benchmark): MLP G and D.

Run (one GAN, then 10 seeds in one program with the mode metrics in DIR/summary.json):
  jaxgan train --config experiments/ring8.py --workdir runs/ring8
  jaxgan sweep --config experiments/ring8.py --seeds 10 --workdir runs/ring8_sweep
"""
import ml_collections

from jaxgan.config import load_config_file


def get_config():
  c = load_config_file("experiments/mnist_mlp.py")
  c.steps = 30000
  c.batch_size = 256
  c.checkpoint_every = 2000
  c.log_every = 250
  c.sample_every = 1000
  c.num_sample_images = 1000
  c.data.name = "ring8"
  c.model.latent_dim = 2                 # PacGAN's 2-D z: fewer samples between modes than 16-D
  c.model.g_hidden = (128, 128, 128)
  c.model.d_hidden = (128, 128, 128)
  c.model.out_activation = "none"
  c.loss = "non_saturating"
  c.penalty = ml_collections.ConfigDict(dict(name="r1", weight=0.01, every=1))
  c.ema_decay = 0.999
  c.optim.g.lr = c.optim.d.lr = 1e-3
  c.optim.lr_decay = (20000, 30000)      # anneal to 0 over the last third: sharper modes
  return c
