# Two entry points do all the set-up on a fresh machine:
#   make demo   installs the environment (once) and runs the end-to-end quantization demo
#   make test   installs the environment (once) and runs the test suite
#   make demo-centerpoint   CenterPoint INT8 end to end on generated lidar scenes (< 15 min)
#   make demo-sceneseg      SceneSeg INT8 end to end on generated road scenes (< 15 min)
# MMCV_FIND_LINKS=DIR lets pip take a prebuilt mmcv 2.1.0 wheel from DIR instead of building it
# from source (about 11 minutes on 2 cores). Never set PIP_FIND_LINKS: it hides the machine's
# local CPU torch wheel and pip then downloads a CUDA build.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip
CONSTRAINTS := -c constraints.txt
MMCV_FIND_LINKS ?=
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: demo demo-centerpoint demo-sceneseg test env

demo: $(STAMP)
	$(BIN)/python tools/quantize_demo.py --work-dir work_dirs/demo

demo-centerpoint: $(STAMP)
	$(BIN)/python tools/centerpoint_demo.py --work-dir work_dirs/centerpoint_demo

demo-sceneseg: $(STAMP)
	$(BIN)/python tools/sceneseg_demo.py --work-dir work_dirs/sceneseg_demo

test: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

env: $(STAMP)

$(STAMP): constraints.txt requirements/runtime.txt requirements/tests.txt setup.cfg setup.py
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP) install $(CONSTRAINTS) torch==2.13.0 "setuptools>=77,<81" wheel
	$(PIP) install $(CONSTRAINTS) mmengine==0.10.7 "numpy<2"
	MMCV_WITH_OPS=1 $(PIP) install $(CONSTRAINTS) --no-build-isolation \
		$(if $(MMCV_FIND_LINKS),--find-links $(MMCV_FIND_LINKS)) mmcv==2.1.0
	$(BIN)/python -c "import mmcv.ops"
	$(PIP) install $(CONSTRAINTS) -r requirements/runtime.txt -r requirements/tests.txt
	$(PIP) install --no-deps mmdet3d==1.4.0
	$(PIP) install --no-deps --no-build-isolation -e .
	-$(PIP) check
	touch $(STAMP)
