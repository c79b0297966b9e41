"""Encoder throughput: ResNet50 backbone images/s at the encoder's size in fp32, channels-last, and
bf16 where :func:`helpers.precision.use_bf16` turns it on.
"""

from __future__ import annotations

import copy

import torch

from benchmarks.common import Side, Sizes, compare, median, timed
from helpers.models import EncoderCNN
from helpers.precision import use_bf16


def encoder_throughput(sizes: Sizes, device: torch.device) -> dict[str, object]:
    """ResNet50 backbone images/s at ``encoder_size`` px: fp32, channels-last, and bf16 where it helps."""
    torch.manual_seed(0)
    backbone = EncoderCNN(sizes.embed_size, weights="random").backbone.eval().to(device)
    last = copy.deepcopy(backbone).to(memory_format=torch.channels_last)
    images = torch.randn(sizes.encoder_batch, 3, sizes.encoder_size, sizes.encoder_size, device=device)
    images_last = images.contiguous(memory_format=torch.channels_last)

    def forward(model, x, bf16=False):
        def run():
            with torch.inference_mode(), torch.autocast(device.type, torch.bfloat16, enabled=bf16):
                model(x)

        return run

    variants = [
        Side("fp32", forward(backbone, images), forward(backbone, images)),
        Side("channels_last", forward(last, images_last), forward(last, images_last)),
    ]
    result: dict[str, object] = {"encoder_batch": sizes.encoder_batch, "encoder_size": sizes.encoder_size}
    bf16 = forward(last, images_last, bf16=True)
    if use_bf16(device):
        variants.append(Side("bf16", bf16, bf16))
        result["encoder_bf16_note"] = "bf16 autocast + channels-last (helpers.precision.use_bf16: on)"
    else:
        reason = f"skipped: {device.type} without AMX, where helpers.precision.use_bf16 keeps fp32"
        result["encoder_img_s_bf16"] = None
        if device.type == "cpu" and sizes.bf16_on_cpu:
            small = images_last[:2]
            seconds = timed(forward(last, small, bf16=True), device)
            result["encoder_img_s_bf16_measured_once"] = len(small) / seconds
            reason += f"; measured once anyway: {len(small) / seconds:.2f} img/s"
        result["encoder_bf16_note"] = reason
    samples, _ = compare(variants, sizes.repeats, device)
    for name, values in samples.items():
        result[f"encoder_img_s_{name}"] = sizes.encoder_batch / median(values)
    return result


def summary(result: dict) -> str:
    bf16 = result.get("encoder_img_s_bf16")
    return (
        f"ResNet50 at {result['encoder_size']} px, batch {result['encoder_batch']}: "
        f"fp32 {result['encoder_img_s_fp32']:.1f} img/s, "
        f"channels-last {result['encoder_img_s_channels_last']:.1f} img/s, bf16 "
        + (f"{bf16:.1f} img/s" if bf16 else f"- ({result['encoder_bf16_note']})")
    )
