# OX Broker. `make demo` runs the product end to end; `make test` runs every test.
GO      ?= go
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT  ?= $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)
LDFLAGS := -s -w -X main.version=$(VERSION) -X main.commit=$(COMMIT)
CMDS    := ./cmd/oxbroker ./cmd/oxbroker-gateway ./cmd/jira-standin
# Each fuzz target runs a fixed number of inputs in `make test` (CI): about
# 15 s on this 2-core machine, 25 s for path normalisation, the allowlist
# and the yamux frame guard, the security boundaries a stranger reaches.
# A count, not a duration: go1.26's fuzz coordinator can fail a run with
# "context deadline exceeded" at the end of a -fuzztime duration, with no
# failing input (golang/go#75804, fixed in go1.27). `make fuzz FUZZTIME=5m`
# runs each target for that long instead.
FUZZTIME ?=
FUZZ_TARGETS := ./tunnel:FuzzReadFrame:200000x ./tunnel:FuzzDecodeMessage:200000x \
	./tunnel:FuzzFrameGuard:400000x ./gateway:FuzzFramingScanner:150000x ./config:FuzzParseAgent:100000x \
	./proxy:FuzzCheckPath:250000x ./jira:FuzzAllowlistMatch:400000x ./internal/replace:FuzzReader:800000x \
	./tunnel/streamhttp:FuzzClientLikeTransport:3000x

.PHONY: build test unit fuzz check fmt vet cross tidy demo clean package package-test helm live-test

build:
	$(GO) build -trimpath -ldflags "$(LDFLAGS)" -o bin/ $(CMDS)

test: unit fuzz gobench

# The gateway's cluster tests run a real Redis (redis-server, Debian's
# package), and the status pages' tests a headless Chromium (chromium);
# need.sh installs them when they are missing.
unit:
	./scripts/need.sh redis-server:redis-server chromium:chromium
	$(GO) test -race -count=1 -timeout 15m ./...

fuzz:
	@set -e; for t in $(FUZZ_TARGETS); do \
		pkg=$${t%%:*}; rest=$${t#*:}; fn=$${rest%%:*}; ft=$${rest#*:}; \
		if [ -n "$(FUZZTIME)" ]; then ft=$(FUZZTIME); fi; \
		echo "fuzz $$fn ($$pkg) for $$ft"; \
		$(GO) test -run='^$$' -fuzz="^$$fn$$" -fuzztime=$$ft $$pkg; \
	done

check: fmt vet tidy cross unit helm gobench

fmt:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet ./...

cross:
	GOOS=windows GOARCH=amd64 $(GO) build -o /dev/null ./...
	GOOS=linux GOARCH=arm64 $(GO) build -o /dev/null ./...
	GOOS=darwin GOARCH=arm64 $(GO) build -o /dev/null ./...

tidy:
	$(GO) mod tidy && git diff --exit-code go.mod go.sum

# Release packages, as packaging/README.md lists them: make package VERSION=1.2.3
# writes dist/. With SIGN_CERT and SIGN_KEY set, the Windows .exe and .msi
# files are Authenticode-signed (osslsigncode). The .msi files are built with
# wixl and msibuild (Debian's wixl and msitools), which need.sh installs.
package:
	./scripts/need.sh wixl:wixl msibuild:msitools
	$(GO) run ./packaging/cmd/oxpackage -version $(VERSION) -commit $(COMMIT) -dist dist

# The packaging tests against dist/, after make package: they install the
# amd64 .deb into a throwaway root (as root) and need dpkg, rpm, unzip,
# osslsigncode, systemd-analyze and msitools (.ci/run installs them).
package-test:
	OXBROKER_DIST=$(CURDIR)/dist $(GO) test -count=1 -v ./packaging/...

# The live systemd tests (packaging/live): a Debian bookworm root file system,
# debootstrapped once into ~/.cache/oxbroker-live (OXBROKER_LIVE_CACHE), booted
# with systemd-nspawn; the .deb packages and the bare binary installed, run,
# reloaded, stopped, upgraded and purged in it. As root; installs what it needs.
live-test:
	./scripts/need.sh debootstrap:debootstrap systemd-nspawn:systemd-container nsenter:util-linux dpkg-deb:dpkg
	OXBROKER_LIVE=1 $(GO) test -count=1 -v -timeout 30m ./packaging/live/

# helm lint and helm template of the gateway's chart, with helm pinned in
# packaging/tools/go.mod, then the test of what it renders (dist/helm/).
HELM  := $(GO) -C packaging/tools tool helm
CHART := $(CURDIR)/packaging/helm/oxbroker-gateway
helm:
	$(HELM) lint --strict $(CHART)
	$(HELM) lint --strict $(CHART) -f $(CHART)/ci/redis-values.yaml
	mkdir -p dist/helm
	$(HELM) template oxbroker-gateway $(CHART) > dist/helm/default.yaml
	$(HELM) template oxbroker-gateway $(CHART) -f $(CHART)/ci/redis-values.yaml > dist/helm/redis.yaml
	OXBROKER_HELM_OUT=$(CURDIR)/dist/helm $(GO) test -count=1 -run '^TestHelm' ./packaging/

demo: build
	./scripts/demo.sh

.PHONY: bench gobench

# The benchmark of docs/benchmarks.md: the stand-in, the gateway and the
# agent as processes on loopback, once per transport, against the stand-in
# called directly and against frp on the same loads; then 10,000 simulated
# agents on one gateway. Prints Markdown tables; JSON in .bench/results.json.
# frp is built once from its Go module into ~/.cache/oxbroker-bench (the
# first run needs the Go module proxy; without it the run goes on without
# frp). About 5 minutes on 2 cores. Extra flags: make bench BENCHFLAGS=-frp=false
BENCHFLAGS ?=
bench: build
	./scripts/need.sh redis-server:redis-server
	$(GO) run ./bench/cmd/oxbroker-bench -bin bin -dir .bench/run -out .bench/results.json $(BENCHFLAGS)

# Every Go benchmark once (-benchtime=1x), so that none can rot. For
# figures: go test -run=NONE -bench=. -benchmem ./tunnel/ ./proxy/ ./jira/
BENCH_PKGS = $(sort $(dir $(shell grep -rl --include='*_test.go' '^func Benchmark' .)))
gobench:
	$(GO) test -run='^$$' -bench=. -benchtime=1x -benchmem $(BENCH_PKGS)

.PHONY: soak

# The long fault run of docs/reliability.md (e2e/soak_test.go, about 10
# minutes): 1,000 session cycles per transport, 200 gateway restarts and
# connection resets under load, minutes of steady load. `make test` skips it.
soak:
	OXBROKER_SOAK=1 $(GO) test -count=1 -timeout 30m -run '^TestSoak' -v ./e2e/

clean:
	rm -rf bin dist .demo
