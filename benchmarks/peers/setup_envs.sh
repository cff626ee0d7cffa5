#!/usr/bin/env bash
# Virtual environments for the peer toolkits of benchmarks/peers/peers.py, outside
# the repository:
#   /work/peers_venvs/joeynmt   Joey NMT 2.3.0
#   /work/peers_venvs/onmt      OpenNMT-py 3.5.1
# Both get the same CPU build of torch as nmt's own environment, installed first and
# pinned, so that pip never pulls a CUDA build. Usage: bash setup_envs.sh [ROOT]
set -euo pipefail

ROOT=${1:-/work/peers_venvs}
TORCH=torch==2.13.0
PYTHON=${PYTHON:-python3}

make_venv() {
    local dir=$1
    if [ ! -x "$dir/bin/python" ]; then
        "$PYTHON" -m venv "$dir"
    fi
    "$dir/bin/pip" install -q "$TORCH"
}

# Joey NMT 2.3.0 declares torch>=1.12, so the pinned torch satisfies it and a normal
# install works. It imports importlib_metadata without declaring it.
make_venv "$ROOT/joeynmt"
"$ROOT/joeynmt/bin/pip" install -q "joeynmt==2.3.0" importlib_metadata "$TORCH"

# OpenNMT-py 3.5.1 pins torch<2.3, which would replace the CPU torch 2.13.0 (and pull
# CUDA wheels). Least invasive fix: install it with --no-deps and add by hand only
# what training and translation import:
#   configargparse, pyyaml, sacrebleu, six  (options, configs, scoring)
#   pyonmttok                               (imported by onmt.inputters at import time)
#   spacy, pyahocorasick, rapidfuzz, fasttext-wheel
#                                           (onmt.transforms imports every transform
#                                            module eagerly, even unused ones)
# Left out on purpose: ctranslate2 (model conversion), flask and waitress (REST
# server), tensorboard (only with -tensorboard). pip check therefore reports them
# and the torch pin as unmet; the benchmark never needs them.
make_venv "$ROOT/onmt"
"$ROOT/onmt/bin/pip" install -q --no-deps "OpenNMT-py==3.5.1"
"$ROOT/onmt/bin/pip" install -q "$TORCH" configargparse pyyaml sacrebleu six \
    "pyonmttok>=1.37,<2" spacy pyahocorasick rapidfuzz fasttext-wheel

# Both peers call torch.load() without weights_only, which torch >= 2.6 turns into a
# weights-only load that rejects their checkpoints; peers.py sets
# TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1 when it runs them (our own checkpoints only).
export OMP_NUM_THREADS=1
"$ROOT/joeynmt/bin/python" -c "import joeynmt.training, joeynmt.prediction, torch; \
print('joeynmt', __import__('joeynmt').__version__, 'torch', torch.__version__)"
"$ROOT/onmt/bin/python" -W ignore -c "import onmt.bin.train, onmt.bin.translate, \
torch; print('OpenNMT-py', __import__('onmt').__version__, 'torch', torch.__version__)"
