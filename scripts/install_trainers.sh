#!/usr/bin/env bash
# The upstream tools each export is checked with in the test suite: TRL's GRPOTrainer (torch,
# transformers, datasets, accelerate), verl's and OpenRLHF's loaders, nova-forge-sdk's reward
# verifier and the OpenAI SDK's grader types. Without them those tests are skipped, unless
# RS_REQUIRE_TRAINERS=1 (then a missing package fails them). All Apache-2.0/MIT/BSD.
#   VENV=.venv scripts/install_trainers.sh
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
PIP=("$VENV/bin/python" -m pip install -q)

# torch first and pinned: this exact version resolves to the CPU wheel here; a bare `torch`
# would pull several GB of CUDA libraries.
"${PIP[@]}" "torch==2.13.0"
constraints=$(mktemp)
trap 'rm -f "$constraints"' EXIT
echo "torch==2.13.0" >"$constraints"
"${PIP[@]}" -c "$constraints" "trl==1.16.0" "transformers>=5.15" "datasets>=4.8" \
  "accelerate>=1.10" "openai>=1.90"

# verl and OpenRLHF: only their loaders are exercised, so their wheels without dependencies
# (Ray, vLLM, flash-attn, deepspeed...); openrlhf.utils imports pylatexenc.
"${PIP[@]}" --no-deps "verl==0.9.1" "openrlhf==0.11.2"
"${PIP[@]}" "pylatexenc>=2.10"

# nova-forge-sdk (PyPI: amzn-nova-forge) declares Python >= 3.12 and pulls SageMaker, mlflow and
# matplotlib; its reward verifier module runs on 3.11 with these few packages.
"${PIP[@]}" --no-deps --ignore-requires-python "amzn-nova-forge==1.4.10"
"${PIP[@]}" --no-deps "sagemaker-core==2.27.0"
"${PIP[@]}" "pyarrow>=14" "filetype>=1.2" "tqdm>=4.66" "cloudpickle>=2" "rich>=13"

"$VENV/bin/python" - <<'PY'
import importlib
import importlib.util

for name in ("torch", "trl", "transformers", "datasets", "openai", "openrlhf.utils.agent"):
    importlib.import_module(name)
# verl's and nova-forge-sdk's package __init__ need their whole frameworks: the tests import
# only the modules they use (tests/support/ecosystem.py); check that the files are there.
for name in ("verl", "amzn_nova_forge", "sagemaker"):
    assert importlib.util.find_spec(name) is not None, name
print("trainer and ecosystem packages ready")
PY
