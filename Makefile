# The two commands a newcomer runs (README): `make demo` and `make test`.
# Both set up what they need first (scripts/setup.sh, idempotent).

SHELL := /bin/bash
CARGO ?= cargo
FUZZ_SECONDS ?= 60
PATCH_FUZZ_SECONDS ?= 30
CRD_FUZZ_SECONDS ?= 30
PROTOBUF_FUZZ_SECONDS ?= 30
AUTH_FUZZ_SECONDS ?= 30

.PHONY: demo demo-down test setup setup-demo check lint fmt deny unit fuzz bench bench-quick clean install uninstall deb

## make demo: set everything up, build in release mode, and run a two-node cluster on
## this machine, narrated; it keeps running until `make demo-down`.
demo: setup-demo
	$(CARGO) build --release --locked
	scripts/demo.sh up

## make demo-down: stop the demo cluster and remove everything it made.
demo-down:
	scripts/demo.sh down

## make install: build in release mode and install the binaries, systemd units,
## default config files (/etc/rk8s, kept when they exist), man pages, rk8sctl's
## completions, under DESTDIR and PREFIX (/usr/local).
## make uninstall removes them again (the config files stay, and it names what stays;
## PURGE=1: those too, the node's pods and both binaries' data).
PREFIX ?= /usr/local
install:
	$(CARGO) build --release --locked
	DESTDIR="$(DESTDIR)" PREFIX="$(PREFIX)" scripts/install.sh install

## make deb: the Debian package (target/debian/rk8s_VERSION_ARCH.deb) of what make
## install installs, built with dpkg-deb.
deb:
	$(CARGO) build --release --locked
	scripts/deb.sh target/debian

uninstall:
	DESTDIR="$(DESTDIR)" PREFIX="$(PREFIX)" PURGE="$(PURGE)" scripts/install.sh uninstall

## make test: everything CI runs.
test: setup lint deny fuzz unit

setup:
	scripts/setup.sh

# Only what the demo needs (no cargo-fuzz, cargo-deny, registry or Python client).
setup-demo:
	scripts/setup.sh --demo

lint:
	$(CARGO) fmt --all --check
	$(CARGO) clippy --workspace --all-targets --locked -- -D warnings

# Advisories need the RustSec database, which is fetched from outside the package
# registries this project's machines reach; licenses, bans and sources are checked
# offline. See deny.toml.
deny:
	$(CARGO) fetch --locked
	$(CARGO) deny --offline check bans licenses sources

unit:
	$(CARGO) test --workspace --locked

# A bounded fuzzing run of the manifest decoders, of the three patch types, of custom
# resources against their CRDs, of the protobuf decoder, then of the credentials'
# parsing (client certificates, tokens, impersonation headers; stable toolchain:
# RUSTC_BOOTSTRAP lets cargo-fuzz pass its -Z flags). The RSS limit turns a memory amplification into a crash. New
# crashes land in fuzz/artifacts/; add each as a regression test.
fuzz:
	mkdir -p fuzz/corpus/manifest fuzz/corpus/patch fuzz/corpus/crd_schema \
		fuzz/corpus/protobuf fuzz/corpus/auth
	RUSTC_BOOTSTRAP=1 $(CARGO) fuzz run --sanitizer none manifest \
		fuzz/corpus/manifest examples api/tests/fixtures/invalid -- \
		-max_total_time=$(FUZZ_SECONDS) -rss_limit_mb=2048 -print_final_stats=1
	RUSTC_BOOTSTRAP=1 $(CARGO) fuzz run --sanitizer none patch fuzz/corpus/patch -- \
		-max_total_time=$(PATCH_FUZZ_SECONDS) -rss_limit_mb=2048 -print_final_stats=1
	RUSTC_BOOTSTRAP=1 $(CARGO) fuzz run --sanitizer none crd_schema fuzz/corpus/crd_schema -- \
		-max_total_time=$(CRD_FUZZ_SECONDS) -rss_limit_mb=2048 -print_final_stats=1
	RUSTC_BOOTSTRAP=1 $(CARGO) fuzz run --sanitizer none protobuf fuzz/corpus/protobuf -- \
		-max_total_time=$(PROTOBUF_FUZZ_SECONDS) -rss_limit_mb=2048 -print_final_stats=1
	RUSTC_BOOTSTRAP=1 $(CARGO) fuzz run --sanitizer none auth fuzz/corpus/auth fuzz/seeds/auth -- \
		-max_total_time=$(AUTH_FUZZ_SECONDS) -rss_limit_mb=2048 -print_final_stats=1

## make bench: the benchmarks (not part of make test); tables on stdout, JSON under
## target/bench/. Results go in docs/benchmarks.md.
bench: setup
	scripts/setup-bench.sh
	$(CARGO) run --release --manifest-path bench/Cargo.toml --bin store-writes
	ulimit -n 16384 && $(CARGO) bench --bench api
	ulimit -n 16384 && $(CARGO) bench --bench api_encodings
	ulimit -n 16384 && $(CARGO) bench --bench api_rbac
	$(CARGO) bench --bench runtime
	$(CARGO) bench --bench node
	ulimit -n 16384 && $(CARGO) bench --bench scheduler
	ulimit -n 16384 && $(CARGO) bench --bench controllers
	ulimit -n 16384 && $(CARGO) bench --bench autoscaling
	$(CARGO) bench --bench network
	$(CARGO) bench --bench ingress
	$(CARGO) bench --bench cold_start
	$(CARGO) bench --bench netpol
	$(CARGO) bench --bench snapshot

## make bench-quick: the control plane's hot paths in small cases (a few minutes),
## compared with the figures recorded in docs/bench-quick.json; fails on a figure
## worse by more than its tolerance. Run it before submitting a change to the API
## server's write path, the store, the scheduler or the controllers.
## RK8S_BENCH_RECORD=1 records the new figures instead.
bench-quick: setup
	ulimit -n 16384 && RK8S_BENCH_SCHEDULER=1000x5000 $(CARGO) bench --bench scheduler
	ulimit -n 16384 && RK8S_BENCH_CONTROLLERS=200 RK8S_BENCH_CONTROLLERS_QUICK=1 $(CARGO) bench --bench controllers
	ulimit -n 16384 && RK8S_BENCH_API_QUICK=1 $(CARGO) bench --bench api
	$(CARGO) bench --bench compare

fmt:
	$(CARGO) fmt --all

clean:
	$(CARGO) clean
	rm -rf fuzz/target fuzz/corpus fuzz/artifacts bench/target
