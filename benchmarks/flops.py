"""Analytic FLOP model of one GAN train step, and device peak FLOP/s for MFU.

Forward FLOPs are 2 x the multiply-accumulates of every dense layer and convolution, counted
from the model's own jaxpr (so the count follows the model code; elementwise ops, norms and
the optimizer are left out). A transposed conv is counted by its useful MACs (the zeros XLA
inserts between input pixels are not work). Per step, with fwd(N, n) = forward FLOPs of net N
on n examples and B the batch:

  backward                       = 2 x forward (activation grads + weight grads)
  D step                         = fwd(G, B)                       fakes, no grad
                                 + 3 fwd(D, 2B)                    D loss, forward + backward
  penalty (r1, r2, wgan_gp)      + 6 fwd(D, B)                     forward + input-grad (2 fwd),
                                                                   then its backward (2 x 2 fwd)
    when the penalty pass is reused for the loss (r1 on real, r2 on fake: jaxgan and the
    torch peer both do), its forward is shared:                 - 3 fwd(D, B)
  G step                         = 3 fwd(G, B) + 2 fwd(D, B)       D: forward + input grad only

`d_steps` repeats the D step. Lazy regularisation (every k) divides the penalty term by k.
Input gradients of the first layers (not needed) are counted, so the model is a bit above
XLA's own count (`cost_analysis`), which also adds the elementwise work.
"""
import math
import re
from pathlib import Path
from typing import Optional

import jax
import numpy as np


def _conv_macs(eqn) -> int:
  lhs, rhs = (v.aval for v in eqn.invars)
  out = eqn.outvars[0].aval
  dn = eqn.params["dimension_numbers"]
  # rhs_spec = (out feature dim, in feature dim, *spatial dims)
  rhs_spec = dn.rhs_spec
  k_in = rhs.shape[rhs_spec[1]]
  k_spatial = math.prod(rhs.shape[d] for d in rhs_spec[2:])
  lhs_dil = math.prod(eqn.params.get("lhs_dilation") or (1,))
  # with input dilation d, only 1/prod(d) of the kernel taps meet a real input pixel
  return math.prod(out.shape) * k_in * k_spatial // lhs_dil


def _dot_macs(eqn) -> int:
  lhs = eqn.invars[0].aval
  out = eqn.outvars[0].aval
  (lhs_contract, _), _ = eqn.params["dimension_numbers"]
  return math.prod(out.shape) * math.prod(lhs.shape[d] for d in lhs_contract)


def _jaxpr_macs(jaxpr) -> int:
  total = 0
  for eqn in jaxpr.eqns:
    name = eqn.primitive.name
    if name == "conv_general_dilated":
      total += _conv_macs(eqn)
    elif name == "dot_general":
      total += _dot_macs(eqn)
    for p in eqn.params.values():   # bodies of pjit, custom_jvp, remat, scan (cond: max branch)
      if isinstance(p, (tuple, list)) and p and all(hasattr(b, "consts") for b in p):
        total += max(_jaxpr_macs(b.jaxpr) for b in p)
      elif hasattr(p, "jaxpr") and hasattr(p, "consts"):
        total += _jaxpr_macs(p.jaxpr)
      elif hasattr(p, "eqns"):
        total += _jaxpr_macs(p)
  return total


def forward_flops(fn, *args) -> int:
  """2 x MACs of dense layers and convolutions in `fn(*args)` (traced, not run)."""
  return 2 * _jaxpr_macs(jax.make_jaxpr(fn)(*args).jaxpr)


def step_flops(g_fwd, d_fwd, penalty: str, reuse_penalty_pass: bool = True,
               d_steps: int = 1, penalty_every: int = 1) -> float:
  """FLOPs of one train step from the forward FLOPs per example of G and D."""
  d_step = g_fwd + 3 * d_fwd * 2
  if penalty != "none":
    pen = 6 * d_fwd
    if reuse_penalty_pass and penalty in ("r1", "r2"):
      pen -= 3 * d_fwd
    d_step += pen / penalty_every
  return d_steps * d_step + 3 * g_fwd + 2 * d_fwd


# Peak dense FLOP/s (no sparsity) from NVIDIA's data sheets:
#   H100 SXM / PCIe: https://resources.nvidia.com/en-us-tensor-core/nvidia-tensor-core-gpu-datasheet
#     (BF16 tensor 989.4 / 756 TFLOPS dense [the sheet's 1,979 / 1,513 are with sparsity],
#      TF32 tensor 494.7 / 378 dense, FP32 66.9 / 51.2 TFLOPS)
#   H200 SXM: https://www.nvidia.com/en-us/data-center/h200/ (same compute as H100 SXM:
#      BF16 1,979 TFLOPS with sparsity = 989 dense, TF32 989 with sparsity = 494.5 dense, FP32 67)
# XLA runs float32 matmuls and convs on GPU as TF32 by default, so fp32 MFU uses the TF32 peak.
GPU_PEAK_FLOPS = {
    "H100 SXM": {"bf16": 989.4e12, "fp32": 494.7e12},
    "H100 PCIe": {"bf16": 756.0e12, "fp32": 378.0e12},
    "H200": {"bf16": 989.4e12, "fp32": 494.7e12},
}


def _gpu_entry(device_kind: str) -> Optional[str]:
  kind = device_kind.upper()
  if "H200" in kind:
    return "H200"
  if "H100" in kind:
    return "H100 PCIe" if "PCIE" in kind else "H100 SXM"   # "NVIDIA H100 80GB HBM3" is SXM
  return None


def cpu_peak_flops(precision: str, cores: int) -> tuple[Optional[float], str]:
  """An estimate for AMD Zen 4 (family 25, models 0x10-0x1f / 0x60-0x7f / 0xa0-0xaf), else None.

  Zen 4 has two 256-bit FMA pipes per core (AVX-512 is double-pumped): 2 x 8 fp32 FMA =
  32 fp32 FLOP/cycle/core. The clock is the one /proc/cpuinfo reports (the VM's nominal clock;
  boost clocks are not known inside the VM). bf16 gets no separate figure.
  """
  try:
    info = Path("/proc/cpuinfo").read_text()
  except OSError:
    return None, "n/a (no /proc/cpuinfo)"
  get = lambda key: (re.search(rf"^{key}\s*:\s*(.+)$", info, re.M) or [None, None])[1]
  vendor, family, model, mhz = get("vendor_id"), get("cpu family"), get("model"), get("cpu MHz")
  zen4 = (vendor == "AuthenticAMD" and family == "25" and model is not None
          and (0x10 <= int(model) <= 0x1f or 0x60 <= int(model) <= 0x7f
               or 0xa0 <= int(model) <= 0xaf))
  if not zen4 or mhz is None or precision != "fp32":
    return None, "n/a (no published peak for this CPU/precision)"
  peak = 32 * float(mhz) * 1e6 * cores
  return peak, (f"estimate: Zen 4, 32 fp32 FLOP/cycle/core x {float(mhz):.0f} MHz x {cores} "
                "cores (nominal clock)")


def peak_flops(backend: str, device_kind: str, precision: str,
               cores: int) -> tuple[Optional[float], str]:
  """(peak FLOP/s or None, where the number comes from)."""
  if backend == "gpu":
    entry = _gpu_entry(device_kind)
    if entry is None:
      return None, f"n/a (no peak in the table for {device_kind!r})"
    return GPU_PEAK_FLOPS[entry][precision], f"NVIDIA data sheet, {entry} {precision} dense"
  if backend == "cpu":
    return cpu_peak_flops(precision, cores)
  return None, "n/a"


def cost_analysis_flops(compiled) -> Optional[float]:
  """XLA's own FLOP count of a compiled executable, where the backend gives one."""
  try:
    cost = compiled.cost_analysis()
  except Exception:  # noqa: BLE001 - not every backend implements it
    return None
  if isinstance(cost, (list, tuple)):
    cost = cost[0] if cost else None
  if not cost or "flops" not in cost:
    return None
  return float(np.asarray(cost["flops"]))
