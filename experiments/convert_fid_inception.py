"""Converts the standard FID Inception weights (PyTorch state dict) to the .npz that
`jaxgan.metrics.inception.load_fid_inception` reads. Needs PyTorch once (`pip install torch`),
not at evaluation time.

Get the weights (the TF inception-2015-12-05 graph as ported by pytorch-fid) once, on a
machine with network access:
  wget https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/pt_inception-2015-12-05-6726825d.pth

Run:
  python experiments/convert_fid_inception.py pt_inception-2015-12-05-6726825d.pth fid_inception.npz
"""
import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from jaxgan.metrics import inception  # noqa: E402


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("pth", help="PyTorch state dict, e.g. pt_inception-2015-12-05-6726825d.pth")
  p.add_argument("out", help="output .npz")
  args = p.parse_args(argv)
  import torch
  state = torch.load(args.pth, map_location="cpu", weights_only=True)
  state = {k: v.numpy() if hasattr(v, "numpy") else np.asarray(v) for k, v in state.items()}
  variables = inception.variables_from_torch(state)
  inception.save_npz(args.out, variables)
  inception.load_fid_inception(args.out)                             # checks it reads back
  print(f"wrote {args.out} from {len(state)} tensors")


if __name__ == "__main__":
  main()
