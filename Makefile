# SPDX-License-Identifier: GPL-2.0
# bcachefs-rs. Kbuild (not this file) describes the module; this file drives it.
#
#   make              build bcachefs.ko against the cached test kernel
#   make check        every test: rustfmt, clippy, cargo tests, parity, module build
#                     (+ CLIPPY=1), KUnit and VM tests (the README's test command)
#   make run [DISKS="a.img b.img"] [SCRIPT=guest.sh]   boot the test kernel with the module
#   make clean

SHELL := /bin/bash
TOP := $(CURDIR)
LLVM ?= -19

.PHONY: all module setup kernel check check-userspace check-module check-kunit check-vm \
	check-parity fuzz run clean

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

run: module
	@scripts/vm/run.sh $(if $(SCRIPT),--script $(SCRIPT)) $(foreach d,$(DISKS),--disk $(d))

clean:
	@kdir=$$(ls -d $${BCACHEFS_RS_CACHE:-$$HOME/.cache/bcachefs-rs}/kernel/*/src 2>/dev/null | head -n1); \
	if [ -n "$$kdir" ]; then $(MAKE) -s -C $$kdir LLVM=$(LLVM) M=$(TOP) clean; fi
	rm -rf build target rust/module/shim_generated.rs
