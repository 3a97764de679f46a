// SPDX-License-Identifier: GPL-2.0
/*
 * C shims of bcachefs-rs: thin trampolines for kernel interfaces the Rust
 * kernel crate has no abstraction for (VFS tables, bios, wait_on_bit, debugfs
 * file operations). Declarations live in shim.h.
 */
#include <linux/module.h>
#include <linux/fs.h>
#include <linux/fs_context.h>
#include <linux/fs_parser.h>
#include <linux/slab.h>
#include <linux/delay.h>
#include <linux/blkdev.h>
#include <linux/bio.h>
#include <linux/highmem.h>
#include <linux/mm.h>
#include <linux/vmalloc.h>
#include <linux/wait_bit.h>
#include <linux/workqueue.h>
#include <linux/debugfs.h>
#include <linux/crc32.h>
#include <linux/crc64.h>
#include <linux/xxhash.h>

#include "shim.h"

static char fs_name[32] = "bcachefs";
module_param_string(fs_name, fs_name, sizeof(fs_name), 0444);
MODULE_PARM_DESC(fs_name,
		 "Name of the registered filesystem type and debugfs directory (default bcachefs), so the module can sit beside another bcachefs module");

static unsigned int btree_cache_max = 4096;
module_param(btree_cache_max, uint, 0644);
MODULE_PARM_DESC(btree_cache_max,
		 "Most btree nodes each filesystem keeps cached (default 4096, at least 16)");

/* Crash tests: a repair at mount stops as a crash would, after this many writes. */
static int repair_writes_max = -1;
module_param(repair_writes_max, int, 0644);
MODULE_PARM_DESC(repair_writes_max,
		 "Testing: a repair at mount (fsck,fix_errors) stops after this many device writes, failing the mount as a crash would leave the disks (-1, the default: never)");

int bch_rs_repair_writes_max(void)
{
	return READ_ONCE(repair_writes_max);
}

/* Crash tests by killing the VM: a repair at mount pauses after each write. */
static unsigned int repair_write_pause_ms;
module_param(repair_write_pause_ms, uint, 0644);
MODULE_PARM_DESC(repair_write_pause_ms,
		 "Testing: a repair at mount (fsck,fix_errors) logs each write done and sleeps this long before the next, so a test can kill the machine between two writes (0, the default: no pause)");

unsigned int bch_rs_repair_write_pause_ms(void)
{
	return READ_ONCE(repair_write_pause_ms);
}

unsigned int bch_rs_btree_cache_max(void)
{
	return max(READ_ONCE(btree_cache_max), 16U);
}

/* --- mount: the filesystem's tree on a new anonymous super --- */

static int bch_rs_fill_super(struct super_block *sb)
{
	int ret = bch_rs_fs_start(sb->s_fs_info);

	if (ret)
		return ret;
	return bch_rs_vfs_fill_super(sb, bch_rs_fs_root(sb->s_fs_info));
}

/* One super block per filesystem: a second mount of it shares the first. */
static int bch_rs_test_super(struct super_block *sb, struct fs_context *fc)
{
	return sb->s_fs_info && bch_rs_fs_same(sb->s_fs_info, fc->s_fs_info);
}

static int bch_rs_set_super(struct super_block *sb, struct fs_context *fc)
{
	int ret = set_anon_super_fc(sb, fc);

	if (!ret) {
		sb->s_fs_info = fc->s_fs_info;
		fc->s_fs_info = NULL;
	}
	return ret;
}

/*
 * Mount options. "ro" and the other superblock flags are the VFS's; an option not
 * listed here is refused with the VFS's "Unknown parameter" message naming it.
 */
enum { Opt_fsck, Opt_fix_errors, Opt_nochanges };

static const struct fs_parameter_spec bch_rs_params[] = {
	fsparam_flag("fsck",		Opt_fsck),
	fsparam_flag("fix_errors",	Opt_fix_errors),
	fsparam_flag("nochanges",	Opt_nochanges),
	{}
};

static int bch_rs_parse_param(struct fs_context *fc, struct fs_parameter *param)
{
	unsigned int *opts = fc->fs_private;
	struct fs_parse_result result;
	int opt = fs_parse(fc, bch_rs_params, param, &result);

	if (opt < 0)
		return opt;
	switch (opt) {
	case Opt_fsck:
		*opts |= BCH_RS_OPT_FSCK;
		return 0;
	case Opt_nochanges:
		*opts |= BCH_RS_OPT_NOCHANGES;
		return 0;
	case Opt_fix_errors:
		*opts |= BCH_RS_OPT_FIX_ERRORS;
		return 0;
	}
	return -ENOPARAM;
}

static int bch_rs_get_tree(struct fs_context *fc)
{
	struct super_block *sb;
	unsigned int *opts = fc->fs_private;
	int ret;

	if (!fc->source) {
		errorfc(fc, "no device given");
		return -EINVAL;
	}
	ret = bch_rs_fs_open(fc->source, !!(fc->sb_flags & SB_RDONLY), *opts, &fc->s_fs_info);
	if (ret)
		return ret;
	sb = sget_fc(fc, bch_rs_test_super, bch_rs_set_super);
	if (IS_ERR(sb))
		return PTR_ERR(sb);
	if (!sb->s_root) {
		ret = bch_rs_fill_super(sb);
		if (ret) {
			deactivate_locked_super(sb);
			return ret;
		}
		sb->s_flags |= SB_ACTIVE;
	}
	/* An existing mount: the filesystem opened here is freed with fc. */
	fc->root = dget(sb->s_root);
	return 0;
}

static void bch_rs_free_fc(struct fs_context *fc)
{
	if (fc->s_fs_info)
		bch_rs_fs_close(fc->s_fs_info);
	kfree(fc->fs_private);
}

/* A remount: read-only (1), read-write (0) or neither asked (-1), the options given. */
static int bch_rs_reconfigure(struct fs_context *fc)
{
	unsigned int *opts = fc->fs_private;
	int ro = (fc->sb_flags_mask & SB_RDONLY) ? !!(fc->sb_flags & SB_RDONLY) : -1;

	return bch_rs_fs_remount(fc->root->d_sb->s_fs_info, ro, *opts);
}

static const struct fs_context_operations bch_rs_context_ops = {
	.parse_param	= bch_rs_parse_param,
	.get_tree	= bch_rs_get_tree,
	.reconfigure	= bch_rs_reconfigure,
	.free		= bch_rs_free_fc,
};

static int bch_rs_init_fs_context(struct fs_context *fc)
{
	fc->fs_private = kzalloc(sizeof(unsigned int), GFP_KERNEL);
	if (!fc->fs_private)
		return -ENOMEM;
	fc->ops = &bch_rs_context_ops;
	return 0;
}

static void bch_rs_kill_sb(struct super_block *sb)
{
	void *fs = sb->s_fs_info;

	/* Background work first: a gc pass in progress stops at its next node. */
	if (fs)
		bch_rs_fs_stop_gc(fs);
	kill_anon_super(sb);
	if (fs)
		bch_rs_fs_close(fs);
}

static struct file_system_type bch_rs_fs_type = {
	.owner			= THIS_MODULE,
	.init_fs_context	= bch_rs_init_fs_context,
	.kill_sb		= bch_rs_kill_sb,
	.fs_flags		= FS_REQUIRES_DEV,
};

int bch_rs_register_fs(void)
{
	int ret = bch_rs_vfs_init();

	if (ret)
		return ret;
	bch_rs_fs_type.name = fs_name;
	ret = register_filesystem(&bch_rs_fs_type);
	if (ret)
		bch_rs_vfs_exit();
	return ret;
}

void bch_rs_unregister_fs(void)
{
	unregister_filesystem(&bch_rs_fs_type);
	bch_rs_vfs_exit();
}

const char *bch_rs_fs_name(void)
{
	return fs_name;
}

/* --- who has a filesystem open --- */

/*
 * Every opened filesystem (by UUID), and whether it writes. A filesystem that
 * writes (a repair at mount) must be the only one open on its devices when it is
 * opened: its in-memory state is what its writes start from, and a mount already
 * there would go on from a state the writes leave behind. (A read-only open beside
 * it, e.g. a second mount of the same filesystem, only reads.)
 */
struct bch_rs_claim {
	struct list_head list;
	u8 uuid[16];
	bool writable;
};

static DEFINE_MUTEX(bch_rs_claims_lock);
static LIST_HEAD(bch_rs_claims);

void *bch_rs_claim(const unsigned char *uuid, int writable, int *err)
{
	struct bch_rs_claim *c, *i;

	c = kzalloc(sizeof(*c), GFP_KERNEL);
	if (!c) {
		*err = -ENOMEM;
		return NULL;
	}
	memcpy(c->uuid, uuid, 16);
	c->writable = writable;
	mutex_lock(&bch_rs_claims_lock);
	list_for_each_entry(i, &bch_rs_claims, list) {
		if (writable && !memcmp(i->uuid, uuid, 16)) {
			mutex_unlock(&bch_rs_claims_lock);
			kfree(c);
			*err = -EBUSY;
			return NULL;
		}
	}
	list_add(&c->list, &bch_rs_claims);
	mutex_unlock(&bch_rs_claims_lock);
	*err = 0;
	return c;
}

void bch_rs_unclaim(void *claim)
{
	struct bch_rs_claim *c = claim;

	mutex_lock(&bch_rs_claims_lock);
	list_del(&c->list);
	mutex_unlock(&bch_rs_claims_lock);
	kfree(c);
}

/* --- block devices and bios --- */

struct file *bch_rs_bdev_open(const char *path, int write, int *err)
{
	blk_mode_t mode = BLK_OPEN_READ | (write ? BLK_OPEN_WRITE : 0);
	struct file *f = bdev_file_open_by_path(path, mode, NULL, NULL);

	if (IS_ERR(f)) {
		*err = PTR_ERR(f);
		return NULL;
	}
	*err = 0;
	return f;
}

void bch_rs_bdev_close(struct file *bdev_file)
{
	fput(bdev_file);
}

void bch_rs_bdev_name(struct file *bdev_file, char *buf, size_t len)
{
	snprintf(buf, len, "%pg", file_bdev(bdev_file));
}

u64 bch_rs_bdev_sectors(struct file *bdev_file)
{
	return bdev_nr_sectors(file_bdev(bdev_file));
}

#define BCH_RS_BIO_MAX_BYTES (1U << 20)
#define BCH_RS_READ_OPF (REQ_OP_READ | REQ_META | REQ_SYNC)

/* A bio for len bytes at sector into buf; NULL when it can't take them. */
static struct bio *bch_rs_bio_map(struct file *bdev_file, u64 sector, void *buf, size_t len,
				  blk_opf_t opf)
{
	unsigned int nr = DIV_ROUND_UP(offset_in_page(buf) + len, PAGE_SIZE);
	struct bio *bio;

	if (!len || len > BCH_RS_BIO_MAX_BYTES || (len & 511))
		return NULL;
	bio = bio_alloc(file_bdev(bdev_file), nr, opf, GFP_NOIO);
	bio->bi_iter.bi_sector = sector;
	if (is_vmalloc_addr(buf)) {
		if (!bio_add_vmalloc(bio, buf, len)) {
			bio_put(bio);
			return NULL;
		}
	} else {
		bio_add_virt_nofail(bio, buf, len);
	}
	return bio;
}

int bch_rs_bdev_read_sync(struct file *bdev_file, u64 sector, void *buf, size_t len)
{
	while (len) {
		size_t n = min_t(size_t, len, BCH_RS_BIO_MAX_BYTES);
		struct bio *bio = bch_rs_bio_map(bdev_file, sector, buf, n, BCH_RS_READ_OPF);
		int ret;

		if (!bio)
			return -EINVAL;
		ret = submit_bio_wait(bio);
		bio_put(bio);
		bch_rs_read_done(buf, n);
		if (ret)
			return ret;
		sector += n >> 9;
		buf += n;
		len -= n;
	}
	return 0;
}

static void bch_rs_bio_endio(struct bio *bio)
{
	void *private = bio->bi_private;
	int err = blk_status_to_errno(bio->bi_status);

	bio_put(bio);
	bch_rs_read_endio(private, err);
}

static void bch_rs_data_bio_endio(struct bio *bio)
{
	void *private = bio->bi_private;
	int err = blk_status_to_errno(bio->bi_status);

	bio_put(bio);
	bch_rs_data_read_endio(private, err);
}

int bch_rs_bdev_read_async(struct file *bdev_file, u64 sector, void *buf, size_t len,
			   void *private, int data)
{
	struct bio *bio = bch_rs_bio_map(bdev_file, sector, buf, len,
					 data ? REQ_OP_READ : BCH_RS_READ_OPF);

	if (!bio)
		return -EINVAL;
	bio->bi_private = private;
	bio->bi_end_io = data ? bch_rs_data_bio_endio : bch_rs_bio_endio;
	submit_bio(bio);
	return 0;
}

static blk_opf_t bch_rs_write_opf(unsigned int flags)
{
	return REQ_OP_WRITE | REQ_META | REQ_SYNC |
		(flags & BCH_RS_WRITE_FUA ? REQ_FUA : 0) |
		(flags & BCH_RS_WRITE_PREFLUSH ? REQ_PREFLUSH : 0);
}

int bch_rs_bdev_write_sync(struct file *bdev_file, u64 sector, const void *cbuf, size_t len,
			   unsigned int flags)
{
	void *buf = (void *)cbuf;

	while (len) {
		size_t n = min_t(size_t, len, BCH_RS_BIO_MAX_BYTES);
		struct bio *bio;
		int ret;

		if (is_vmalloc_addr(buf))
			flush_kernel_vmap_range(buf, n);
		bio = bch_rs_bio_map(bdev_file, sector, buf, n, bch_rs_write_opf(flags));
		if (!bio)
			return -EINVAL;
		ret = submit_bio_wait(bio);
		bio_put(bio);
		if (ret)
			return ret;
		/* Only the first piece waits for the writes before it. */
		flags &= ~BCH_RS_WRITE_PREFLUSH;
		sector += n >> 9;
		buf += n;
		len -= n;
	}
	return 0;
}

static void bch_rs_write_bio_endio(struct bio *bio)
{
	void *private = bio->bi_private;
	int err = blk_status_to_errno(bio->bi_status);

	bio_put(bio);
	bch_rs_write_endio(private, err);
}

int bch_rs_bdev_write_async(struct file *bdev_file, u64 sector, const void *cbuf, size_t len,
			    unsigned int flags, void *private)
{
	void *buf = (void *)cbuf;
	struct bio *bio;

	if (is_vmalloc_addr(buf))
		flush_kernel_vmap_range(buf, len);
	bio = bch_rs_bio_map(bdev_file, sector, buf, len, bch_rs_write_opf(flags));
	if (!bio)
		return -EINVAL;
	bio->bi_private = private;
	bio->bi_end_io = bch_rs_write_bio_endio;
	submit_bio(bio);
	return 0;
}

u64 bch_rs_real_seconds(void)
{
	return ktime_get_real_seconds();
}

int bch_rs_bdev_flush(struct file *bdev_file)
{
	return blkdev_issue_flush(file_bdev(bdev_file));
}

void bch_rs_read_done(void *buf, size_t len)
{
	if (is_vmalloc_addr(buf))
		invalidate_kernel_vmap_range(buf, len);
}

/* --- IO lock bits --- */

void bch_rs_wait_on_bit_io(unsigned long *word, int bit)
{
	wait_on_bit_io(word, bit, TASK_UNINTERRUPTIBLE);
}

void bch_rs_wait_on_bit_lock_io(unsigned long *word, int bit)
{
	wait_on_bit_lock_io(word, bit, TASK_UNINTERRUPTIBLE);
}

void bch_rs_msleep(unsigned int ms)
{
	msleep(ms);
}

void bch_rs_clear_bit_unlock_wake(unsigned long *word, int bit)
{
	clear_bit_unlock(bit, word);
	smp_mb__after_atomic();
	wake_up_bit(word, bit);
}

/* --- workqueue --- */

struct workqueue_struct *bch_rs_alloc_workqueue(const char *name)
{
	return alloc_workqueue("%s", WQ_UNBOUND | WQ_HIGHPRI | WQ_MEM_RECLAIM, 0, name);
}

void bch_rs_destroy_workqueue(struct workqueue_struct *wq)
{
	destroy_workqueue(wq);
}

/* --- debugfs --- */

static struct dentry *bch_rs_debugfs_root;

int bch_rs_debugfs_init(void)
{
	struct dentry *d = debugfs_create_dir(fs_name, NULL);

	/* No debugfs (not built in, or locked down) is not an error. */
	bch_rs_debugfs_root = IS_ERR(d) ? NULL : d;
	return 0;
}

void bch_rs_debugfs_exit(void)
{
	debugfs_remove(bch_rs_debugfs_root);
	bch_rs_debugfs_root = NULL;
}

static int bch_rs_dump_fop_open(struct inode *inode, struct file *file)
{
	void *private = NULL;
	int ret = bch_rs_dump_open(inode->i_private, &private);

	if (ret)
		return ret;
	file->private_data = private;
	return nonseekable_open(inode, file);
}

static ssize_t bch_rs_dump_fop_read(struct file *file, char __user *ubuf, size_t len,
				    loff_t *ppos)
{
	ssize_t ret = bch_rs_dump_read(file->private_data, (char __force *)ubuf, len);

	if (ret > 0)
		*ppos += ret;
	return ret;
}

static int bch_rs_dump_fop_release(struct inode *inode, struct file *file)
{
	bch_rs_dump_release(file->private_data);
	return 0;
}

static const struct file_operations bch_rs_dump_fops = {
	.owner		= THIS_MODULE,
	.open		= bch_rs_dump_fop_open,
	.read		= bch_rs_dump_fop_read,
	.release	= bch_rs_dump_fop_release,
};

struct dentry *bch_rs_debugfs_dir(const char *name, struct dentry *parent)
{
	struct dentry *d;

	if (!parent)
		parent = bch_rs_debugfs_root;
	if (!parent)
		return NULL;
	d = debugfs_create_dir(name, parent);
	return IS_ERR(d) ? NULL : d;
}

struct dentry *bch_rs_debugfs_file(const char *name, struct dentry *parent, void *data)
{
	struct dentry *d = debugfs_create_file(name, 0400, parent, data, &bch_rs_dump_fops);

	return IS_ERR(d) ? NULL : d;
}

void bch_rs_debugfs_remove(struct dentry *d)
{
	debugfs_remove(d);
}

/* --- hash primitives for the format core's Checksummer --- */

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
