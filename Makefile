# Gimbal's entry points. `make demo` installs what is missing, builds, runs the default
# scenario, then the live comparison on emulated engines (scripts/live-demo.sh); `make test`
# installs, builds and runs every test, including the sanitizer builds; `make check` is the quick
# loop while working: the optimised build, then its unit tests and fuzz-corpus replays.
JOBS ?= $(shell nproc)
GIMBAL := build/release/src/cli/gimbal

.PHONY: deps build demo test check bench lint clean fuzz

deps:
	bash scripts/install-deps.sh

build: deps
	cmake --preset release >/dev/null
	cmake --build --preset release -j $(JOBS)

demo: build
	$(GIMBAL) simulate --config configs/scenarios/default.yaml
	GIMBAL=$(GIMBAL) bash scripts/live-demo.sh

test: deps
	bash scripts/run-tests.sh

check:
	cmake --preset release >/dev/null
	cmake --build --preset release -j $(JOBS)
	ctest --preset release -L 'unit|fuzz'

bench: build
	bash bench/run-all.sh

# Formatting (.clang-format) and the clang thread-safety annotations (docs/install.md, "Lint").
lint: deps
	bash scripts/lint.sh
	bash scripts/thread-safety-check.sh

# libFuzzer on every parser of untrusted input (clang; docs/fuzzing.md). FUZZ_SECONDS per target
# (default 60); FUZZ_MERGE=1 merges new coverage into fuzz/corpus/.
fuzz: deps
	bash scripts/fuzz.sh

clean:
	rm -rf build
