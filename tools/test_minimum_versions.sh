#!/usr/bin/env bash
# Test sawdist on the dependency floors of pyproject.toml:
#     tools/test_minimum_versions.sh [--install-only | --test-only] [SCRATCH_DIR [PYTEST_ARGS...]]
# --install-only does steps 1 and 2 below, --test-only step 3 on the environment that an --install-only run left in
# the same SCRATCH_DIR (required with either): CI installs the floors while it installs the main environment, and
# tests a part of the suite on them while it builds the documentation. PYTEST_ARGS (after SCRATCH_DIR) are added to
# step 3's pytest command: test paths choose a part of the suite, `-n 0` runs it in one process.
#
# A fresh virtual environment (in SCRATCH_DIR, default a new temporary folder, removed afterwards) on Python 3.11,
# the lowest Python that requires-python admits and the only one on which the floors are meaningful, gets
#   1. PyTorch, before anything else: TORCH_SPEC, default torch==2.13.0 (a CPU wheel on our build machines, found
#      through pip's own configuration). The torch floor (torch>=2.1) is NOT exercised here: on PyPI every Linux
#      torch is a CUDA build that pulls several GB of NVIDIA libraries (the CPU builds live on PyTorch's own
#      index), and our build machines have only this CPU wheel. The floor was chosen by reading, not by a
#      test: the extraction and the model pools use torch.func (vmap, functional_call, stack_module_state: new in
#      2.0), torch.load(weights_only=...) and torch.autocast(device_type=...) (older), so 2.0 would do; 2.1 is kept
#      as a margin;
#   2. sawdist itself, `-e ".[all,dev]"`, with every other direct dependency at exactly its declared floor: uv's
#      `--resolution lowest-direct` plus `==floor` constraints generated from pyproject.toml. The transitive
#      dependencies come at their newest compatible versions, which is what a user who pins our floors gets; a
#      floor that only works with an older transitive dependency is a false floor. Only wheels are accepted
#      (`--only-binary :all:`): a floor that would have to be compiled on Python 3.11 is a false floor too;
#      the installed torch is kept (pinned to its exact installed version);
#   3. the fast part of the test suite (`-m "not slow"`, the doctests included), with HOME, the temporary folder
#      and every per-user cache (pip, uv, matplotlib, PyTensor's compiled modules, Numba) in empty folders of
#      SCRATCH_DIR, on every core (pytest-xdist). Alone on two cores the whole fast suite took 5 min 49 s on
#      2026-12-02 (9.7 CPU-minutes), more than CI's 20-minute budget leaves it: CI tests a part (.ci/run), and
#      the whole fast suite on the floors is a check before every release (docs/install.md).
# It prints the resolved versions of the direct dependencies before testing. uv does not read pip.conf, so the
# package indexes, find-links, constraints and certificate of pip's configuration (`pip config list`: files and
# PIP_* variables) are passed to uv explicitly (tools/uv_options.py), and uv considers every index as pip does
# (unsafe-best-match).
#
# Environment: PYTHON (default python3.11), TORCH_SPEC (default torch==2.13.0).
# When a floor fails here, raise it in pyproject.toml and say why in a comment next to it.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PYTHON=${PYTHON:-python3.11}
TORCH_SPEC=${TORCH_SPEC:-torch==2.13.0}

phase=all
case "${1:-}" in
    --install-only) phase=install; shift ;;
    --test-only) phase=test; shift ;;
    -*) echo "test_minimum_versions.sh: unknown option '$1' (--install-only or --test-only)" >&2; exit 2 ;;
esac
if [ $# -ge 1 ]; then
    scratch=$1
    shift
    mkdir -p "$scratch"
    scratch=$(cd "$scratch" && pwd)
    if [ "$phase" = install ] && [ $# -gt 0 ]; then
        echo "test_minimum_versions.sh: --install-only runs no tests, so takes no PYTEST_ARGS (got '$*')" >&2
        exit 2
    fi
elif [ "$phase" != all ]; then
    echo "test_minimum_versions.sh: --$phase-only needs a SCRATCH_DIR (the one the other phase uses)" >&2
    exit 2
else
    scratch=$(mktemp -d "${TMPDIR:-/tmp}/sawdist-floors.XXXXXX")
    trap 'rm -rf "$scratch"' EXIT
fi
start=$SECONDS
step() { printf '\n==> %s (%ss)\n' "$1" "$((SECONDS - start))"; }

"$PYTHON" - <<'EOF'
import sys
if sys.version_info[:2] != (3, 11):
    sys.exit(f"test_minimum_versions.sh: the floors are for Python 3.11 (requires-python's minimum); "
             f"{sys.executable} is {sys.version.split()[0]}. Set PYTHON to a Python 3.11.")
EOF

py=$scratch/venv/bin/python
if [ "$phase" = test ]; then
    if [ ! -f "$scratch/installed" ]; then
        echo "test_minimum_versions.sh: no floors' environment in $scratch (run --install-only first)" >&2
        exit 2
    fi
else
    step "new virtual environment in $scratch/venv"
    rm -f "$scratch/installed"
    "$PYTHON" -m venv --clear "$scratch/venv"
    # pip's package-index configuration (config files and PIP_* variables) as uv options, in uv-args and uv-env,
    # read while HOME is still the user's
    "$py" "$repo/tools/uv_options.py" "$scratch"
fi

unset PYTHONPATH PYTHONHOME PYTHONSTARTUP
export HOME="$scratch/home" XDG_CACHE_HOME="$scratch/cache" XDG_CONFIG_HOME="$scratch/config"
export XDG_DATA_HOME="$scratch/data" MPLCONFIGDIR="$scratch/cache/matplotlib" NUMBA_CACHE_DIR="$scratch/cache/numba"
export PYTENSOR_FLAGS="base_compiledir=$scratch/cache/pytensor" IPYTHONDIR="$scratch/ipython"
export PIP_CACHE_DIR="$scratch/cache/pip" UV_CACHE_DIR="$scratch/cache/uv"
export VIRTUAL_ENV="$scratch/venv" PATH="$scratch/venv/bin:$PATH"
# a temporary folder of its own: pytest's numbered temporary folders never meet another run's, and nothing is left
# in the shared one
export TMPDIR="$scratch/tmp"
# empty even in a reused SCRATCH_DIR
rm -rf "$HOME" "$XDG_CACHE_HOME" "$XDG_CONFIG_HOME" "$XDG_DATA_HOME" "$IPYTHONDIR" "$TMPDIR"
mkdir -p "$HOME" "$XDG_CACHE_HOME" "$XDG_CONFIG_HOME" "$XDG_DATA_HOME" "$TMPDIR"

if [ "$phase" != test ]; then

step "PyTorch first ($TORCH_SPEC) and uv"
"$py" -m pip install -q "$TORCH_SPEC" uv

step "constraints: the floors of pyproject.toml, and the installed torch"
# floors.txt: `name==floor` for every direct dependency of `.[all,dev]` but torch, which keeps its installed build.
"$py" - "$repo/pyproject.toml" "$scratch" <<'EOF'
import re, sys, tomllib
from importlib.metadata import version

pyproject, scratch = sys.argv[1:]
project = tomllib.load(open(pyproject, "rb"))["project"]
extras = project["optional-dependencies"]

def requirements(names, seen):
    for name in names:
        if name in seen:
            continue
        seen.add(name)
        for req in extras[name]:
            self_ref = re.fullmatch(r"\s*sawdist\s*\[([^\]]+)\]\s*", req)
            if self_ref:
                yield from requirements([e.strip() for e in self_ref.group(1).split(",")], seen)
            else:
                yield req

floors = {}
for req in [*project["dependencies"], *requirements(["all", "dev"], set())]:
    # `name>=floor`, optionally capped (`name>=floor,<next`): the floor is what is tested
    m = re.fullmatch(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*>=\s*([0-9][^,;\s]*)\s*(?:,\s*<\s*[0-9][^,;\s]*\s*)?", req)
    if not m:
        sys.exit(f"test_minimum_versions.sh: {req!r} has no plain `>=floor`; teach this script about it")
    floors[m.group(1).lower()] = m.group(2)
floors.pop("torch")
with open(f"{scratch}/floors.txt", "w") as f:
    f.writelines(f"{name}=={floor}\n" for name, floor in floors.items())
    f.write(f"torch=={version('torch')}\n")
EOF
mapfile -t uv_args <"$scratch/uv-args"
while IFS= read -r assignment; do export "${assignment?}"; done <"$scratch/uv-env"
sed 's/^/    /' "$scratch/floors.txt"
# (credentials in an index URL are not printed)
[ ${#uv_args[@]} -eq 0 ] || printf '    uv index options from pip config: %s\n' "${uv_args[*]}" | sed -E 's#//[^/@ ]+@#//***@#g'

step "sawdist[all,dev] on the floors (uv pip install --resolution lowest-direct)"
cd "$repo"
"$py" -m uv pip install --python "$py" --quiet \
    --resolution lowest-direct --index-strategy unsafe-best-match --only-binary :all: \
    "${uv_args[@]}" --constraint "$scratch/floors.txt" \
    -e ".[all,dev]"

step "resolved versions"
"$py" - "$scratch/floors.txt" <<'EOF'
import sys
from importlib.metadata import version
from packaging.version import Version

wrong = []
print(f"    {'package':<16}{'floor':<14}installed")
for line in open(sys.argv[1]):
    name, floor = line.strip().split("==")
    got = version(name)
    label = "(kept)" if name == "torch" else floor
    print(f"    {name:<16}{label:<14}{got}")
    if Version(got) != Version(floor):
        wrong.append(f"{name} {got} (floor {floor})")
for name in ["pytensor", "numba", "cftime", "packaging"]:  # transitive, for the record
    try:
        print(f"    {name:<16}{'(transitive)':<14}{version(name)}")
    except Exception:
        pass
if wrong:
    sys.exit("test_minimum_versions.sh: not at the floor: " + ", ".join(wrong))
EOF

# pytest-xdist is the runner's plugin, not a dependency: installed under the same constraints, so no floor moves (the
# check above stays true). On 2 cores it runs the suite in about half the time (CI's 20-minute budget).
"$py" -m uv pip install --python "$py" --quiet --only-binary :all: "${uv_args[@]}" \
    --constraint "$scratch/floors.txt" "pytest-xdist>=3.5"
touch "$scratch/installed"
fi

if [ "$phase" != install ]; then
    step "the fast tests (-m 'not slow')${*:+ with $*} on the floors"
    cd "$repo"
    "$py" -m pytest -m "not slow" -p no:cacheprovider -q -n auto --dist worksteal "$@"
fi
step "done"
