"""An interactive look inside greedy decoding: pick an image, then generate its caption word by word.

Two layers, so that the logic is testable without a browser:

- :class:`CaptionStepper` is plain Python: ``reset(image)`` encodes an image, ``top_k()`` gives the most
  probable next words, ``step()`` appends one word, ``caption`` is the caption so far. It begins with
  ``decoder.start`` and carries the LSTM state from word to word (``decoder.step``), exactly as
  :func:`helpers.decoding.greedy` does.
- :class:`DecodingExplorer` puts ipywidgets on top: an image picker, an upload button for your own
  image, "next word" and "reset" buttons, the image, the caption so far and the top-5 next words.

In a notebook::

    explorer = decoding_explorer(Run.load(run_dir, device), test_images)
    explorer  # shows the widgets
"""

from __future__ import annotations

import html
import io
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

import ipywidgets as widgets
import torch
from PIL import Image

from helpers.data import ImageLoadError, load_image
from helpers.runs import Run
from helpers.vocabulary import END


class CaptionStepper:
    """Greedy decoding one word at a time, with the LSTM state carried between words.

    After :meth:`reset`, :meth:`top_k` shows the next-word distribution; :meth:`step` takes its most
    probable word (or a word you choose) and moves on. ``words`` stops growing once ``<end>`` is chosen
    or ``max_len`` words are reached (then ``done`` is True; default: the run's ``max_decode``). Images
    are read at the run's image size.
    """

    def __init__(self, run: Run, max_len: int | None = None):
        self.run, self.vocab = run, run.vocab
        self.max_len = run.config.max_decode if max_len is None else max_len
        self.model = run.model.eval()
        self.image: Image.Image | None = None
        self.words: list[str] = []
        self.done = False  # the caption is finished: the model said <end>, or max_len words were reached
        self.said_end = False
        self._logits: torch.Tensor | None = None  # [V]: scores of the next word
        self._state: tuple[torch.Tensor, torch.Tensor] | None = None  # (h, c), each [L, 1, H]

    @torch.no_grad()
    def reset(self, image: Image.Image) -> None:
        """Start a new caption for an RGB image: encode it, feed it and ``<start>`` to the LSTM."""
        features = self.model.encoder(self.run.pixels([image]))  # [1, 3, S, S] → [1, E]
        logits, self._state = self.model.decoder.start(features, self.vocab.start_id)
        self._logits = logits[0]
        self.image, self.words, self.done, self.said_end = image, [], False, False

    def _require_image(self) -> None:
        if self._logits is None:
            raise RuntimeError("no image yet: call reset(image) first")

    def top_k(self, k: int = 5) -> list[tuple[str, float]]:
        """The ``k`` most probable next words with their probabilities, most probable first."""
        self._require_image()
        probs = self._logits.softmax(dim=-1)
        values, ids = probs.topk(min(k, len(probs)))
        return [(self.vocab.itos[i], p) for i, p in zip(ids.tolist(), values.tolist(), strict=True)]

    @torch.no_grad()
    def step(self, word: str | None = None) -> str | None:
        """Append the most probable next word (or ``word``, to see where another choice leads).

        Returns the word chosen, ``"<end>"`` when the caption ends here, or None when it had already
        ended (nothing changes then).
        """
        self._require_image()
        if self.done:
            return None
        if word is None:
            index = int(self._logits.argmax())
        elif word in self.vocab.stoi:
            index = self.vocab.stoi[word]
        else:
            raise ValueError(f"{word!r} is not in the vocabulary")
        if index == self.vocab.end_id:
            self.done = self.said_end = True
            return END
        self.words.append(self.vocab.itos[index])
        decoder = self.model.decoder
        logits, self._state = decoder.step(
            decoder.embed(torch.tensor([index], device=self.run.device)), self._state
        )
        self._logits = logits[0]
        self.done = len(self.words) >= self.max_len
        return self.vocab.itos[index]

    @property
    def caption(self) -> str:
        """The words chosen so far, joined by spaces (no ``<start>``/``<end>``)."""
        return " ".join(self.words)


def top_words_html(top: Sequence[tuple[str, float]]) -> str:
    """An HTML table of ``(word, probability)`` rows, each with a bar as wide as its probability."""
    rows = "".join(
        f"<tr><td style='padding-right:8px'><code>{html.escape(word)}</code></td>"
        f"<td style='text-align:right;padding-right:8px'>{prob:.2f}</td>"
        f"<td><div style='background:#4c72b0;height:10px;width:{round(160 * prob)}px'></div></td></tr>"
        for word, prob in top
    )
    return f"<table><tr><th>next word</th><th>p</th><th></th></tr>{rows}</table>"


def uploaded_files(value: dict | Sequence[dict]) -> list[tuple[str, bytes]]:
    """A ``FileUpload.value`` as ``[(file name, content bytes)]``, in ipywidgets 7's format or 8's.

    - ipywidgets 8.x: a tuple of ``{"name", "type", "size", "content": memoryview, "last_modified"}``;
    - ipywidgets 7.x (Colab's): a dict ``name → {"metadata": {"name", "type", "size", "lastModified"},
      "content": bytes}``.
    """
    if isinstance(value, dict):
        return [(entry["metadata"].get("name", key), bytes(entry["content"])) for key, entry in value.items()]
    return [(entry["name"], bytes(entry["content"])) for entry in value]


def _png(image: Image.Image, size: int = 192) -> bytes:
    """The image scaled to ``size`` pixels on its long side, as PNG bytes for a widgets.Image."""
    scale = size / max(image.size)
    # small images (the shapes are 128 px) are enlarged with hard edges, large ones shrunk smoothly
    resample = Image.NEAREST if scale > 1 else Image.LANCZOS
    shown = image.resize((max(1, round(image.width * scale)), max(1, round(image.height * scale))), resample)
    buffer = io.BytesIO()
    shown.save(buffer, format="PNG")
    return buffer.getvalue()


def enable_colab_widgets() -> None:
    """On Colab, turn on its manager for third-party widgets (ours), so that they show; elsewhere nothing."""
    if "google.colab" in sys.modules:
        from google.colab import output

        output.enable_custom_widget_manager()


class DecodingExplorer:
    """The widgets around a :class:`CaptionStepper`.

    ``images`` are image paths offered in a dropdown (shown by file name). Parts, for tests and for
    rearranging: ``picker`` (Dropdown), ``upload`` (FileUpload), ``next_button``, ``reset_button``,
    ``picture`` (Image), ``caption_html``, ``top_html``, ``message`` (HTML), and ``widget`` (all of them).
    ``error`` is the last failure as plain text (empty after a successful load).
    """

    def __init__(self, stepper: CaptionStepper, images: Sequence[Path | str], k: int = 5):
        if not images:
            raise ValueError("DecodingExplorer needs at least one image to offer")
        enable_colab_widgets()
        self.stepper, self.k = stepper, k
        self.picker = widgets.Dropdown(
            options=[(Path(p).name, str(p)) for p in images], description="image", value=str(images[0])
        )
        self.upload = widgets.FileUpload(accept="image/*", multiple=False, description="your image")
        self.next_button = widgets.Button(description="next word", button_style="primary", icon="play")
        self.reset_button = widgets.Button(description="reset", icon="undo")
        self.picture = widgets.Image(format="png", width=192)
        self.caption_html = widgets.HTML()
        self.top_html = widgets.HTML()
        self.message = widgets.HTML()
        self.source = ""  # what is shown: a file name from the picker, or the uploaded file's name
        self.error = ""  # why the last file could not be shown (plain text; ``message`` shows it)

        self.picker.observe(self._on_pick, names="value")
        self.upload.observe(self._on_upload, names="value")
        self.next_button.on_click(self._on_next)
        self.reset_button.on_click(self._on_reset)
        self.widget = widgets.VBox(
            [
                widgets.HBox([self.picker, self.upload]),
                widgets.HBox([self.next_button, self.reset_button]),
                self.message,
                widgets.HBox([self.picture, widgets.VBox([self.caption_html, self.top_html])]),
            ]
        )
        self.show_file(self.picker.value)

    def show_file(self, path: Path | str, name: str | None = None) -> bool:
        """Decode a new image from a file; on failure keep the current one and say why. True if shown."""
        name = name or Path(path).name
        try:
            image = load_image(path)
        except ImageLoadError as error:
            self.error = f"Cannot use {name}: {str(error).split(': ', 1)[-1]}"
            self.message.value = f"<span style='color:#b00'>{html.escape(self.error)}</span>"
            return False
        self.stepper.reset(image)
        self.source, self.error = name, ""
        self.message.value = ""
        self.picture.value = _png(image)
        self._refresh()
        return True

    def show_bytes(self, name: str, content: bytes) -> bool:
        """An uploaded file's bytes → :meth:`show_file` (``load_image`` reads files, so via a temp file)."""
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / (Path(name).name or "upload")
            path.write_bytes(bytes(content))
            return self.show_file(path, name)

    def _refresh(self) -> None:
        stepper = self.stepper
        caption = html.escape(stepper.caption) or "<i>(nothing yet)</i>"
        if stepper.image is None:  # the first image could not be read: ``message`` says why
            return
        ending = ""
        if stepper.said_end:
            ending = " <code>&lt;end&gt;</code>"
        elif stepper.done:
            ending = f" (stopped at {stepper.max_len} words)"
        self.caption_html.value = (
            f"<b>{html.escape(self.source)}</b><br>caption so far: <b>{caption}</b>{ending}"
            f" ({len(stepper.words)} words)"
        )
        self.top_html.value = "" if stepper.done else top_words_html(stepper.top_k(self.k))
        self.next_button.disabled = stepper.done

    def _on_pick(self, change) -> None:
        self.show_file(change["new"])

    def _on_upload(self, change) -> None:
        files = uploaded_files(change["new"])
        if files:
            self.show_bytes(*files[0])
            # Cleared, so that uploading the same file again is seen as a change. ipywidgets 7's value is
            # read-only (the frontend's counter sets it), hence set_trait there.
            if isinstance(change["new"], dict):
                self.upload.set_trait("value", {})
            else:
                self.upload.value = ()

    def _on_next(self, _button=None) -> None:
        if self.stepper.image is None:  # the first image could not be read: nothing to step through
            return
        self.stepper.step()
        self._refresh()

    def _on_reset(self, _button=None) -> None:
        if self.stepper.image is not None:
            self.stepper.reset(self.stepper.image)
        self._refresh()

    def _repr_mimebundle_(self, **kwargs) -> dict:
        """Show the widgets; the plain-text form (what GitHub and nbval see) is one stable line."""
        widget = self.widget
        if hasattr(widget, "_repr_mimebundle_"):  # ipywidgets 8
            bundle = widget._repr_mimebundle_(**kwargs)
        else:  # ipywidgets 7 (Colab's) shows a widget through _ipython_display_, with this same view
            bundle = {
                "application/vnd.jupyter.widget-view+json": {
                    "version_major": 2,
                    "version_minor": 0,
                    "model_id": widget.model_id,
                }
            }
            widget._handle_displayed()  # what _ipython_display_ does after showing (no arguments)
        bundle["text/plain"] = (
            "DecodingExplorer: pick an image or upload one, then press 'next word' "
            "(the widgets need a running notebook)"
        )
        return bundle


def decoding_explorer(
    run: Run, images: Sequence[Path | str], max_len: int | None = None, k: int = 5
) -> DecodingExplorer:
    """A :class:`DecodingExplorer` over ``images`` for a trained run (see the module docstring)."""
    return DecodingExplorer(CaptionStepper(run, max_len), images, k)
