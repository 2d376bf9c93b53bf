#!/usr/bin/env bash
# Install sawdist with everything its test suite, the extraction side and the documentation need, into the active
# Python.
#
# PyTorch is chosen for the machine before sawdist's own requirements are resolved, because a plain `torch`
# requirement from the package index means the CUDA build (several GB of NVIDIA libraries) on Linux:
#   * a torch that is already installed is kept;
#   * a machine with an NVIDIA GPU (nvidia-smi answers) gets the index's default CUDA build;
#   * any other machine gets the CPU build, TORCH_CPU_SPEC (default torch==2.13.0, for which a local CPU wheel
#     is found on our build machines). Elsewhere set, for example,
#     PIP_EXTRA_INDEX_URL=https://download.pytorch.org/whl/cpu to fetch PyTorch's CPU wheels.
# Set TORCH_SPEC to force a particular requirement (e.g. TORCH_SPEC="torch==2.5.1").
set -euo pipefail
cd "$(dirname "$0")"
PYTHON=${PYTHON:-python3}

if [ -n "${TORCH_SPEC:-}" ]; then
    "$PYTHON" -m pip install "$TORCH_SPEC"
elif "$PYTHON" -c "import torch" >/dev/null 2>&1; then
    echo "install.sh: keeping the installed torch $("$PYTHON" -c 'import torch; print(torch.__version__)')"
elif command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
    echo "install.sh: NVIDIA GPU found, installing a CUDA build of torch"
    "$PYTHON" -m pip install "torch>=2.1"
else
    echo "install.sh: no NVIDIA GPU, installing a CPU build of torch (${TORCH_CPU_SPEC:-torch==2.13.0})"
    "$PYTHON" -m pip install "${TORCH_CPU_SPEC:-torch==2.13.0}"
fi

"$PYTHON" -m pip install -e ".[all,fast,dev,docs]"  # fast: nutpie, the default sampler of large Bayesian fits
