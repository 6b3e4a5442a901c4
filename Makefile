# Conker: the two commands a newcomer needs are `make demo` and `make test`.
# Everything is built with Meson/Ninja; this file only sequences the steps.

BUILD      ?= build
BUILD_ASAN ?= build-asan
MESON      ?= meson

.PHONY: all deps build build-asan test unit e2e check bench demo images deb broker-image install clean format \
	td-image td-image-lock td-image-test vm-test

all: build

deps:
	@bash scripts/deps.sh

$(BUILD)/build.ninja:
	$(MESON) setup $(BUILD) --werror

build: deps $(BUILD)/build.ninja
	$(MESON) compile -C $(BUILD)

$(BUILD_ASAN)/build.ninja:
	CC=clang $(MESON) setup $(BUILD_ASAN) -Db_sanitize=address,undefined -Db_lundef=false \
		-Dbuildtype=debug --werror

build-asan: deps $(BUILD_ASAN)/build.ninja
	$(MESON) compile -C $(BUILD_ASAN)

# Every suite: static checks, unit + fuzz corpora (normal and ASan/UBSan builds), end to end.
test: build build-asan
	@bash scripts/test.sh $(BUILD) $(BUILD_ASAN)

unit: build
	$(MESON) test -C $(BUILD) --suite unit --suite fuzz-regress --print-errorlogs

e2e: build
	CONKER_BUILD=$(CURDIR)/$(BUILD) /usr/bin/python3 -m pytest -v tests/e2e

check:
	@bash scripts/check-banned.sh
	@bash scripts/check-format.sh

images: build
	@bash scripts/images.sh $(BUILD)

# Debian packages conker and conker-broker in build-deb/ (docs/install.md).
deb: deps
	@bash scripts/deb.sh build-deb

# The broker as an OCI image: $(BUILD)/images/conker-broker:latest (docs/install.md).
broker-image: build
	@bash scripts/broker-image.sh $(BUILD)

# Installing from the tree: packages are the supported way; meson install works too.
install:
	@echo "Install Conker with its Debian packages (docs/install.md):"
	@echo "  make deb && sudo apt install ./build-deb/conker_*.deb ./build-deb/conker-broker_*.deb"
	@echo "or straight from a build directory configured for /usr:"
	@echo "  meson setup build-usr --prefix=/usr && meson compile -C build-usr && sudo meson install -C build-usr"

# The TD image (docs/td-image.md): a unified kernel image from the Debian packages pinned in
# scripts/td-image/packages.lock, into build/td-image/. Not part of `make test`: a build takes
# minutes and needs the mirror (or the cache /var/cache/conker-td) on first use.
td-image: build
	@bash scripts/td-image/build.sh $(CURDIR)/$(BUILD)/src/cli/conker

# Re-resolves the lock from the mirror: changes the image and so its measurements.
td-image-lock: deps
	@bash scripts/td-image/lock.sh

# Builds the image twice, compares the digests, reads the initrd back and boots it under QEMU
# TCG (tests/e2e/test_td_image.py; minutes).
td-image-test: build
	CONKER_BUILD=$(CURDIR)/$(BUILD) CONKER_TD_IMAGE_TEST=1 /usr/bin/python3 -m pytest -v tests/e2e/test_td_image.py

# The seed story inside the TD image (tests/e2e/test_vm.py): builds the image and its test
# variant, boots the variant under QEMU TCG with a state disk, a registry and a broker on the
# host (minutes; docs/td-image.md section 7). `make test` runs it too where QEMU and mmdebstrap are.
vm-test: build
	CONKER_TD_TEST_VARIANT=1 bash scripts/td-image/build.sh $(CURDIR)/$(BUILD)/src/cli/conker
	CONKER_BUILD=$(CURDIR)/$(BUILD) CONKER_VM_TEST=1 /usr/bin/python3 -m pytest -v -rs -s tests/e2e/test_vm.py

bench: build
	@for b in bench/*.sh; do echo "== $$b"; bash $$b $(BUILD) || exit 1; done

demo: build
	@bash scripts/demo.sh $(BUILD)

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

clean:
	rm -rf $(BUILD) $(BUILD_ASAN) build-deb
