# `make test` and `make demo` do all set-up on a fresh machine.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: test demo clean

$(VENV)/.installed: requirements.txt setup.py
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --upgrade pip
	$(VENV)/bin/pip install -r requirements.txt -e .
	touch $@

test: $(VENV)/.installed
	$(PY) -m pytest -q -ra

# `make demo`: synthetic faces -> pair dataset -> FVAE (demo preset), its confidence
# mask and the VAE baseline -> runs/demo/report.html. Each stage's output is its
# target, so a demo run again continues where it stopped (training resumes from its
# last checkpoint). Stage wall times go to runs/demo/timings/<stage> (seconds).
DEMO := runs/demo
DEMO_IDENTITIES := 20
DEMO_MASK_STEPS := 500
# $(call timed,STAGE,COMMAND): runs COMMAND (no commas in it) and records its time.
timed = mkdir -p $(DEMO)/timings && start=$$(date +%s) && $(2) && \
	echo $$(($$(date +%s) - start)) > $(DEMO)/timings/$(1)

$(DEMO)/synthetic/info.json: | $(VENV)/.installed
	$(call timed,1_synthetic_faces,$(PY) -m data_prep.make_synthetic --overwrite \
		--output_dir=$(DEMO)/synthetic --num_identities=$(DEMO_IDENTITIES))

$(DEMO)/dataset/manifest.json: $(DEMO)/synthetic/info.json
	$(call timed,2_dataset,$(PY) -m data_prep.build_dataset --overwrite --source=synthetic \
		--input_dir=$(DEMO)/synthetic --output_dir=$(DEMO)/dataset)

$(DEMO)/fvae/metrics.json: $(DEMO)/dataset/manifest.json
	$(call timed,3_fvae,$(PY) -m experiments.train --model=fvae --preset=demo \
		--workdir=$(DEMO)/fvae --dataset_dir=$(DEMO)/dataset)

$(DEMO)/fvae/mask/metrics.json: $(DEMO)/fvae/metrics.json
	$(call timed,4_mask,$(PY) -m experiments.train_mask --preset=demo \
		--num_steps=$(DEMO_MASK_STEPS) --workdir=$(DEMO)/fvae --dataset_dir=$(DEMO)/dataset)

$(DEMO)/vae/metrics.json: $(DEMO)/dataset/manifest.json
	$(call timed,5_vae,$(PY) -m experiments.train --model=vae --preset=demo \
		--workdir=$(DEMO)/vae --dataset_dir=$(DEMO)/dataset)

# Editing and interpolation on the first two held-out identities (the seeded split's
# val identities): their 256 px renders (session 1 neutral, session 4 scream),
# detected and aligned like photos.
DEMO_PHOTO = $(DEMO)/synthetic/session0$(2)/multiview/$(1)/0$(3)/05_1/$(1)_0$(2)_0$(3)_051_07.png
DEMO_VAL = $$($(PY) -c 'import json;import sys;print(*json.load(open(sys.argv[1]))["splits"]["val"]["identities"][:2])' $(DEMO)/dataset/manifest.json)

$(DEMO)/edit/.done: $(DEMO)/fvae/mask/metrics.json
	ids="$(DEMO_VAL)" && set -- $$ids && \
	$(call timed,6_edit,$(PY) -m experiments.edit --checkpoint_dir=$(DEMO)/fvae --to=smile \
		--strength=1.5 --steps=5 --output_dir=$(DEMO)/edit \
		--input $(call DEMO_PHOTO,$$1,1,1) $(call DEMO_PHOTO,$$2,1,1)) && \
	touch $@

$(DEMO)/interpolate/.done: $(DEMO)/fvae/mask/metrics.json
	ids="$(DEMO_VAL)" && set -- $$ids && \
	$(call timed,7_interpolate,$(PY) -m experiments.interpolate --checkpoint_dir=$(DEMO)/fvae \
		--steps=8 --output_dir=$(DEMO)/interpolate \
		--inputs $(call DEMO_PHOTO,$$1,1,1) $(call DEMO_PHOTO,$$1,4,3)) && \
	touch $@

DEMO_OUTPUTS := $(DEMO)/fvae/mask/metrics.json $(DEMO)/vae/metrics.json \
	$(DEMO)/edit/.done $(DEMO)/interpolate/.done

$(DEMO)/report.html: $(DEMO_OUTPUTS)
	$(PY) -m experiments.demo_report --demo_dir=$(DEMO)

demo: $(DEMO)/report.html

clean:
	rm -rf $(VENV) runs
