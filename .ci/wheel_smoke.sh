#!/usr/bin/env bash
# Install check: build the wheel, install it (not editable) into a fresh venv, then smoke-train with the console
# script from a directory outside the checkout; the run must land under that directory, not in site-packages.
# torch & co. are not downloaded again: the fresh venv sees the project venv's packages through a .pth file and
# constraints.txt pins the same versions, so pip resolves the wheel's dependencies against them; the wheel's own
# files (iqa_bench and its conf/ tree) come first on sys.path.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
ROOT=$PWD
WORK=$(mktemp -d /tmp/iqa_wheel.XXXXXX)
trap 'rm -rf "$WORK"' EXIT

"$PY" -m build --wheel --outdir "$WORK/dist" . >"$WORK/build.log" 2>&1 || { tail -20 "$WORK/build.log"; exit 1; }
WHEEL=$(ls "$WORK"/dist/iqa_bench-*.whl)
"$PY" - "$WHEEL" <<'PYEOF'
import sys, zipfile
names = zipfile.ZipFile(sys.argv[1]).namelist()
need = ["iqa_bench/conf/train.yaml", "iqa_bench/conf/evaluate.yaml", "iqa_bench/conf/predict.yaml",
        "iqa_bench/conf/hydra/help/train.yaml", "iqa_bench/conf/debug/fdr.yaml"]
missing = [n for n in need if n not in names]
assert not missing, f"wheel lacks {missing}"
print(f"wheel ok: {len(names)} files, {sum(n.startswith('iqa_bench/conf/') for n in names)} config files")
PYEOF

SITE=$("$PY" -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")
"$PY" -m venv --without-pip "$WORK/venv"
VSITE=$("$WORK/venv/bin/python" -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")
echo "$SITE" > "$VSITE/_project_venv.pth"
"$WORK/venv/bin/python" -m pip --version >/dev/null
"$WORK/venv/bin/python" -m pip install -q -c "$ROOT/constraints.txt" "$WHEEL"

mkdir -p "$WORK/elsewhere"
cd "$WORK/elsewhere"
env -u PYTHONPATH -u IQA_ROOT "$WORK/venv/bin/iqa-train" --help | head -3
env -u PYTHONPATH -u IQA_ROOT "$WORK/venv/bin/python" -c "import iqa_bench, sys; p = iqa_bench.__file__; print('imported from', p); sys.exit(0 if p.startswith('$WORK/venv') else 1)"
env -u PYTHONPATH -u IQA_ROOT "$WORK/venv/bin/iqa-train" experiment=smoke print_config=false
test -f "$WORK/elsewhere/runs/train/experiment-smoke/results.csv"
test -f "$WORK/elsewhere/runs/train/experiment-smoke/checkpoints/last.ckpt"
echo "wheel smoke ok: $WORK/elsewhere/runs/train/experiment-smoke"
