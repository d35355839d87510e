"""The seed article's GAN: MLP G and D on the embedded 5k MNIST digits, with R1 on real data.

L(G, D) = E[log D(x)] + E[log(1 - D(G(z)))] + lambda E[||grad_x D(x)||^2], trained with the
non-saturating G loss (set --config.loss=minimax for the seed's log(1 - D(G(z)))).

Run:
  jaxgan train --config experiments/mnist_mlp.py --workdir runs/mnist_mlp
"""
import ml_collections


def get_config():
  c = ml_collections.ConfigDict()
  c.steps = 12000
  c.batch_size = 64
  c.seed = 0
  c.checkpoint_every = 2000
  c.log_every = 200
  c.sample_every = 1000
  c.num_sample_images = 64
  c.eval_every = 0                       # >0: `jaxgan eval` metrics every K steps -> eval/
  c.eval_num = 0                         # samples per eval; 0: the data's default (5,000)
  c.eval_inception = ""                  # FID Inception weights (.npz): image metrics in its
                                         # features ("": the MNIST classifier's)
  c.steps_per_call = 1                   # K > 1: K steps per compiled call (lax.scan)

  c.data = ml_collections.ConfigDict(dict(
      name="mnist5k", image_size=0, split="train", data_dir="", image_key="image"))
  c.model = ml_collections.ConfigDict(dict(
      name="mlp", latent_dim=100, g_hidden=(128, 256), d_hidden=(256, 128),
      out_activation="tanh", g_batch_norm=False, g_out_conv=0, d_activation="relu",
      d_minibatch_std=0, spectral_norm=False, width=64, upsample="transpose"))

  c.loss = "non_saturating"              # the G loss selects minimax vs non-saturating
  c.penalty = ml_collections.ConfigDict(dict(name="r1", weight=1.0, every=1))
  c.d_steps = 1
  c.pack = 1                             # PacGAN: D judges packs of m examples (m | batch)
  c.ema_decay = 0.999
  c.skip_nonfinite = False               # true: skip (and count) updates that give NaN/Inf
  # Divergence warnings (logged and counted in metrics.jsonl): D wins when its loss stays
  # below d_wins_loss for d_wins_logs log points in a row; collapse when the fakes' mean
  # pairwise distance falls below collapse_ratio times the real batch's.
  c.diagnostics = ml_collections.ConfigDict(dict(d_wins_loss=0.01, d_wins_logs=5,
                                                 collapse_ratio=0.05))
  c.precision = "fp32"                   # fp32 | bf16 (bf16 compute, fp32 params and losses)
  c.optim = ml_collections.ConfigDict(dict(
      g=dict(lr=2e-4, b1=0.5, b2=0.999), d=dict(lr=2e-4, b1=0.5, b2=0.999),
      # (start, end) in optimizer updates (= steps when d_steps=1): lr constant until start,
      # then linearly to 0 at end; (0, 0): constant throughout
      lr_decay=(0, 0)))
  return c
