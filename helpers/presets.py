"""The course's training configuration for each kind of device, as plain dicts.

:meth:`helpers.config.TrainConfig.for_device` builds a configuration from them, and ``python -m helpers
train --help`` prints them as the defaults; this module imports nothing, so that ``--help`` does not
import torch.

- ``"cpu"``: small images, cached features of the frozen backbone;
- ``"gpu"``: a GPU with ImageNet weights, cached features at full size;
- ``"gpu-random"``: a GPU without ImageNet weights, where frozen random features cannot tell shapes apart,
  so the whole backbone is trained;
- ``"cpu-attention"``: the attention decoder (``decoder="attention"``) on cached grids of ResNet50's
  ``layer1`` at 64 px, an adapter of strides (2, 2) (4×4 = 16 cells), batches of 32 images with all their
  captions (160 captions of 5 per image), 8 epochs (benchmarks/attention_grid.py measures this recipe).
"""

DEVICE_PRESETS = {
    "cpu": {"image_size": 64, "hidden_size": 256, "epochs": 12, "batch_size": 128, "lr": 4e-3},
    "gpu": {"image_size": 224, "hidden_size": 512, "epochs": 15, "batch_size": 256, "lr": 3e-3},
    "gpu-random": {
        "image_size": 128,
        "hidden_size": 512,
        "epochs": 15,
        "batch_size": 256,
        "lr": 3e-3,
        "train_backbone": "all",
    },
    "cpu-attention": {
        "decoder": "attention",
        "image_size": 64,
        "stage": "layer1",
        "strides": (2, 2),
        "feature_size": 128,
        "embed_size": 128,
        "hidden_size": 256,
        "attention_size": 128,
        "penalty": 0.0,
        "epochs": 8,
        "batch_size": 160,
        "lr": 4e-3,
    },
}
