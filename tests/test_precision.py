"""Tests for helpers.precision on a CPU: bf16 only where AMX tile units run it."""

from __future__ import annotations

import pytest
import torch

from helpers.precision import autocast_dtype, training_precision, use_bf16

CPU = torch.device("cpu")


@pytest.fixture
def cpu_with(monkeypatch):
    """Pretend this CPU has (or lacks) AMX tiles and AVX512-BF16; torch reports "AVX512" for both."""

    def pretend(amx: bool, avx512_bf16: bool) -> None:
        monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: "AVX512")
        monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: amx, raising=False)
        monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: avx512_bf16, raising=False)

    return pretend


def test_cpu_bf16_detection_is_on_with_amx(cpu_with):
    cpu_with(amx=True, avx512_bf16=True)
    assert (use_bf16(CPU), autocast_dtype(CPU)) == (True, torch.bfloat16)
    assert training_precision(CPU, "fine-tune")[0] is None  # training on a CPU stays fp32


def test_cpu_bf16_detection_is_off_with_avx512_bf16_but_no_amx(cpu_with):
    cpu_with(amx=False, avx512_bf16=True)
    assert (use_bf16(CPU), autocast_dtype(CPU)) == (False, None)


def test_cpu_bf16_detection_falls_back_to_fp32_when_torch_cannot_tell(cpu_with, monkeypatch):
    cpu_with(amx=True, avx512_bf16=True)
    monkeypatch.delattr(torch.cpu, "_is_amx_tile_supported")  # a torch without the private check
    assert (use_bf16(CPU), autocast_dtype(CPU)) == (False, None)


def test_a_cpu_stays_fp32_beside_a_fast_gpu_and_each_gpu_gives_its_own_capability(cpu_with, monkeypatch):
    cpu_with(amx=False, avx512_bf16=True)
    capabilities = {torch.device("cuda", 0): (7, 5), torch.device("cuda", 1): (8, 0)}
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)

    def asked(device=None):
        return capabilities.get(device, (7, 5))

    monkeypatch.setattr(torch.cuda, "get_device_capability", asked)
    assert (use_bf16(CPU), training_precision(CPU, "fine-tune")[0]) == (False, None)
    assert use_bf16(torch.device("cuda", 1)) and not use_bf16(torch.device("cuda", 0))
