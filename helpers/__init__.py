"""Helpers for the course *Image Captioning with CNN & LSTM*.

Each module has one concern; notebooks build a piece in the open, then import it from here.
"""

import time

__version__ = "0.1.0"
STARTED = time.monotonic()  # when this process first imported the course's helpers (helpers.utils.run_time)
