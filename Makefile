# OX Broker. `make demo` runs the product end to end; `make test` runs every test.
GO      ?= go
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT  ?= $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)
LDFLAGS := -s -w -X main.version=$(VERSION) -X main.commit=$(COMMIT)
CMDS    := ./cmd/oxbroker ./cmd/oxbroker-gateway ./cmd/jira-standin
# Each fuzz target runs FUZZTIME in `make test` (CI); `make fuzz FUZZTIME=5m` for longer.
# Path normalisation and the allowlist, the agent's security boundary, get 30 s.
FUZZTIME ?= 20s
FUZZ_TARGETS := ./tunnel:FuzzReadFrame ./config:FuzzParseAgent ./proxy:FuzzCheckPath ./jira:FuzzAllowlistMatch

.PHONY: build test unit fuzz check fmt vet cross tidy demo clean

build:
	$(GO) build -trimpath -ldflags "$(LDFLAGS)" -o bin/ $(CMDS)

test: unit fuzz

unit:
	$(GO) test -race -count=1 ./...

fuzz:
	@set -e; for t in $(FUZZ_TARGETS); do \
		pkg=$${t%%:*}; fn=$${t##*:}; \
		ft=$(FUZZTIME); case $$fn in FuzzCheckPath|FuzzAllowlistMatch) [ "$(FUZZTIME)" = 20s ] && ft=30s;; esac; \
		echo "fuzz $$fn ($$pkg) for $$ft"; \
		$(GO) test -run='^$$' -fuzz="^$$fn$$" -fuzztime=$$ft $$pkg; \
	done

check: fmt vet tidy cross unit

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

demo: build
	./scripts/demo.sh

clean:
	rm -rf bin dist .demo
