"""Which number formats run fast on a device: bf16 or fp16 autocast, TF32 matrix products, or plain fp32.

:func:`helpers.training.fit` asks :func:`training_precision` how to run its steps and calls :func:`use_tf32`;
:func:`helpers.features.extract_features` runs the backbone in :func:`autocast_dtype`.
"""

from __future__ import annotations

import torch

FAST_BF16_CAPABILITY = (8, 0)
"""CUDA compute capability from which bf16 and TF32 run on tensor cores (Ampere: A100, RTX 30xx, L4, H100)."""


def _capability(device: torch.device) -> tuple[int, int]:
    """The CUDA compute capability of ``device`` (a T4 is ``(7, 5)``); ``(0, 0)`` when not a CUDA device."""
    if device.type != "cuda" or not torch.cuda.is_available():
        return (0, 0)
    return tuple(torch.cuda.get_device_capability(device))


def use_bf16(device: torch.device) -> bool:
    """bf16 autocast only where it measurably helps the ResNet50 forward.

    On CUDA, only from compute capability 8.0: below that (a T4 is 7.5) cuDNN has no fast bf16
    convolutions, and bf16 would take PyTorch's slow path; fp16 is used there instead
    (:func:`autocast_dtype`). On a CPU only with AMX tile units (:func:`_has_amx`): AVX512-BF16 alone
    runs bf16 convolutions slower than fp32 (benchmarks/README.md, "Figures the code's comments rest on").
    """
    if device.type == "cuda":
        return _capability(device) >= FAST_BF16_CAPABILITY
    return device.type == "cpu" and _has_amx()


def _has_amx() -> bool:
    """Whether this CPU has AMX tile units; False where torch cannot tell.

    ``torch.backends.cpu.get_cpu_capability()`` never names AMX (an AMX CPU reports ``"AVX512"``), so
    this asks torch's private ``torch.cpu._is_amx_tile_supported``, present from torch 2.3.
    """
    check = getattr(torch.cpu, "_is_amx_tile_supported", None)
    return bool(check()) if check is not None else False


def autocast_dtype(device: torch.device) -> torch.dtype | None:
    """The reduced precision that runs fast on ``device``, or ``None`` for plain fp32.

    bf16 where :func:`use_bf16` says so; fp16 on older CUDA GPUs (a T4's tensor cores run fp16 only);
    ``None`` elsewhere (CPUs without AMX, Apple's MPS).
    """
    if use_bf16(device):
        return torch.bfloat16
    return torch.float16 if device.type == "cuda" else None


def training_precision(device: torch.device, mode: str) -> tuple[torch.dtype | None, str]:
    """How :func:`fit` runs its training steps on ``device`` in ``mode``: ``(autocast dtype or None, why)``.

    - fp16 autocast on CUDA below compute capability 8.0 (a T4), in both modes: such a GPU has no TF32,
      and fp16 is what its tensor cores run; :func:`fit` then scales the loss (``torch.amp.GradScaler``)
      so that small fp16 gradients do not round to zero.
    - bf16 autocast from 8.0 when fine-tuning: the backbone's convolutions dominate, and bf16 has fp32's
      range, so no scaling is needed. With cached features the decoder stays fp32 with TF32 products
      (benchmarks/README.md has the measured epoch).
    - fp32 on a CPU or MPS.
    """
    cap = _capability(device)
    if device.type != "cuda":
        return None, f"fp32 (on {device.type}, reduced precision would not be faster for training)"
    name = f"compute capability {cap[0]}.{cap[1]}"
    if cap < FAST_BF16_CAPABILITY:
        return torch.float16, f"fp16 autocast with gradient scaling ({name}: no fast bf16 or TF32 below 8.0)"
    if mode == "fine-tune":
        return torch.bfloat16, f"bf16 autocast ({name}: bf16 tensor cores)"
    return None, f"fp32 with TF32 matrix products ({name}; the backbone's features are extracted in bf16)"


def use_tf32(device: torch.device) -> bool:
    """On a CUDA GPU that has TF32 (compute capability 8.0 and up), let float32 matrix products use it;
    returns whether it did.

    PyTorch already does this for convolutions, not for matrix products. The decoder is mostly matrix
    products (the LSTM's gates, the vocabulary layer), so this is where its GPU time goes. TF32 keeps
    float32's range with a 10-bit mantissa: plenty for training. A global PyTorch setting, so a run
    where it does not apply (a CPU, a T4) leaves it alone.
    """
    if device.type != "cuda" or _capability(device) < FAST_BF16_CAPABILITY:
        return False
    torch.set_float32_matmul_precision("high")
    return True
