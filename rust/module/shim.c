// SPDX-License-Identifier: GPL-2.0
/*
 * C shims of bcachefs-rs: thin trampolines for kernel interfaces the Rust
 * kernel crate has no abstraction for. Declarations live in shim.h.
 */
#include <linux/module.h>
#include <linux/fs.h>
#include <linux/fs_context.h>
#include <linux/crc32.h>
#include <linux/crc64.h>
#include <linux/xxhash.h>

#include "shim.h"

static char fs_name[32] = "bcachefs";
module_param_string(fs_name, fs_name, sizeof(fs_name), 0444);
MODULE_PARM_DESC(fs_name,
		 "Name of the registered filesystem type (default bcachefs), so the module can sit beside another bcachefs module");

static int bch_rs_get_tree_tramp(struct fs_context *fc)
{
	return bch_rs_get_tree(fc);
}

static const struct fs_context_operations bch_rs_context_ops = {
	.get_tree	= bch_rs_get_tree_tramp,
};

static int bch_rs_init_fs_context(struct fs_context *fc)
{
	fc->ops = &bch_rs_context_ops;
	return 0;
}

static struct file_system_type bch_rs_fs_type = {
	.owner			= THIS_MODULE,
	.init_fs_context	= bch_rs_init_fs_context,
	.kill_sb		= kill_anon_super,
	.fs_flags		= FS_REQUIRES_DEV,
};

int bch_rs_register_fs(void)
{
	bch_rs_fs_type.name = fs_name;
	return register_filesystem(&bch_rs_fs_type);
}

void bch_rs_unregister_fs(void)
{
	unregister_filesystem(&bch_rs_fs_type);
}

const char *bch_rs_fs_name(void)
{
	return fs_name;
}

u32 bch_rs_crc32c(u32 seed, const void *data, size_t len)
{
	return crc32c(seed, data, len);
}

u64 bch_rs_crc64_be(u64 seed, const void *data, size_t len)
{
	return crc64_be(seed, data, len);
}

u64 bch_rs_xxh64(const void *data, size_t len)
{
	return xxh64(data, len, 0);
}
