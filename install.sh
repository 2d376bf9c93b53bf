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
#
# The packages are installed by uv, with pip's package-index configuration (tools/uv_options.py): it installs
# these 150 packages in half of pip's time (58 s against 1 min 48 s on 2 cores, empty caches, 2026-12-02). uv
# itself comes from pip first; where it cannot be installed, or fails, pip installs instead. SAWDIST_INSTALLER=pip
# uses pip throughout.
set -euo pipefail
cd "$(dirname "$0")"
PYTHON=${PYTHON:-python3}
py=$("$PYTHON" -c 'import sys; print(sys.executable)')

uv_args=()
installer=pip
scratch=$(mktemp -d "${TMPDIR:-/tmp}/sawdist-install.XXXXXX")
trap 'rm -rf "$scratch"' EXIT
if [ "${SAWDIST_INSTALLER:-uv}" = uv ] && "$py" -m pip install -q uv && "$py" tools/uv_options.py "$scratch"; then
    installer=uv
    mapfile -t uv_args <"$scratch/uv-args"
    while IFS= read -r assignment; do export "${assignment?}"; done <"$scratch/uv-env"
fi

install() {
    if [ "$installer" = uv ]; then
        # pip considers every index for every package; uv, told so, too. Bytecode compiled now, as pip does.
        if "$py" -m uv pip install --python "$py" --index-strategy unsafe-best-match --compile-bytecode \
            "${uv_args[@]}" "$@"; then
            return
        fi
        echo "install.sh: uv could not install $*; trying pip" >&2
    fi
    "$py" -m pip install "$@"
}

if [ -n "${TORCH_SPEC:-}" ]; then
    install "$TORCH_SPEC"
elif "$py" -c "import torch" >/dev/null 2>&1; then
    echo "install.sh: keeping the installed torch $("$py" -c 'import torch; print(torch.__version__)')"
elif command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
    echo "install.sh: NVIDIA GPU found, installing a CUDA build of torch"
    install "torch>=2.1"
else
    echo "install.sh: no NVIDIA GPU, installing a CPU build of torch (${TORCH_CPU_SPEC:-torch==2.13.0})"
    install "${TORCH_CPU_SPEC:-torch==2.13.0}"
fi

install -e ".[all,fast,dev,docs]"  # fast: nutpie, the default sampler of large Bayesian fits
