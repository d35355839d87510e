"""PyTorch peer of jaxgan's train step: the same networks, loss, penalties, Adam and EMA.

Written as a competent PyTorch user would: NCHW, `torch.autograd.grad(create_graph=True)` for
the gradient penalties, and the D forward on the penalty's points reused for the loss (R1 on
real, R2 on fake), which is also what jaxgan's step does. Parameter counts equal jaxgan's
(tests/test_benchmarks.py checks it).
"""
import copy
from typing import Sequence

import torch
from torch import nn
from torch.nn import functional as F


class MLPGenerator(nn.Module):
  def __init__(self, latent_dim: int, out_shape: Sequence[int], hidden=(128, 256)):
    super().__init__()
    dims = (latent_dim, *hidden)
    layers = []
    for a, b in zip(dims[:-1], dims[1:]):
      layers += [nn.Linear(a, b), nn.ReLU()]
    out = 1
    for d in out_shape:
      out *= d
    layers += [nn.Linear(dims[-1], out), nn.Tanh()]
    self.net = nn.Sequential(*layers)
    self.out_shape = tuple(out_shape)

  def forward(self, z):
    return self.net(z).view(z.shape[0], *self.out_shape)


class MLPDiscriminator(nn.Module):
  def __init__(self, in_dim: int, hidden=(256, 128)):
    super().__init__()
    dims = (in_dim, *hidden)
    layers = []
    for a, b in zip(dims[:-1], dims[1:]):
      layers += [nn.Linear(a, b), nn.ReLU()]
    layers += [nn.Linear(dims[-1], 1)]
    self.net = nn.Sequential(*layers)

  def forward(self, x):
    return self.net(x.flatten(1))[:, 0]


def upsample2x(c_in: int, c_out: int, method: str) -> nn.Module:
  if method == "transpose":
    return nn.ConvTranspose2d(c_in, c_out, 4, stride=2, padding=1, bias=False)
  if method == "subpixel":
    return nn.Sequential(nn.Conv2d(c_in, 4 * c_out, 3, padding=1, bias=False), nn.PixelShuffle(2))
  raise ValueError(f"unknown upsample method {method!r}; valid: 'transpose', 'subpixel'")


class DCGANGenerator(nn.Module):
  def __init__(self, latent_dim: int, resolution: int, channels: int, width: int = 64,
               upsample: str = "subpixel"):
    super().__init__()
    mults = {32: (4, 2, 1), 64: (8, 4, 2, 1)}[resolution]
    self.c0 = mults[0] * width
    self.fc = nn.Linear(latent_dim, 16 * self.c0, bias=False)
    self.bn0 = nn.BatchNorm2d(self.c0, momentum=0.1)               # = flax momentum 0.9
    layers, c = [], self.c0
    for m in mults[1:]:
      layers += [upsample2x(c, m * width, upsample), nn.BatchNorm2d(m * width, momentum=0.1),
                 nn.ReLU()]
      c = m * width
    layers += [upsample2x(c, channels, upsample), nn.Tanh()]
    self.net = nn.Sequential(*layers)

  def forward(self, z):
    h = self.fc(z).view(z.shape[0], self.c0, 4, 4)                  # [B, C0, 4, 4]
    return self.net(F.relu(self.bn0(h)))                            # [B, C, R, R]


class DCGANDiscriminator(nn.Module):
  def __init__(self, resolution: int, channels: int, width: int = 64):
    super().__init__()
    mults = {32: (1, 2, 4), 64: (1, 2, 4, 8)}[resolution]
    layers, c = [], channels
    for m in mults:
      layers += [nn.Conv2d(c, m * width, 4, stride=2, padding=1), nn.LeakyReLU(0.2)]
      c = m * width
    self.net = nn.Sequential(*layers, nn.Flatten(), nn.Linear(16 * c, 1))

  def forward(self, x):
    return self.net(x)[:, 0]


def build(model: str, data_shape: Sequence[int], latent_dim: int = 100, width: int = 64,
          upsample: str = "subpixel", g_hidden=(128, 256), d_hidden=(256, 128)):
  """(G, D) for a jaxgan model name; data_shape is jaxgan's (H, W, C)."""
  if model == "mlp":
    n = 1
    for d in data_shape:
      n *= d
    return MLPGenerator(latent_dim, data_shape, g_hidden), MLPDiscriminator(n, d_hidden)
  res, _, channels = data_shape
  return (DCGANGenerator(latent_dim, res, channels, width, upsample),
          DCGANDiscriminator(res, channels, width))


def num_params(module: nn.Module) -> int:
  return sum(p.numel() for p in module.parameters())


def _ns_d(real_logits, fake_logits):
  return F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()


def _sqnorm(grad):
  return grad.flatten(1).pow(2).sum(1)                              # [B]


class TorchStep:
  """One GAN iteration (D update then G update, EMA of G), like jaxgan.train_step."""

  def __init__(self, G, D, latent_dim: int, penalty: str = "none", weight: float = 1.0,
               lr: float = 2e-4, betas=(0.5, 0.999), ema_decay: float = 0.999,
               compile: bool = False, device: str = "cpu", every: int = 1):
    self.G, self.D = G.train(), D.train()
    self.ema = copy.deepcopy(G).requires_grad_(False)
    self.g_opt = torch.optim.Adam(G.parameters(), lr=lr, betas=betas)
    self.d_opt = torch.optim.Adam(D.parameters(), lr=lr, betas=betas)
    self.device, self.every, self.count = device, every, 0   # lazy regularisation as jaxgan
    self.latent_dim, self.penalty, self.weight, self.ema_decay = latent_dim, penalty, weight, ema_decay
    self.g_fn = torch.compile(G) if compile else G
    self.d_fn = torch.compile(D) if compile else D
    if penalty not in ("none", "r1", "r2", "wgan_gp"):
      raise ValueError(f"unknown penalty {penalty!r}; valid: none, r1, r2, wgan_gp")

  def _d_loss(self, real, fake):
    D, b = self.d_fn, real.shape[0]
    penalty = self.penalty if self.count % self.every == 0 else "none"
    weight = self.weight * self.every
    if penalty in ("r1", "r2"):   # the penalty's D pass also gives that half's logits
      x_pen = (real if penalty == "r1" else fake).detach().requires_grad_(True)
      logits_pen = D(x_pen)
      grad, = torch.autograd.grad(logits_pen.sum(), x_pen, create_graph=True)
      logits_other = D(fake if penalty == "r1" else real)
      real_l, fake_l = ((logits_pen, logits_other) if penalty == "r1"
                        else (logits_other, logits_pen))
      return _ns_d(real_l, fake_l) + weight * _sqnorm(grad).mean()
    logits = D(torch.cat([real, fake]))
    loss = _ns_d(logits[:b], logits[b:])
    if penalty == "wgan_gp":
      eps = torch.rand((b,) + (1,) * (real.dim() - 1), device=real.device)
      xhat = (eps * real + (1 - eps) * fake).requires_grad_(True)
      grad, = torch.autograd.grad(D(xhat).sum(), xhat, create_graph=True)
      loss = loss + weight * ((_sqnorm(grad) + 1e-12).sqrt() - 1).pow(2).mean()
    return loss

  def __call__(self, real):
    b = real.shape[0]
    with torch.no_grad():
      fake = self.g_fn(torch.randn(b, self.latent_dim, device=self.device))
    d_params = list(self.D.parameters())
    d_grads = torch.autograd.grad(self._d_loss(real, fake), d_params)
    for p, g in zip(d_params, d_grads):
      p.grad = g
    self.d_opt.step()

    g_params = list(self.G.parameters())
    g_loss = F.softplus(-self.d_fn(self.g_fn(torch.randn(b, self.latent_dim, device=self.device)))).mean()
    g_grads = torch.autograd.grad(g_loss, g_params)
    for p, g in zip(g_params, g_grads):
      p.grad = g
    self.g_opt.step()
    with torch.no_grad():
      torch._foreach_lerp_(list(self.ema.parameters()), g_params, 1.0 - self.ema_decay)
    self.count += 1
    return g_loss
