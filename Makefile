# Two commands for a fresh machine: `make demo` and `make test`. Both create or refresh .venv.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# CPU machines get the CPU build of torch explicitly (an open requirement would pull a
# multi-GB CUDA build). Set TORCH_SPEC= (empty) on a GPU machine to keep pip's choice.
TORCH_SPEC ?= $(shell command -v nvidia-smi >/dev/null 2>&1 || echo "torch==2.13.0")
STAMP := $(VENV)/.installed

.PHONY: install demo test bench clean

$(STAMP): pyproject.toml Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(if $(TORCH_SPEC),$(BIN)/python -m pip install --quiet "$(TORCH_SPEC)")
	$(BIN)/python -m pip install --quiet -e ".[test,cluster,serve]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/sbsconvert samples/motorcycle.png --disparity samples/disparity/motorcycle.pfm \
		-o out/motorcycle_LR.jpg --force
	$(BIN)/sbsconvert samples/clip.mp4 --disparity samples/disparity/clip.png -o out/clip_LR.mp4 --force
	$(BIN)/sbsconvert samples/ --disparity samples/disparity -o out/album --format hsbs --force
	@echo "Open out/motorcycle_LR.jpg (side by side, left eye on the left) in a headset or image viewer,"
	@echo "and out/clip_LR.mp4 (side by side, audio kept) in a headset's video player."

test: $(STAMP)
	$(BIN)/python -m pytest -q

bench: $(STAMP)
	$(BIN)/python bench/bench_warp.py
	$(BIN)/python bench/bench_video.py
	$(BIN)/python bench/bench_depth.py
	$(BIN)/python bench/bench_diffusion.py
	$(BIN)/python bench/bench_photo_formats.py
	$(BIN)/python bench/bench_encoder_determinism.py
	$(BIN)/python bench/bench_presets.py

clean:
	rm -rf $(VENV) out .pytest_cache
