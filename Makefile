# Development entry points. Postgres and Redis are always private, throwaway
# instances started by scripts/services.sh (never the system ones).

SHELL := bash
.SHELLFLAGS := -euo pipefail -c

GO        ?= go
TESTFLAGS ?=
SERVICES  := scripts/services.sh

.PHONY: build test check dev bench bench-run fmt vet

# `endcall --version` prints these; docker build takes them as build args
# (--build-arg VERSION=... --build-arg COMMIT=...).
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT  ?= $(shell git rev-parse HEAD 2>/dev/null)

build:
	$(GO) build -ldflags "-X main.version=$(VERSION) -X main.commit=$(COMMIT)" -o endcall ./cmd/endcall

# Uses TEST_DATABASE_URL / TEST_REDIS_URL when both are set; otherwise starts
# its own instances under ./.test/ (durability off) and removes them after.
# Extra go test flags: make test TESTFLAGS='-race -run TestEnd'.
# scripts/browser.sh installs chromium for the dashboard's browser test (or
# says why that test will skip).
test:
	@scripts/browser.sh install
	@t0=$$(date +%s%N); rc=0; \
	if [[ -n "$${TEST_DATABASE_URL:-}" && -n "$${TEST_REDIS_URL:-}" ]]; then \
		$(MAKE) --no-print-directory check || rc=$$?; \
	else \
		$(SERVICES) run .test --fast --prefix TEST_ -- $(MAKE) --no-print-directory check || rc=$$?; \
	fi; \
	ms=$$(( ($$(date +%s%N) - t0) / 1000000 )); \
	if ((rc == 0)); then result=PASS; else result="FAIL (exit $$rc)"; fi; \
	printf 'make test: %s, %d.%03ds wall time\n' "$$result" $$((ms / 1000)) $$((ms % 1000)); \
	exit $$rc

# vet and the tests against the servers TEST_DATABASE_URL / TEST_REDIS_URL
# name (make test sets them).
check:
	$(GO) vet ./...
	$(GO) test -count=1 $(TESTFLAGS) ./...

# Services under ./.dev/, then the server with simulated telephony and demo
# data (scripts/dev.sh). Ctrl-C stops everything and removes ./.dev/.
dev: build
	@$(SERVICES) run .dev -- bash -c './endcall migrate && exec scripts/dev.sh'

# The benchmarks, against throwaway Postgres and Redis under ./.bench/ with
# durable commits (fsync on), so that the numbers are realistic: the Go
# benchmarks of the hot pure functions, then cmd/bench, which runs
# `endcall all` against its floors and prints one table (see
# docs/benchmarks.md). Flags for cmd/bench: make bench
# BENCHFLAGS='-pprof /tmp/prof'. BenchmarkQueryCalls (go test ./postgres
# -bench QueryCalls) is left out: it seeds its own million calls, and
# cmd/bench measures the same queries through the API.
BENCHFLAGS ?=
bench:
	@$(SERVICES) run .bench -- $(MAKE) --no-print-directory bench-run

# The body of bench, against the servers DATABASE_URL / REDIS_URL name.
bench-run:
	$(GO) test -run '^$$' -bench . -skip '^BenchmarkQueryCalls$$' -benchmem ./...
	$(GO) run ./cmd/bench $(BENCHFLAGS)

fmt:
	$(GO) fmt ./...

vet:
	$(GO) vet ./...
