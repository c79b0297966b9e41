#!/usr/bin/env bash
# The GPU quality check (issue: "Training on GPU and generation"): the full configuration on one GPU,
# timed, then held-out BLEU on the test split. Target: under 3 minutes, test BLEU-4 >= 0.90.
#
#   bash scripts/gpu_quality.sh            # cached features, 224 px (the GPU default of `train`)
#   FINE_TUNE=all bash scripts/gpu_quality.sh   # also train the whole backbone end to end
#
# Needs a CUDA GPU; it refuses to run without one rather than timing a CPU.
#
# Measured on one H200 without ImageNet weights (none can be downloaded there): cached, 34 s of training,
# test BLEU-4 0.797 (below the target: a frozen random ResNet50 does not see shape well); FINE_TUNE=all,
# 165 s, test BLEU-4 1.000. The cached default with ImageNet weights (Colab) could not be measured here.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
"$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 'no CUDA GPU here: this check is for a GPU')"
"$PY" -c "import torch; print('GPU:', torch.cuda.get_device_name(0))"
"$PY" -m helpers data make-shapes data/shapes
RUN=runs/gpu-quality
extra=()
if [ -n "${FINE_TUNE:-}" ]; then extra+=(--fine-tune "$FINE_TUNE" --image-size 128); fi
start=$(date +%s)
"$PY" -m helpers train --data data/shapes --out "$RUN" --device cuda --overwrite "${extra[@]}"
end=$(date +%s)
echo "training took $((end - start)) s (feature caching included)"
"$PY" -m helpers evaluate --run "$RUN" --data data/shapes --split test --device cuda
"$PY" -m helpers evaluate --run "$RUN" --data data/shapes --split test --device cuda --json \
  | "$PY" -c "import json, sys; s = json.load(sys.stdin); print('test BLEU-4', round(s['bleu4'], 3), 'target 0.90:', 'met' if s['bleu4'] >= 0.9 else 'NOT met')"
