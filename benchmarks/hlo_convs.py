"""Lists the convolutions XLA compiled for one jaxgan train step, by kind.

  python benchmarks/hlo_convs.py --model dcgan32 --penalty r1 [--layers plain]

XLA:CPU runs input-dilated convolutions (`lhs_dilate`: transposed convs and the input
gradients of strided convs) through a slow generic loop; this shows how many the step has.
Takes the same model/penalty/precision/upsample/layers flags as train_step.py.
"""
import collections
import functools
import re
import sys
from pathlib import Path

import jax
import jax.numpy as jnp

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import train_step as bench  # noqa: E402
from jaxgan.state import create_state, spec_from_config  # noqa: E402
from jaxgan.train_step import train_step  # noqa: E402


def conv_kinds(hlo_text: str) -> collections.Counter:
  kinds = collections.Counter()
  for line in hlo_text.splitlines():
    if " convolution(" not in line:
      continue
    window = re.search(r"window=\{([^}]*)\}", line).group(1)
    kind = ("lhs_dilate (slow on XLA:CPU)" if "lhs_dilate" in window
            else "rhs_dilate" if "rhs_dilate" in window
            else "strided" if "stride" in window else "stride 1")
    kinds[kind] += 1
  return kinds


def main(argv=None):
  args = bench.parser().parse_args(sys.argv[1:] if argv is None else argv)
  if args.layers == "plain":
    bench.use_plain_layers()
  config, shape = bench.make_config(args)
  spec = spec_from_config(config, shape)
  state = create_state(spec, jax.random.key(0), shape)
  batch = jnp.zeros((args.batch_size, *shape))
  text = jax.jit(functools.partial(train_step, spec)).lower(state, batch).compile().as_text()
  kinds = conv_kinds(text)
  print(f"{args.model} {args.penalty} {args.upsample} {args.layers} layers: "
        + ", ".join(f"{n} {k}" for k, n in sorted(kinds.items())))
  return kinds


if __name__ == "__main__":
  main()
