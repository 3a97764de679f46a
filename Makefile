# SPDX-License-Identifier: GPL-2.0
# bcachefs-rs. Kbuild (not this file) describes the module; this file drives it.
#
#   make              build bcachefs.ko against the cached test kernel
#   make check        every test: rustfmt, clippy, cargo tests, parity, module build
#                     (+ CLIPPY=1), KUnit and VM tests (the README's test command)
#   make demo         the main job: set up, build, boot a VM that loads the module and
#                     mounts a bcachefs image (the basic fixture)
#   make run [DISKS="a.img b.img"] [SCRIPT=guest.sh] [RW=1]   boot the test kernel with the module
#                                     (RW=1: the disks attach writable; give copies)
#   make clean

SHELL := /bin/bash
TOP := $(CURDIR)
LLVM ?= -19

.PHONY: all module setup kernel check demo run clean

all: module

setup:
	@scripts/setup.sh

# The kernel build directory (cached outside the checkout).
kernel: setup
	@scripts/build-kernel.sh >/dev/null

KDIR_CMD = $$(scripts/build-kernel.sh 2>/dev/null | tail -n1)/src

module: kernel
	@kdir=$(KDIR_CMD); $(MAKE) -s -C $$kdir LLVM=$(LLVM) M=$(TOP) $(if $(CLIPPY),CLIPPY=1) modules

check:
	@scripts/check.sh

# Without DISKS: the basic fixture image when ../shared/fixtures is present.
SAMPLE_CMD = $$(scripts/fixture-images.sh basic 2>/dev/null)

run: module
	@disks="$(DISKS)"; [ -n "$$disks" ] || disks=$(SAMPLE_CMD); \
	scripts/vm/run.sh $(if $(SCRIPT),--script $(SCRIPT)) $(if $(RW),--rw) $$(for d in $$disks; do echo --disk $$d; done)

demo: module
	@img=$(SAMPLE_CMD); [ -n "$$img" ] || { echo "demo: no sample image (../shared/fixtures absent)"; exit 1; }; \
	scripts/vm/run.sh --script scripts/vm/demo.sh --disk $$img

clean:
	@kdir=$$(ls -d $${BCACHEFS_RS_CACHE:-$$HOME/.cache/bcachefs-rs}/kernel/*/src 2>/dev/null | head -n1); \
	if [ -n "$$kdir" ]; then $(MAKE) -s -C $$kdir LLVM=$(LLVM) M=$(TOP) clean; fi
	rm -rf build target rust/module/shim_generated.rs
