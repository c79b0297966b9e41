"""What several test modules share that is not a fixture (fixtures live in ``tests/conftest.py``):
the tiny training configuration, copying a shapes set, and tiny archives served over HTTP by a real
local server.

Test modules import it as ``from shared import ...`` (``tests/`` is on ``sys.path`` under pytest).
"""

from __future__ import annotations

import io
import re
import shutil
import threading
import zipfile
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

# The smallest model and run that exercise every part of training in seconds on a CPU (random weights:
# nothing is downloaded). ``TrainConfig(**TINY_CONFIG)``; ``{**TINY_CONFIG, "epochs": 2}`` for a variant.
TINY_CONFIG = dict(
    embed_size=8, hidden_size=16, image_size=32, epochs=1, batch_size=16, val_images=4, weights="random"
)
# The same run from the command line (``train`` has no flag for embed_size or val_images: it keeps
# TrainConfig's defaults for them).
TINY_TRAIN_FLAGS = [
    "--device",
    "cpu",
    "--epochs",
    str(TINY_CONFIG["epochs"]),
    "--image-size",
    str(TINY_CONFIG["image_size"]),
    "--hidden-size",
    str(TINY_CONFIG["hidden_size"]),
    "--batch-size",
    str(TINY_CONFIG["batch_size"]),
    "--weights",
    TINY_CONFIG["weights"],
]


def copy_shapes(source: Path, folder: Path) -> Path:
    """A copy of the shapes set ``source`` as ``folder/shapes``, which a test may write into."""
    return Path(shutil.copytree(source, folder / "shapes"))


JPEG = b"\xff\xd8\xff\xe0" + bytes(range(256)) * 4 + b"\xff\xd9"  # not a real image; bytes are checked


def tree(folder: Path) -> set[str]:
    """Every path under ``folder``, relative, so that "nothing else was written" can be asserted."""
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*")}


def zip_bytes(members: dict[str, bytes]) -> bytes:
    """A zip file, in memory, holding ``members`` (name → bytes)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buffer.getvalue()


# Flickr8k's two zips in their real layout, with the macOS junk the real ones carry (skipped on unpacking).
TOKEN_TXT = b"1000268201_693b08cb0e.jpg#0\tA child in a pink dress is climbing up a set of stairs .\n"
FLICKR_TEXT_ZIP = zip_bytes(
    {
        "Flickr8k.token.txt": TOKEN_TXT,
        "Flickr_8k.trainImages.txt": b"1000268201_693b08cb0e.jpg\n",
        "Flickr_8k.devImages.txt": b"",
        "Flickr_8k.testImages.txt": b"",
        "__MACOSX/._Flickr8k.token.txt": b"mac resource fork",
    }
)
FLICKR_IMAGES_ZIP = zip_bytes(
    {
        "Flicker8k_Dataset/x.jpg": JPEG,
        "__MACOSX/Flicker8k_Dataset/._x.jpg": b"mac resource fork",
    }
)


class _Handler(BaseHTTPRequestHandler):
    """Serves ``server.files``; honours ``Range: bytes=N-`` unless told otherwise in ``server.behaviour``."""

    def do_GET(self) -> None:  # noqa: N802 (name fixed by BaseHTTPRequestHandler)
        server = self.server
        name = self.path.lstrip("/")
        range_header = self.headers.get("Range")
        server.requests.append((name, range_header))
        data = server.files.get(name)
        if data is None:
            self.send_error(404)
            return
        behaviour = server.behaviour.pop(name, "normal")  # a behaviour applies to one request only
        start = 0
        if range_header and behaviour != "ignore_range":
            start = int(re.fullmatch(r"bytes=(\d+)-", range_header).group(1))
            if start >= len(data):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(data)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        body = data[start:]
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if behaviour == "drop_half":
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.close_connection = True  # HTTP/1.0 handler: the socket closes right after this
            return
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # keep pytest output clean
        pass


@contextmanager
def serve(files: dict[str, bytes]):
    """A threaded HTTP server on 127.0.0.1 (port 0) serving ``files`` with :class:`_Handler`.

    It has ``.base_url``, ``.files``, ``.requests`` (name, Range header) and ``.behaviour``
    (name → ``"drop_half"`` or ``"ignore_range"``, for the next request of that name only).
    """
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.files, httpd.requests, httpd.behaviour = files, [], {}
    httpd.base_url = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    try:
        yield httpd
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)
