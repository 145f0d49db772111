"""Inference kernels for the predictor on a CPU: its linear layers and its attention.

``torch.nn.functional.linear`` on a CPU runs fp32 through the BLAS library torch was built with (MKL) and bf16
through oneDNN; under autocast it also casts every weight to bf16 on every call (autocast's weight cache only
serves weights that require grad, and a planning model's do not). :class:`Linear` is an ``nn.Linear`` (same
parameters, same state dict) whose forward, when no gradient is needed, calls oneDNN directly:

* fp32 goes through oneDNN's matmul. On CPUs where MKL does not use AVX-512 (AMD EPYC) this is about twice as
  fast; elsewhere both use the same instructions (not measured on an AVX2-only CPU). Results equal ``F.linear``'s
  to float rounding (bit for bit where the reduction has one block, e.g. 128 input features).
* bf16 (on CPUs with native bf16: AVX512-BF16 or AMX) is the oneDNN matmul ``F.linear`` uses too, with the weight
  cast once and cached until the parameter changes (its ``_version`` or storage);
* ``gelu=True`` fuses the (exact, erf) GELU into the matmul.

With gradients, on other devices, inside ``torch.compile`` or without oneDNN it is ``F.linear`` (and ``F.gelu``):
training and compiled graphs are unchanged.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch import Tensor, nn

_NATIVE_BF16 = torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()
_FAST_DTYPES = (torch.float32, torch.bfloat16) if _NATIVE_BF16 else (torch.float32,)


def onednn_available() -> bool:
    """True when this torch build has oneDNN and its fused linear op (``torch.ops.mkldnn._linear_pointwise``)."""
    return torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_linear_pointwise")


_ENABLED = [True]  # the kernels of this module; off: plain F.linear / F.gelu / F.scaled_dot_product_attention
_ONEDNN = onednn_available()


@contextlib.contextmanager
def fast_kernels(enabled: bool) -> Iterator[None]:
    """Turn this module's kernels on (default) or off inside the block: off runs the plain PyTorch ops, the
    reference that benchmarks and tests compare with."""
    previous = _ENABLED[0]
    _ENABLED[0] = bool(enabled)
    try:
        yield
    finally:
        _ENABLED[0] = previous


def _inference(*tensors: Tensor) -> bool:
    """True for CPU tensors that need no gradient, outside ``torch.compile``, with the kernels enabled."""
    return (_ENABLED[0] and tensors[0].device.type == "cpu" and not torch.compiler.is_compiling()
            and not (torch.is_grad_enabled() and any(t.requires_grad for t in tensors)))


def compute_dtype(x: Tensor) -> torch.dtype:
    """The dtype a linear layer computes ``x`` in: autocast's where it is on for ``x``'s device, else ``x``'s."""
    if torch.is_autocast_enabled(x.device.type):
        return torch.get_autocast_dtype(x.device.type)
    return x.dtype


class Linear(nn.Linear):
    """``nn.Linear`` with a oneDNN inference path on the CPU (module docstring); ``forward(x, gelu=False)``."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True, **kwargs) -> None:
        super().__init__(in_features, out_features, bias, **kwargs)
        self._cast: tuple | None = None  # (key, weight, bias) in a low-precision dtype

    def forward(self, x: Tensor, gelu: bool = False) -> Tensor:
        if self._fast(x):
            dtype = compute_dtype(x)
            if dtype in _FAST_DTYPES:
                weight, bias = self._params_in(dtype)
                x = x.to(dtype) if x.is_contiguous() else x.to(dtype).contiguous()
                return torch.ops.mkldnn._linear_pointwise(x, weight, bias, "gelu" if gelu else "none", [], "none")
        out = F.linear(x, self.weight, self.bias)
        return F.gelu(out) if gelu else out

    def _fast(self, x: Tensor) -> bool:
        return (_ONEDNN and x.dim() >= 2 and x.shape[-1] == self.in_features and x.numel() > 0
                and x.dtype in _FAST_DTYPES and self.weight.dtype == torch.float32 and _inference(x, self.weight))

    def _params_in(self, dtype: torch.dtype) -> tuple[Tensor, Tensor | None]:
        """Weight and bias in ``dtype``; a cast is cached until either parameter changes."""
        if dtype == self.weight.dtype:
            return self.weight, self.bias
        params = [p for p in (self.weight, self.bias) if p is not None]
        key = (dtype, *((p.data_ptr(), p._version) for p in params))
        if self._cast is None or self._cast[0] != key:
            with torch.no_grad():
                bias = None if self.bias is None else self.bias.to(dtype)
                self._cast = (key, self.weight.to(dtype), bias)
        return self._cast[1], self._cast[2]


def attention(q: Tensor, k: Tensor, v: Tensor, attn_mask: Tensor | None = None) -> Tensor:
    """Scaled dot-product attention with the heads merged back: ``q [B, H, S, hd]``, ``k, v [B, H, S_kv, hd]`` ->
    ``[B, S, H * hd]``.

    ``F.scaled_dot_product_attention`` except for unmasked bf16 inference on the CPU, where its flash kernel is
    2-3x slower than two batched matmuls per head at the predictor's sizes (S ~ 66-520, hd 64): there the scores
    are computed in bf16 from ``q`` pre-scaled, and softmax takes and returns bf16 (accumulating in fp32) for the
    product with ``v``, with no fp32 copy of the ``[B, S, S_kv]`` scores (at a 16x16 grid the two casts took as
    long as both matmuls). Read straight from the strided q/k/v views."""
    if attn_mask is None and q.dtype == torch.bfloat16 and _inference(q, k, v):
        scale = q.shape[-1] ** -0.5
        heads = []
        for h in range(q.shape[1]):  # a few heads: one [B, S, S_kv] score matrix each
            scores = torch.bmm(q[:, h] * scale, k[:, h].transpose(1, 2))  # bf16; scale exact for hd = 4^n
            heads.append(torch.bmm(torch.softmax(scores, dim=-1), v[:, h]))  # softmax accumulates in fp32
        return torch.cat(heads, dim=-1)
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask)
    return out.transpose(1, 2).flatten(2)
