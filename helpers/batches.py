"""What a training step is fed: the captions as tensors (:func:`encode_captions`), an epoch's shuffled
batches (:func:`batches`), and :class:`TrainingSet`, which yields each batch's inputs (stored features,
stored grids of whole images for the attention decoder, or whole images when fine-tuning), captions and
lengths.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import pandas as pd
import torch
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from helpers.data import ImageFolderDataset, image_transform, pad_captions
from helpers.utils import progress_enabled
from helpers.vocabulary import Vocabulary


def encode_captions(
    table: pd.DataFrame, images: Sequence[str], vocab: Vocabulary, max_words: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Caption rows → ``(image_index [N], captions [N, T], lengths [N])``, ``image_index`` into ``images``."""
    position = {image: i for i, image in enumerate(images)}
    index = torch.tensor([position[image] for image in table["image"]], dtype=torch.long)
    captions, lengths = pad_captions(
        [torch.tensor(vocab.encode(c, max_words)) for c in table["caption"]]
    )
    return index, captions, lengths


def batches(
    n: int, batch_size: int, generator: torch.Generator, rank: int = 0, world: int = 1
) -> list[torch.Tensor]:
    """A shuffled split of ``range(n)`` into batches; a last batch of one joins the one before it.

    (BatchNorm cannot train on one example, and dropping it would silently lose data.) With ``world``
    processes, process ``rank`` takes every ``world``-th example of the same shuffle; the shuffle is
    padded by wrapping around so every process gets the same number of batches, as DistributedSampler
    does.
    """
    order = torch.randperm(n, generator=generator)
    if world > 1:
        padded = math.ceil(n / world) * world
        order = torch.cat([order, order[: padded - n]])[rank::world]
    chunks = list(order.split(batch_size))
    if len(chunks) > 1 and len(chunks[-1]) == 1:
        last = chunks.pop()
        chunks[-1] = torch.cat([chunks[-1], last])
    return chunks


# inputs, captions [B, T], lengths [B]; inputs: features [B, 2048], (grids [I, C, h, w], image_of [B])
# or (images [I, 3, S, S], image_of [B])
Batch = tuple[torch.Tensor | tuple[torch.Tensor, torch.Tensor], torch.Tensor, torch.Tensor]


@dataclass
class TrainingSet:
    """The training captions as tensors, and what each step feeds the model: the images' stored backbone
    features (``features``, with a frozen backbone), or the images themselves (fine-tuning).

    Fine-tuning batches whole images (an epoch shuffles images, not captions): each image goes through
    the backbone once per step, and all its captions share its features. So does ``by_image=True`` with
    stored features (the attention decoder's grids ``[len(images), C, h, w]``): each image's grid goes
    through the adapter, and its attention keys are computed, once per step, shared by its captions."""

    images: list[str]  # the training images
    image_index: torch.Tensor  # [N]: caption row → its image in ``images``
    captions: torch.Tensor  # [N, T]
    lengths: torch.Tensor  # [N]
    # [len(images), 2048] or grids [len(images), C, h, w] on the device; None: decode the images
    features: torch.Tensor | None = None
    by_image: bool = False  # batches of whole images with all their captions (always, when fine-tuning)

    def __post_init__(self):
        counts = torch.bincount(self.image_index, minlength=len(self.images))
        # caption rows grouped by image: image i's rows are _rows[_starts[i] : _starts[i] + _counts[i]]
        self._counts, self._starts = counts, counts.cumsum(0) - counts
        self._rows = torch.argsort(self.image_index, stable=True)

    @property
    def whole_images(self) -> bool:
        """Whether an epoch shuffles images (fine-tuning, or ``by_image``) rather than caption rows."""
        return self.features is None or self.by_image

    @property
    def examples(self) -> int:
        """What an epoch shuffles and splits into batches (:func:`batches`): caption rows with stored
        features, images when fine-tuning or ``by_image``."""
        return len(self.images) if self.whole_images else len(self.captions)

    def per_batch(self, batch_size: int) -> int:
        """Examples per batch for ``batch_size`` captions: that many caption rows with stored features;
        by whole images, as many images as hold about ``batch_size`` captions (2 at least, for
        BatchNorm)."""
        if not self.whole_images:
            return batch_size
        return max(2, round(batch_size * len(self.images) / len(self.captions)))

    def caption_rows(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``images [I]`` (indices into ``self.images``) → ``(rows [B], image_of [B])``: every caption row
        of those images, grouped by image, and each row's image as a position in ``images``."""
        counts = self._counts[images]
        image_of = torch.repeat_interleave(torch.arange(len(images)), counts)
        within = torch.arange(len(image_of)) - torch.repeat_interleave(counts.cumsum(0) - counts, counts)
        return self._rows[self._starts[images][image_of] + within], image_of

    def batches(
        self,
        order: list[torch.Tensor],
        device: torch.device,
        image_size: int,
        num_workers: int = 0,
        label: str | None = None,
    ) -> Iterable[Batch]:
        """An epoch's ``(inputs, captions [B, T], lengths [B])`` in ``order`` (:func:`batches` of
        :attr:`examples`), captions cut to each batch's longest. With stored features ``order`` holds
        caption rows and inputs are their features ``[B, 2048]``. Fine-tuning, it holds images, and
        inputs are ``(images [I, 3, S, S], image_of [B])``: the images, decoded in ``num_workers``
        processes, channels-last as the fine-tuned backbone's weights are, and each caption's image as
        a position among them. With stored features and ``by_image``, ``order`` holds images and inputs
        are ``(grids [I, C, h, w], image_of [B])``. ``label`` names a progress bar (None: no bar)."""
        if self.whole_images:
            grouped = [self.caption_rows(images) for images in order]
            rows, image_of = [r for r, _ in grouped], [of for _, of in grouped]
        if self.features is not None and self.by_image:
            inputs = (
                (self.features[images.to(self.features.device)], of.to(device))
                for images, of in zip(order, image_of, strict=True)
            )
        elif self.features is not None:
            rows = order
            inputs = (self.features[self.image_index[idx].to(device)] for idx in order)
        else:
            loader = DataLoader(
                ImageFolderDataset(self.images, image_transform(image_size)),
                batch_sampler=[b.tolist() for b in order],
                num_workers=num_workers,
                pin_memory=device.type == "cuda",
                persistent_workers=False,
            )
            layout = torch.channels_last
            inputs = (
                (pixels.to(device, non_blocking=True, memory_format=layout), of.to(device, non_blocking=True))
                for pixels, of in zip(loader, image_of, strict=True)
            )

        def epoch():
            for idx, batch_inputs in zip(rows, inputs, strict=True):
                lengths = self.lengths[idx]
                captions = self.captions[idx, : int(lengths.max())].to(device, non_blocking=True)
                yield batch_inputs, captions, lengths

        show = label is not None and progress_enabled()
        return tqdm(epoch(), total=len(order), desc=label, leave=False, disable=not show)
