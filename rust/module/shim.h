/* SPDX-License-Identifier: GPL-2.0 */
/*
 * C shims of bcachefs-rs: only what the kernel crate has no abstraction for.
 * Each function is a thin trampoline. bindgen reads this header at build time
 * (rust/module/shim_generated.rs), so it uses only basic C types and opaque
 * struct declarations.
 */
#ifndef BCH_RS_SHIM_H
#define BCH_RS_SHIM_H

#ifdef __BINDGEN__
typedef unsigned long size_t;
typedef unsigned int u32;
typedef unsigned long long u64;
#else
#include <linux/types.h>
#endif

struct fs_context;

/* --- implemented in C (shim.c), called from Rust --- */

/* Register / unregister the filesystem type named by the fs_name parameter. */
int bch_rs_register_fs(void);
void bch_rs_unregister_fs(void);
/* The fs_name module parameter (NUL terminated). */
const char *bch_rs_fs_name(void);

/* Hash primitives for the format core's Checksummer. */
u32 bch_rs_crc32c(u32 seed, const void *data, size_t len);
u64 bch_rs_crc64_be(u64 seed, const void *data, size_t len);
u64 bch_rs_xxh64(const void *data, size_t len);

/* --- implemented in Rust (bcachefs_rs.rs), called from C --- */

/* fs_context get_tree: mount. Returns 0 or a negative errno. */
int bch_rs_get_tree(struct fs_context *fc);

#endif /* BCH_RS_SHIM_H */
