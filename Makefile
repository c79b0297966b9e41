# Image Captioning with CNN & LSTM: set up, run and test the course.
#
#   make course   create .venv, install, draw the offline dataset, execute every notebook (default)
#   make test     the same set-up, then the unit tests and the notebooks' stored outputs (nbval, strict)
#   make lab      JupyterLab in the course environment
#   make site     the course as a website, from the notebooks' stored outputs: build/site/index.html
#   make help     every target
#
# PYTHON is the interpreter the virtual environment is made from: make PYTHON=python3.11 course
# TORCH=cpu installs PyTorch's CPU-only wheels into a new .venv (no NVIDIA libraries): make lab TORCH=cpu

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# torch is pinned only for a fresh environment; pyproject's ranges stay loose so that Colab's
# preinstalled torch is kept. TORCH=cpu takes the same versions from PyTorch's CPU-only index: PyPI's
# Linux wheels bring the CUDA libraries (3.4 GB of a 6.2 GB .venv), which a laptop without a GPU never uses.
TORCH ?= default
TORCH_PINS := "torch==2.14.1" "torchvision==0.29.1"
TORCH_CPU_INDEX := https://download.pytorch.org/whl/cpu
ifeq ($(TORCH),cpu)
STAMP := $(VENV)/.installed-cpu
TORCH_INSTALL := $(BIN)/python -m pip install --index-url $(TORCH_CPU_INDEX) $(TORCH_PINS)
else ifeq ($(TORCH),default)
STAMP := $(VENV)/.installed
TORCH_INSTALL := $(BIN)/python -m pip install $(TORCH_PINS)
else
$(error TORCH=$(TORCH) is not an option: leave TORCH unset (PyPI's build, with CUDA on Linux) or set TORCH=cpu)
endif
DATA := data/shapes
NOTEBOOKS := $(sort $(wildcard notebooks/[0-9][0-9]_*.ipynb))
# Generous: a notebook that trains on CPU may take a while, but a hung one must not hang CI forever.
NB_TIMEOUT ?= 3600
# No timing metadata: a re-run then changes only the outputs that really changed.
EXECUTE := $(BIN)/jupyter nbconvert --to notebook --execute --inplace --ExecutePreprocessor.timeout=$(NB_TIMEOUT) \
	--ExecutePreprocessor.record_timing=False
# The root conftest.py adds the sanitize file (tests/nbval_sanitize.cfg) and --nbval-current-env, so that a
# plain `pytest --nbval notebooks/` checks exactly what make does.
NBVAL := --nbval

# Progress bars off in everything make runs: stored notebook outputs must not hold timings.
export CAPTION_PROGRESS := 0

.DEFAULT_GOAL := course
.PHONY: course test unit nbval browser-test site site-test colab-rehearsal install data lab lint sync notebook assets \
	publish mutation student help

course: install data ## set up, then execute every notebook in order, in place
	@set -e; for nb in $(NOTEBOOKS); do \
		echo "== executing $$nb"; \
		$(EXECUTE) "$$nb"; \
	done
	@echo
	@echo "Done. The executed notebooks (outputs stored in place) are:"
	@for nb in $(NOTEBOOKS); do echo "  $$nb"; done
	@echo "The dataset is in $(DATA)/. Open the notebooks with: make lab"

# Run both suites even when the first fails, so one run shows every failure; fail if either failed.
test: install data ## unit tests, then every notebook's stored outputs (nbval, strict)
	@status=0; \
	$(BIN)/python -m pytest tests || status=1; \
	$(BIN)/python -m pytest $(NBVAL) notebooks/ || status=1; \
	if [ $$status -ne 0 ]; then echo "make test: FAILED (see above)"; fi; \
	exit $$status

unit: install ## the unit tests only
	$(BIN)/python -m pytest tests

nbval: install data ## the notebooks only (NB=notebooks/01_data_processing.ipynb for one)
	$(BIN)/python -m pytest $(NBVAL) $(or $(NB),notebooks/)

# The notebooks as a learner runs them: JupyterLab in headless Chromium, Run All Cells, then no error, no
# broken widget, every stored figure shown, the decoding explorer reacting to clicks (tools/browser_check.py).
# Installs what is missing: Debian's chromium (apt, as root) and playwright (pyproject's [browser] extra).
CHROMIUM ?= /usr/bin/chromium
BROWSER_TIMEOUT ?= 900
ENSURE_CHROMIUM = test -x "$(CHROMIUM)" || { \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; \
	else echo "make $@ needs Chromium: apt-get install chromium, or CHROMIUM=/path/to/it"; exit 1; fi; }
ENSURE_PLAYWRIGHT = $(BIN)/python -c "import playwright" 2>/dev/null || $(BIN)/python -m pip install -q -e ".[browser]"
browser-test: install data ## notebooks run in JupyterLab in Chromium; screenshots/ (NB=... for some)
	@$(ENSURE_CHROMIUM)
	@$(ENSURE_PLAYWRIGHT)
	@status=0; \
	CHROMIUM="$(CHROMIUM)" BROWSER_TESTS_REQUIRED=1 $(BIN)/python -m pytest -m browser tests/test_browser_check.py \
		|| status=1; \
	CHROMIUM="$(CHROMIUM)" $(BIN)/python tools/browser_check.py --timeout $(BROWSER_TIMEOUT) \
		$(or $(NB),$(NOTEBOOKS)) || status=1; \
	exit $$status

# The course as a static website, built from the notebooks' stored outputs without executing them
# (tools/site_build.py: Sphinx, MyST-NB, the Sphinx Book Theme): build/site/index.html. Installs the [site]
# extra when it is missing. .github/workflows/site.yml publishes the same build from a release tag.
SITE := build/site
site: install ## the course as a website from the notebooks' stored outputs, in build/site/
	@$(BIN)/python -c "import sphinx, myst_nb, sphinx_book_theme" 2>/dev/null || $(BIN)/python -m pip install -q -e ".[site]"
	$(BIN)/python tools/site_build.py --out $(SITE)

# The built site in headless Chromium, served from build/site alone by python -m http.server: every page
# loads, every stored figure is shown, no internal link or image is broken, every image has alt text, the
# landing page's numbers are the ones the notebooks printed (tools/site_check.py; its own tests first).
site-test: site ## the website in Chromium: pages, figures, links, numbers; screenshots/site-landing.png
	@$(ENSURE_CHROMIUM)
	@$(ENSURE_PLAYWRIGHT)
	@status=0; \
	CHROMIUM="$(CHROMIUM)" BROWSER_TESTS_REQUIRED=1 $(BIN)/python -m pytest -q tests/test_site.py || status=1; \
	CHROMIUM="$(CHROMIUM)" $(BIN)/python tools/site_check.py $(SITE) --screenshot screenshots/site-landing.png \
		|| status=1; \
	exit $$status

# Each notebook as Colab runs it: Colab's preinstalled set in a cached virtual environment (ipywidgets 7.7.1,
# no jupyterlab, no nbval), the notebook alone in an empty folder, its setup cell installing the course
# from a snapshot of this checkout (tools/colab_rehearsal.py). `install` first: torch is linked from .venv.
colab-rehearsal: install ## notebooks as on Colab, in a Colab-like environment (NB=... for some)
	$(BIN)/python tools/colab_rehearsal.py $(NB)

# Mutation testing: mutmut puts one small bug at a time into the functions where a silent bug costs most
# (the losses, greedy and beam search, the caption-file readers, downloading, safe extraction, deleting
# downloaded archives, checkpoint saving and loading, resuming a run and its random state, the feature
# cache's key, BLEU, batches and sharding, the optimiser's groups, the attribute scorer, the vocabulary
# and the choice of precision) and runs the unit tests that reach each; a mutant that no
# test notices survives. Several hours on the 2 shared cores of the course's CI machine (README, "Mutation
# testing"). Configuration (which files, which tests) in
# pyproject.toml's [tool.mutmut]; results stay in mutants/. MUTANTS picks functions by mutmut's names,
# e.g. a part: make mutation MUTANTS="'helpers.decoding.x_greedy*'"
MUTATION_JOBS ?= 2
MUTANTS ?= \
	'helpers.models.x__cpu_lengths*' 'helpers.models.x_target_mask*' 'helpers.models.x_sequence_loss*' \
	'helpers.models.x_packed_loss*' 'helpers.models.x_prefix_batch*' 'helpers.models.x_prefix_loss*' \
	'helpers.decoding.x_greedy*' 'helpers.decoding.x_beam_search*' 'helpers.decoding.x__finish*' \
	'helpers.metrics.*' \
	'helpers.diagnostics.x_most_common_caption*' 'helpers.diagnostics.x_distinct_n*' \
	'helpers.diagnostics.x_vocabulary_coverage*' 'helpers.diagnostics.x_mean_length*' \
	'helpers.diagnostics.x_swap_partners*' 'helpers.diagnostics.x_image_sensitivity*' \
	'helpers.diagnostics.x_flags*' 'helpers.diagnostics.x_diagnose*' 'helpers.diagnostics.x*Rule*flagged*' \
	'helpers.caption_table.*' 'helpers.flickr8k_captions.*' 'helpers.coco_captions.*' \
	'helpers.extract.*' 'helpers.download.*' 'helpers.transfer.*' \
	'helpers.batches.*' 'helpers.utils.x_atomic_save*' 'helpers.runs.x_load_checkpoint*' \
	'helpers.runs.x_load_run*' 'helpers.runs.x_checkpoint_vocab*' 'helpers.runs.x_save_run*' \
	'helpers.training.x_make_optimizer*' 'helpers.training.x_train_epoch*' \
	'helpers.attributes.*' 'helpers.vocabulary.*' 'helpers.precision.*' \
	'helpers.resume.*' 'helpers.runs.x_repair_best*' 'helpers.runs.x__best_state*' 'helpers.utils.x_random_state*' \
	'helpers.utils.x_set_random_state*' 'helpers.features.x__fingerprint*'
mutation: install ## mutation testing (mutmut) of the modules where a silent bug costs most; survivors listed
	OMP_NUM_THREADS=1 $(BIN)/mutmut run --max-children $(MUTATION_JOBS) $(MUTANTS)
	@echo "Survivors (mutmut show NAME for the diff):"
	@$(BIN)/mutmut results

$(VENV)/pyvenv.cfg:
	$(PYTHON) -m venv $(VENV)

# A torch already in .venv is kept, whatever TORCH says; TORCH=cpu refuses one built for CUDA rather than
# install over it (pip would call it satisfied) or delete it. The stamp makes a second run instant until
# pyproject.toml changes.
$(STAMP): pyproject.toml | $(VENV)/pyvenv.cfg
	@$(BIN)/python -c "import torch, torchvision" 2>/dev/null || $(TORCH_INSTALL)
ifeq ($(TORCH),cpu)
	@$(BIN)/python -c "import sys, torch; sys.exit(0 if torch.version.cuda is None else \
		f'error: $(VENV) already holds torch {torch.__version__}, built for CUDA; TORCH=cpu does not replace it: ' \
		'remove $(VENV) (rm -rf $(VENV)) and run the same make command again')"
endif
	$(BIN)/python -m pip install -e ".[course,dev]"
	@touch $@

install: $(STAMP) ## create .venv and install the course into it (only when needed)

data: install ## draw the offline shapes dataset if it is not there yet
	$(BIN)/python -m helpers data make-shapes --out $(DATA)

lab: install data ## JupyterLab on the notebooks
	$(BIN)/jupyter lab notebooks/

lint: install ## ruff on every Python file in the repository (the notebooks through their .py pairs in notebooks_py/)
	$(BIN)/ruff check .

student: install ## copies of the notebooks without the solution cells, for teachers, in student/ (git-ignored)
	$(BIN)/python tools/student.py --out student

sync: install ## pair each notebook with its jupytext .py in notebooks_py/ (jupytext.toml), newest side wins
	$(BIN)/jupytext --sync notebooks/*.ipynb

notebook: install data ## execute one notebook in place: make notebook NB=notebooks/01_data_processing.ipynb
	@test -n "$(NB)" || { echo "usage: make notebook NB=notebooks/NN_name.ipynb"; exit 2; }
	$(EXECUTE) "$(NB)"

assets: install ## regenerate the diagrams under assets/
	$(BIN)/python -m helpers diagrams

# The public address (GitHub owner/name and the tag learners install) lives in pyproject's [tool.course];
# this rewrites it (REPO=, REF=, both optional) and, from it, every notebook's Colab badge and setup cell.
publish: install ## set the public address: make publish REPO=you/fork REF=v0.2.0, then commit and tag
	$(BIN)/python tools/publish.py $(if $(REPO),--repo "$(REPO)") $(if $(REF),--ref "$(REF)")

help: ## list the targets
	@awk -F ':.*## ' '/^[a-z-]+:.*## / { printf "  make %-12s %s\n", $$1, $$2 }' $(MAKEFILE_LIST)
