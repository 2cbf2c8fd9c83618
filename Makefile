# Annals: build, test and schema maintenance. Every target that needs PostgreSQL uses
# TEST_DATABASE_URL when set (a maintenance database such as postgres; scratch databases are
# created beside it and dropped), else the local server on 127.0.0.1:5432 as user postgres.
#
#   make test          everything CI runs: deps, vet, Go tests, pgTAP, schema drift, goose CLI,
#                      the TypeScript example's tests
#   make demo          the inventory story against a scratch database

GO        ?= go
GOTIMEOUT ?= 10m

# golangci-lint (errcheck, staticcheck, revive, ... as .golangci.yaml says), pinned, installed
# with go install into GOPATH/bin: as a go.mod tool it would add its hundreds of modules to ours.
GOLANGCI_LINT_VERSION := v2.15.0
GOLANGCI_LINT         ?= $(shell $(GO) env GOPATH)/bin/golangci-lint

.NOTPARALLEL:
.PHONY: test deps vet lint-tool test-go test-sql schema-dump schema-check test-goose-cli test-node demo build

test: deps vet test-go test-sql schema-check test-goose-cli test-node

# pg_prove and the pgtap and plpgsql_check extensions; installed with apt-get as root, else the
# command to run is printed and the target fails.
deps:
	tests/scripts/deps.sh

vet: lint-tool
	$(GO) vet ./...
	$(GOLANGCI_LINT) run ./...
	@unformatted=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$unformatted" ]; then echo "gofmt: these files need gofmt -w:"; echo "$$unformatted"; exit 1; fi

# One package at a time (-p 1): the feed's barrier is cluster-wide, so one package's deliberately
# long transactions (rebuilds, interleavings) would stall another package's feed tests. Tests
# inside a package still run in parallel.
#
# gotestsum prints each test as it finishes (and the output of failing ones), so a long package
# is not minutes of silence.
test-go:
	$(GO) tool gotestsum --format testname --format-hide-empty-pkg -- -p 1 -count=1 -timeout $(GOTIMEOUT) ./...

lint-tool:
	@if ! "$(GOLANGCI_LINT)" version 2>/dev/null | grep -q "version $(GOLANGCI_LINT_VERSION:v%=%) "; then \
		echo "installing golangci-lint $(GOLANGCI_LINT_VERSION) into $$($(GO) env GOPATH)/bin (a few minutes, once)"; \
		GOFLAGS= $(GO) install github.com/golangci/golangci-lint/v2/cmd/golangci-lint@$(GOLANGCI_LINT_VERSION); \
	fi

# pgTAP files in tests/pgtap (structure, behaviour, plpgsql_check) in a fresh database.
test-sql:
	tests/pgtap/run.sh

# sql/900_schema.sql: the schema a fresh install has, for review and drift checks.
schema-dump:
	tests/scripts/schema_dump.sh sql/900_schema.sql

schema-check:
	tests/scripts/schema_check.sh

# The README's goose CLI install path, compared with annals migrate.
test-goose-cli:
	tests/scripts/goose_cli.sh

# examples/node-inventory: the TypeScript service's tests (node:test, against scratch databases
# beside TEST_DATABASE_URL's). Needs Node.js 18.19 or later and npm; the dependencies come from
# the committed lockfile (npm ci), into the example's own node_modules.
test-node:
	@command -v node >/dev/null && command -v npm >/dev/null || { \
		echo "test-node: node and npm are not on PATH; install Node.js 18.19 or later with npm (Debian 12: apt-get install nodejs npm)"; exit 1; }
	@node -e 'const [a, b] = process.versions.node.split(".").map(Number); process.exit(a > 18 || (a === 18 && b >= 19) ? 0 : 1)' || { \
		echo "test-node: Node.js $$(node --version) is too old; examples/node-inventory needs 18.19 or later"; exit 1; }
	cd examples/node-inventory && npm ci --prefer-offline --no-audit --no-fund && GO=$(GO) npm test

demo:
	$(GO) run ./cmd/annals demo

# The release `annals --version` prints: the nearest tag and the commit (VERSION=v1.2.3 to override).
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null)

build:
	$(GO) build ./...
	$(GO) build -ldflags "-X main.version=$(VERSION)" -o bin/annals ./cmd/annals
