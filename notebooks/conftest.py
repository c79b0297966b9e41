"""How nbval compares the notebooks' stored outputs with a fresh run (``make test``).

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
"""

SKIP_COMPARE = (
    "text/html",
    "application/javascript",
    "stderr",
    "application/vnd.jupyter.widget-view+json",
    "application/vnd.jupyter.widget-state+json",
    "image/svg+xml",
)


def pytest_collectstart(collector):
    """Extend the skip list of every notebook nbval collects (other collectors are left alone)."""
    if collector.path.suffix == ".ipynb" and hasattr(collector, "skip_compare"):
        collector.skip_compare = tuple(collector.skip_compare) + SKIP_COMPARE


# After a cell's reply, nbval 0.11 waits at most 5 seconds (hard-coded) for each of the kernel's remaining
# messages, and fails the cell when one is late (nbval issues #136, #231). Once in six runs here, the
# 3-minute training cell of notebook 05 failed that way on a busy 2-core machine, with nothing wrong.
# Late is not wrong: wait up to a minute. A cell that really hangs is still stopped by --nbval-cell-timeout.
OUTPUT_TIMEOUT_S = 60


def pytest_collection_modifyitems(items):
    for item in items:
        if hasattr(item, "output_timeout"):  # nbval's notebook cells
            item.output_timeout = OUTPUT_TIMEOUT_S
