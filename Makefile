# Developer targets. CI runs .ci/run: `go vet ./...`, cross-builds of the
# client packages (js/wasm, windows, darwin) and `go test ./...`.

GO       ?= go
PKGS     ?= ./...
FUZZTIME ?= 5m
BENCH    ?= .
COUNT    ?= 1

.PHONY: test race bench fuzz lint

test:
	$(GO) test $(PKGS)

race:
	$(GO) test -race $(PKGS)

# Compare runs with benchstat: make bench COUNT=10 > new.txt
bench:
	$(GO) test -run='^$$' -bench='$(BENCH)' -benchmem -count=$(COUNT) $(PKGS)

# Runs every fuzz target (func FuzzX in a _test.go file) for FUZZTIME each.
# New crashers land in the package's testdata/fuzz/, which go test replays.
fuzz:
	@set -e; for file in $$(grep -rl --include='*_test.go' '^func Fuzz' .); do \
		dir=$$(dirname $$file); \
		for target in $$(sed -n 's/^func \(Fuzz[A-Za-z0-9_]*\)(.*/\1/p' $$file); do \
			echo "== $$dir $$target for $(FUZZTIME)"; \
			$(GO) test -run='^$$' -fuzz="^$$target$$" -fuzztime=$(FUZZTIME) $$dir; \
		done; \
	done

lint:
	@unformatted=$$(gofmt -l .); \
	if [ -n "$$unformatted" ]; then echo "gofmt -w needed on:"; echo "$$unformatted"; exit 1; fi
	$(GO) vet $(PKGS)
	@if command -v staticcheck >/dev/null 2>&1; then staticcheck $(PKGS); \
	else echo "staticcheck not installed; skipped (go install honnef.co/go/tools/cmd/staticcheck@latest)"; fi
