"""The course's training configuration for each kind of device, as plain dicts.

:meth:`helpers.config.TrainConfig.for_device` builds a configuration from them, and ``python -m helpers
train --help`` prints them as the defaults; this module imports nothing, so that ``--help`` does not
import torch.

- ``"cpu"``: small images, cached features of the frozen backbone;
- ``"gpu"``: a GPU with ImageNet weights, cached features at full size;
- ``"gpu-random"``: a GPU without ImageNet weights, where frozen random features cannot tell shapes apart,
  so the whole backbone is trained.
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
}
