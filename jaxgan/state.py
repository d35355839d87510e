"""`GANSpec` (the static description of a GAN) and `GANState` (everything that changes).

The spec holds modules, optimizers and hyper-parameters and is bound into the train step by
closure; the state is one pytree that the step maps to a new one and Orbax saves as is.
"""
import dataclasses
from typing import Any, Sequence

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from jaxgan import augment as augment_lib
from jaxgan import losses, penalties
from jaxgan.config import ConfigError, lr_decay
from jaxgan.models import build_models

PyTree = Any


@dataclasses.dataclass(frozen=True)
class GANSpec:
  generator: nn.Module
  discriminator: nn.Module
  g_tx: optax.GradientTransformation
  d_tx: optax.GradientTransformation
  latent_dim: int = 100
  loss: str = "non_saturating"
  penalty: str = "none"          # none | r1 | r2 | wgan_gp
  penalty_weight: float = 0.0
  penalty_every: int = 1         # lazy regularisation: apply every k-th step with weight * k
  d_steps: int = 1               # D updates per G update (each with fresh fakes)
  pack: int = 1                  # PacGAN: D judges packs of `pack` examples (train_step.pack)
  ema_decay: float = 0.0         # 0 disables the EMA generator (ema_params then track g_params)
  skip_nonfinite: bool = False   # skip (and count) an update that makes anything non-finite
  num_classes: int = 0           # > 0: class-conditional G(z, y), D(x, y) (train_step docstring)
  augment: tuple = ()            # D's input augmentation, augment.parse_policy: () off,
                                 # ("ada",) ADA, else DiffAugment items (train_step docstring)
  augment_p: float = 0.0         # ADA: the fixed p (ada_target 0), else the initial p
  ada_target: float = 0.0        # ADA: > 0 adapts p towards E[sign(D(aug(real)))] = target
  ada_kimg: float = 500.0        # ADA: p can move from 0 to 1 in this many thousand images
  ada_interval: int = 4          # ADA: p is updated every this many steps

  def __post_init__(self):
    losses.get_loss(self.loss)
    penalties.get_penalty(self.penalty)
    if self.penalty_every < 1 or self.d_steps < 1 or self.pack < 1:
      raise ValueError("penalty_every, d_steps and pack must be >= 1")
    if self.num_classes and self.pack > 1:
      raise ValueError("a class-conditional GAN (num_classes > 0) cannot pack examples "
                       "(pack > 1): a pack's examples have different labels")
    if not 0.0 <= self.ema_decay < 1.0:
      raise ValueError(f"ema_decay must be in [0, 1), got {self.ema_decay}")
    if tuple(self.augment) != augment_lib.parse_policy(",".join(self.augment)):
      raise ValueError(f"augment must be a parsed policy (augment.parse_policy), got "
                       f"{self.augment!r}")
    if not 0.0 <= self.augment_p <= 1.0 or not 0.0 <= self.ada_target < 1.0:
      raise ValueError(f"augment_p must be in [0, 1] and ada_target in [0, 1), got "
                       f"{self.augment_p}, {self.ada_target}")
    if self.augment and self.pack > 1:
      raise ValueError("augmentation (augment) cannot be combined with packing (pack > 1)")
    if self.ada_interval < 1 or self.ada_kimg <= 0:
      raise ValueError(f"ada_interval must be >= 1 and ada_kimg > 0, got {self.ada_interval}, "
                       f"{self.ada_kimg}")

  @property
  def ada(self) -> bool:
    """ADA's pipeline, whose p lives in the state (state.augment)."""
    return self.augment == (augment_lib.ADA,)


@flax.struct.dataclass
class GANState:
  step: jax.Array          # int32 scalar: number of completed train steps
  g_params: PyTree
  g_state: PyTree          # G's non-param collections, e.g. {'batch_stats': ...}
  d_params: PyTree
  d_state: PyTree          # D's non-param collections, e.g. spectral-norm u/sigma
  g_opt_state: PyTree
  d_opt_state: PyTree
  ema_params: PyTree       # EMA of g_params (equal to g_params when ema_decay == 0)
  key: jax.Array           # typed base key; step keys are fold_in(key, step)
  nonfinite: PyTree        # int32 scalars, see `train_step.NONFINITE`: first_step (0: none yet),
                           # what (bitmask of the quantities non-finite then), skipped (updates)
  augment: PyTree = dataclasses.field(default_factory=dict)
                           # ADA only ({} otherwise): p (float32, the augmentation probability),
                           # signs (float32, the sum of sign(D(aug(real))) since p's last
                           # update) and count (int32, the number of logits in that sum)


def _split_vars(variables):
  variables = dict(variables)
  params = variables.pop("params")
  return params, variables


def create_state(spec: GANSpec, key: jax.Array, data_shape: Sequence[int]) -> GANState:
  """Initialises parameters, optimizer states and the run key from one typed key."""
  k_g, k_d, k_run = jax.random.split(key, 3)
  z = jnp.zeros((2, spec.latent_dim), jnp.float32)                   # [2, latent]
  # D sees packs of spec.pack examples, stacked on the last axis: [2, ..., pack * C]
  x = jnp.zeros((2, *data_shape[:-1], spec.pack * data_shape[-1]), jnp.float32)
  y = jnp.zeros((2,), jnp.int32) if spec.num_classes else None       # [2] labels
  g_params, g_state = _split_vars(spec.generator.init(k_g, z, y, train=False))
  d_params, d_state = _split_vars(spec.discriminator.init(k_d, x, y, train=False))
  return GANState(
      step=jnp.zeros((), jnp.int32),
      g_params=g_params, g_state=g_state, d_params=d_params, d_state=d_state,
      g_opt_state=spec.g_tx.init(g_params), d_opt_state=spec.d_tx.init(d_params),
      ema_params=jax.tree.map(jnp.copy, g_params), key=k_run,
      nonfinite={k: jnp.zeros((), jnp.int32) for k in ("first_step", "what", "skipped")},
      augment=initial_augment_state(spec))


def initial_augment_state(spec: GANSpec) -> PyTree:
  """ADA's state at step 0 ({} without ADA): p = spec.augment_p, an empty sign sum."""
  if not spec.ada:
    return {}
  return dict(p=jnp.asarray(spec.augment_p, jnp.float32), signs=jnp.zeros((), jnp.float32),
              count=jnp.zeros((), jnp.int32))


def learning_rate(lr, decay: Sequence[int] = (0, 0)):
  """`lr`, or with `decay` = (start, end) a schedule over the optimizer's updates: `lr` until
  `start`, then linearly down to 0 at `end` (a final annealing phase). (0, 0): constant."""
  start, end = decay
  if not end:
    return lr
  return optax.join_schedules(
      [optax.constant_schedule(lr), optax.linear_schedule(lr, 0.0, end - start)], [start])


def make_optimizer(cfg, decay: Sequence[int] = (0, 0)) -> optax.GradientTransformation:
  """Adam with the DCGAN betas by default; cfg is an `optim.g` / `optim.d` block, `decay` the
  config's `optim.lr_decay` (see `learning_rate`)."""
  return optax.adam(learning_rate(cfg.lr, decay), b1=cfg.b1, b2=cfg.b2)


def spec_from_config(config, data_shape: Sequence[int], num_classes: int = 0) -> GANSpec:
  """The spec of `config` for data of `data_shape` with `num_classes` classes (0: no labels).
  `config.conditional` makes a class-conditional GAN, which needs labelled data."""
  conditional = bool(config.get("conditional", False))
  if conditional and not num_classes:
    raise ConfigError("config.conditional = true needs labelled data, and this data has no "
                      f"labels (data.name = {config.data.name!r}; num_classes = 0: in Python "
                      "pass spec_from_config(config, source.shape, source.num_classes)); label "
                      "a folder by class subfolders or dataset.json, use a labelled TFDS set "
                      "(data.label_key), or set --config.conditional=false")
  num_classes = int(num_classes) if conditional else 0
  generator, discriminator = build_models(config.model, data_shape,
                                          config.get("precision", "fp32"), num_classes)
  return GANSpec(
      generator=generator, discriminator=discriminator,
      g_tx=make_optimizer(config.optim.g, lr_decay(config)),
      d_tx=make_optimizer(config.optim.d, lr_decay(config)),
      latent_dim=config.model.latent_dim, loss=config.loss,
      penalty=config.penalty.name, penalty_weight=config.penalty.weight,
      penalty_every=config.penalty.every, d_steps=config.d_steps, ema_decay=config.ema_decay,
      skip_nonfinite=config.skip_nonfinite, pack=config.get("pack", 1), num_classes=num_classes,
      **augment_from_config(config))


def augment_from_config(config) -> dict:
  """GANSpec's augmentation fields from the config's `augment` block (absent: off)."""
  aug = config.get("augment", None)
  if aug is None:
    return {}
  try:
    policy = augment_lib.parse_policy(aug.policy)
  except ValueError as e:
    raise ConfigError(f"config.augment.policy: {e}") from None
  return dict(augment=policy, augment_p=float(aug.p), ada_target=float(aug.ada_target),
              ada_kimg=float(aug.ada_kimg), ada_interval=int(aug.ada_interval))


def generate(spec: GANSpec, state: GANState, z: jax.Array, y=None,
             use_ema: bool = True) -> jax.Array:
  """Samples G(z) (conditional: G(z, y)) in inference mode (running batch statistics).
  z: [N, latent]; y: int labels [N], required when spec.num_classes > 0, else ignored."""
  params = state.ema_params if use_ema else state.g_params
  if spec.num_classes and y is None:
    raise ValueError(f"this GAN is class-conditional ({spec.num_classes} classes): pass labels y")
  y = y if spec.num_classes else None
  return spec.generator.apply({"params": params, **state.g_state}, z, y, train=False)
