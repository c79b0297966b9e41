#!/usr/bin/env bash
# Execute every notebook on a CUDA device, each into a scratch copy, and print per notebook its time and
# any error. The notebooks in the repository are not touched; the executed copies stay in the scratch
# folder (printed) for a look at their outputs.
#
#   scripts/gpu_notebooks.sh                      every notebooks/NN_*.ipynb, in order
#   scripts/gpu_notebooks.sh notebooks/05_training.ipynb notebooks/06_generation.ipynb
#   scripts/gpu_notebooks.sh --allow-cpu ...      a dry run of this script on a machine without CUDA
#
# The scratch folder is a course root of its own (pyproject.toml, a link to helpers/ and to the dataset),
# so runs/ (notebook 05's model, which 06 loads) is made fresh there by these runs, on this device.
# PYTHON (default .venv/bin/python, as `make install` makes it; a command on PATH such as python3 also
# does) must have the course's [course] extra. A PYTHONPATH of the caller is kept, after the scratch root.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$(pwd)
PYTHON=${PYTHON:-$ROOT/.venv/bin/python}
TIMEOUT=${NB_TIMEOUT:-3600}

allow_cpu=0
if [ "${1:-}" = "--allow-cpu" ]; then allow_cpu=1; shift; fi
if [ $# -gt 0 ]; then notebooks=("$@"); else notebooks=(notebooks/[0-9][0-9]_*.ipynb); fi

if ! found=$(command -v "$PYTHON"); then
    echo "gpu_notebooks: no Python at $PYTHON (make install makes it, or PYTHON=python3)" >&2
    exit 2
fi
PYTHON=$found
for nb in "${notebooks[@]}"; do
    [ -f "$nb" ] || { echo "gpu_notebooks: $nb: no such notebook" >&2; exit 2; }
done
if ! device=$("$PYTHON" -c 'import torch; assert torch.cuda.is_available(); print(torch.cuda.get_device_name(0))' 2>/dev/null); then
    if [ "$allow_cpu" = 1 ]; then
        device="CPU (--allow-cpu: a dry run, no CUDA device here)"
    else
        echo "gpu_notebooks: torch sees no CUDA device; use a GPU machine, or --allow-cpu for a dry run" >&2
        exit 2
    fi
fi

scratch=$(mktemp -d "${TMPDIR:-/tmp}/gpu-notebooks-XXXXXX")
cp pyproject.toml "$scratch/"
ln -s "$ROOT/helpers" "$scratch/helpers"
mkdir -p "$scratch/notebooks" "$scratch/data" data
# the dataset is drawn once, in the repository's data/ (as `make data` does), and shared by link
CAPTION_PROGRESS=0 "$PYTHON" -m helpers data make-shapes --out data/shapes >/dev/null || exit 1
ln -s "$ROOT/data/shapes" "$scratch/data/shapes"

echo "device: $device; torch $("$PYTHON" -c 'import torch; print(torch.__version__)'); scratch: $scratch"
status=0
total_start=$(date +%s)
for nb in "${notebooks[@]}"; do
    name=$(basename "$nb")
    cp "$nb" "$scratch/notebooks/$name"
    start=$(date +%s%N)
    # one line back: "ok" or "cell N: Error: message" (nbclient stops at the first failing cell)
    result=$(cd "$scratch/notebooks" && CAPTION_PROGRESS=0 PYTHONPATH="$scratch${PYTHONPATH:+:$PYTHONPATH}" "$PYTHON" - "$name" "$TIMEOUT" <<'EOF' 2>"$scratch/notebooks/$name.stderr"
import sys
import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

path, timeout = sys.argv[1], int(sys.argv[2])
nb = nbformat.read(path, as_version=4)
try:
    NotebookClient(nb, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": "."}}).execute()
    print("ok")
except CellExecutionError as error:
    failed = [i for i, c in enumerate(nb.cells) if any(o.get("output_type") == "error" for o in c.get("outputs", []))]
    print(f"cell {failed[0] if failed else '?'}: {error.ename}: {error.evalue}".splitlines()[0])
except Exception as error:  # a timeout or a dead kernel
    print(f"{type(error).__name__}: {error}".splitlines()[0])
finally:
    nbformat.write(nb, path)
EOF
)
    [ -n "$result" ] || result="the executor failed: $(tail -n 1 "$scratch/notebooks/$name.stderr")"
    seconds=$(( ($(date +%s%N) - start) / 1000000000 ))
    printf '%-28s %6ss  %s\n' "$name" "$seconds" "$result"
    [ "$result" = "ok" ] || status=1
done
echo "total: $(( $(date +%s) - total_start ))s; executed copies in $scratch/notebooks"
exit "$status"
