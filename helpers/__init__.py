"""Helpers for the course *Image Captioning with CNN & LSTM*.

Each module has one concern; notebooks build a piece in the open, then import it from here.
"""

__version__ = "0.1.0"
