"""How nbval compares the notebooks' stored outputs with a fresh run (``make test``, ``pytest --nbval``).

This file sits at the repository root so that the ``notebooks/`` folder holds notebooks only. Every hook
here acts on nbval's notebook items alone; the unit tests in ``tests/`` are left as they are.

Plain ``pytest --nbval notebooks/`` runs the way ``make nbval`` does: with the sanitize file
``tests/nbval_sanitize.cfg``, in the current environment (``--nbval-current-env``, so the kernel name
stored in a notebook never matters), with the output timeout below, and without progress bars.
Options given on the command line win.

Strict mode compares every output except the MIME types below, which change from run to run or
machine to machine without anything being wrong:

- ``text/html``, ``application/javascript``: pandas and widgets render HTML with generated ids; the
  ``text/plain`` form of the same output is still compared, so tables are checked.
- ``stderr``: warnings (deprecations, "kernel running over TCP", library versions) are not results.
- widget views and widget state: they carry random model ids.
- ``image/svg+xml``: SVG text embeds generated ids and font details.

Figures (``image/png``) are stored in the notebooks, so learners see them on GitHub and Colab, but nbval
never compares PNG bytes unless run with ``--nbval-nbdime`` (nbval 0.11 puts ``image/png`` and
``image/jpeg`` in its own skip list): anti-aliasing and fonts differ between machines, so a byte
comparison would fail on a correct figure. The figure is still checked by its ``text/plain`` line,
``<Figure size 960x800 with 6 Axes>``: a figure that vanishes, changes size or loses a panel fails.
What a figure must show is asserted by ``tests/test_plots.py``.

Cells whose output legitimately varies carry the ``nbval-ignore-output`` tag (they still run, and an
error in them still fails); what must hold is asserted in the cell itself or in a collapsed check cell.
"""

import os
from pathlib import Path

SANITIZE_FILE = Path(__file__).resolve().parent / "tests" / "nbval_sanitize.cfg"

SKIP_COMPARE = (
    "text/html",
    "application/javascript",
    "stderr",
    "application/vnd.jupyter.widget-view+json",
    "application/vnd.jupyter.widget-state+json",
    "image/svg+xml",
)

# nbval 0.11 fails a cell when the kernel sends no message for output_timeout seconds, while the cell runs
# and after its reply (5 seconds by default; nbval issues #136, #231). Notebook 05's training cell prints
# one line per epoch, and on a busy 2-core machine one epoch (or the feature extraction before the first)
# can take minutes: with a one-minute limit it failed, with nothing wrong. Late is not wrong: wait up to
# ten minutes. A cell that really hangs is still stopped by --nbval-cell-timeout.
OUTPUT_TIMEOUT_S = 600


def pytest_configure(config):
    """With ``--nbval`` (or ``--nbval-lax``): the course's sanitize file, the current environment, and no
    progress bars (``CAPTION_PROGRESS=0``, as ``make`` sets it; the kernels inherit it)."""
    option = config.option
    if not (getattr(option, "nbval", False) or getattr(option, "nbval_lax", False)):
        return
    os.environ.setdefault("CAPTION_PROGRESS", "0")
    if not option.nbval_sanitize_with:
        option.nbval_sanitize_with = str(SANITIZE_FILE)
    if not option.nbval_kernel_name:
        option.nbval_current_env = True


def pytest_collectstart(collector):
    """Extend the skip list of every notebook nbval collects (other collectors are left alone)."""
    if collector.path.suffix == ".ipynb" and hasattr(collector, "skip_compare"):
        collector.skip_compare = tuple(collector.skip_compare) + SKIP_COMPARE


def pytest_collection_modifyitems(items):
    for item in items:
        if hasattr(item, "output_timeout"):  # nbval's notebook cells
            item.output_timeout = OUTPUT_TIMEOUT_S
