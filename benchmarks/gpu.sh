#!/usr/bin/env bash
# The benchmarks at full size on one GPU (an H100 or H200), cut off at 4 min: well over the time measured on
# an H200, set-up included (benchmarks/README.md, "Figures the code's comments rest on").
#
#   bash benchmarks/gpu.sh            # writes benchmarks/results/gpu.json and gpu.txt
#   OUT=/some/folder bash benchmarks/gpu.sh
#
# Runs `run.py --device cuda --extras`: the four comparisons with the course's GPU configuration
# (224 px, batch 256, the whole training split of data/shapes), ResNet50 images/s at 224 in fp32,
# channels-last and bf16 + channels-last, a cached-feature decoder epoch on a Flickr8k-sized caption
# set (40k captions, vocab 8k, E=300, H=512, batch 512), and the real DataLoader (workers, the real
# transform) on 8000 synthetic 500x375 JPEGs.
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-.venv/bin/python}
[ -x "$PY" ] || PY=python3
RESULTS=${OUT:-benchmarks/results}
mkdir -p "$RESULTS"

"$PY" - <<'EOF'
import sys

import torch

if not torch.cuda.is_available():
    sys.exit("gpu.sh needs a CUDA GPU (torch sees none). On a CPU: python benchmarks/run.py --quick")
print(f"GPU: {torch.cuda.get_device_name()}, torch {torch.__version__}, CUDA {torch.version.cuda}")
EOF

# The offline dataset (a no-op when it is already there).
"$PY" -m helpers data make-shapes --out data/shapes

# Whatever the set-up took, the whole script stays under 4 minutes.
CAPTION_PROGRESS=0 timeout $((235 - SECONDS)) "$PY" benchmarks/run.py --device cuda --extras --json "$RESULTS/gpu.json" \
    | tee "$RESULTS/gpu.txt"
