"""jaxgan: functional GANs in JAX.

    spec = jaxgan.spec_from_config(config, data_shape)
    state = jaxgan.create_state(spec, jax.random.key(0), data_shape)
    step = jax.jit(functools.partial(jaxgan.train_step, spec), donate_argnums=0)
    state, metrics = step(state, batch)
"""
from jaxgan import losses, metrics, models, parallel, penalties
from jaxgan.checkpoint import CheckpointError, Checkpoints
from jaxgan.config import ConfigError, apply_overrides, load_config_file
from jaxgan.data import DataError, Source, array_source, make_source
from jaxgan.eval import Evaluator, evaluate_run
from jaxgan.losses import LOSSES, GANLoss, get_loss
from jaxgan.penalties import PENALTIES, get_penalty, r1, r2, wgan_gp
from jaxgan.state import GANSpec, GANState, create_state, generate, spec_from_config
from jaxgan.runs import load_run, sample
from jaxgan.train import NonFiniteError, train
from jaxgan.train_step import train_step, train_steps

__version__ = "0.1.0"
