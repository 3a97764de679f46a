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
typedef long long s64;
typedef long ssize_t;
#else
#include <linux/types.h>
#endif

struct file;
struct dentry;
struct workqueue_struct;
struct super_block;

/* An inode's attributes, as Rust reads them from the inodes btree. */
struct bch_rs_attrs {
	u64 size;
	u64 sectors;
	u64 hash_seed;
	s64 atime_sec;
	s64 mtime_sec;
	s64 ctime_sec;
	u32 atime_nsec;
	u32 mtime_nsec;
	u32 ctime_nsec;
	u32 mode;
	u32 uid;
	u32 gid;
	u32 nlink;
	u32 rdev;
	u32 generation;
	u32 bi_flags;
};

/* statfs figures, in blocks of bsize bytes. */
struct bch_rs_statfs {
	u64 blocks;
	u64 bfree;
	u64 files;
	u64 ffree;
	u64 fsid;
	u32 bsize;
	u32 namelen;
};

/* Compression types the kernel's libraries decompress (enum bch_compression_type). */
#define BCH_RS_COMPRESSION_GZIP 2
#define BCH_RS_COMPRESSION_ZSTD 4

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

/* Node cache limit (module parameter btree_cache_max, in nodes). */
unsigned int bch_rs_btree_cache_max(void);
/* Module parameter repair_writes_max: -1, or the writes a repair stops after. */
int bch_rs_repair_writes_max(void);
/* Module parameter repair_write_pause_ms: 0, or how long a repair sleeps after each
 * write (logged) before the next. */
unsigned int bch_rs_repair_write_pause_ms(void);

/* Block devices, opened read-only and shared (no holder). */
/* Registers an opened filesystem (its 16-byte UUID); NULL with *err = -EBUSY when
 * it would write and another open one has the same UUID. */
void *bch_rs_claim(const unsigned char *uuid, int writable, int *err);
void bch_rs_unclaim(void *claim);

struct file *bch_rs_bdev_open(const char *path, int write, int *err);
void bch_rs_bdev_close(struct file *bdev_file);
/* The block device's name (vda, sdb1) into buf, NUL terminated. */
void bch_rs_bdev_name(struct file *bdev_file, char *buf, size_t len);
u64 bch_rs_bdev_sectors(struct file *bdev_file);
/* Reads len bytes at sector into buf (kmalloc or vmalloc memory) and waits. */
int bch_rs_bdev_read_sync(struct file *bdev_file, u64 sector, void *buf, size_t len);
/*
 * Submits a read of len bytes (at most 1 MiB) at sector into buf and returns at
 * once: a node read (REQ_META), whose endio calls bch_rs_read_endio(private,
 * errno), or with data set a file data read (no REQ_META), whose endio calls
 * bch_rs_data_read_endio(private, errno); both in interrupt context. Returns 0 or
 * a negative errno (then no endio comes).
 */
int bch_rs_bdev_read_async(struct file *bdev_file, u64 sector, void *buf, size_t len,
			   void *private, int data);
/* After DMA into buf completed: make its vmalloc alias coherent. */
void bch_rs_read_done(void *buf, size_t len);
/* Writes: REQ_OP_WRITE | REQ_META | REQ_SYNC, plus these. */
#define BCH_RS_WRITE_FUA	1u	/* REQ_FUA: on stable media when it completes */
#define BCH_RS_WRITE_PREFLUSH	2u	/* REQ_PREFLUSH: after every write completed before it */
/* Writes len bytes (a multiple of 512) at sector and waits; 0 or -errno. */
int bch_rs_bdev_write_sync(struct file *bdev_file, u64 sector, const void *buf, size_t len,
			   unsigned int flags);
/* Starts one write bio (len up to 1 MiB); returns at once; the bio's endio calls
 * bch_rs_write_endio(private, errno) in interrupt context. */
int bch_rs_bdev_write_async(struct file *bdev_file, u64 sector, const void *buf, size_t len,
			    unsigned int flags, void *private);
/* Wall clock seconds since the epoch (superblock write times). */
u64 bch_rs_real_seconds(void);
/* A cache flush of the whole device, waited for. */
int bch_rs_bdev_flush(struct file *bdev_file);

/* IO lock bits, wait_on_bit style. */
void bch_rs_wait_on_bit_io(unsigned long *word, int bit);
/* Takes the bit, sleeping (in IO wait) while another holder has it. */
void bch_rs_wait_on_bit_lock_io(unsigned long *word, int bit);
void bch_rs_msleep(unsigned int ms);
void bch_rs_clear_bit_unlock_wake(unsigned long *word, int bit);

/* A workqueue of the filesystem's own, for read completions. */
struct workqueue_struct *bch_rs_alloc_workqueue(const char *name);
void bch_rs_destroy_workqueue(struct workqueue_struct *wq);

/* debugfs: a directory (under the module's root when parent is NULL), a text file
 * whose reads go to bch_rs_dump_*, and recursive removal. NULL on failure. */
struct dentry *bch_rs_debugfs_dir(const char *name, struct dentry *parent);
struct dentry *bch_rs_debugfs_file(const char *name, struct dentry *parent, void *data);
void bch_rs_debugfs_remove(struct dentry *d);
int bch_rs_debugfs_init(void);
void bch_rs_debugfs_exit(void);

/* VFS (vfs.c): the inode cache and tables; fill a new super block whose root
 * directory is inode root_inum. */
int bch_rs_vfs_init(void);
void bch_rs_vfs_exit(void);
int bch_rs_vfs_fill_super(struct super_block *sb, u64 root_inum);
/* readdir: one entry into the dir_context ctx at position pos; 0 once full. */
int bch_rs_dir_emit(void *ctx, const char *name, size_t len, u64 ino, u32 d_type, u64 pos);
/* Decompress all of src into exactly dst_len bytes: 0, -EIO or -EOPNOTSUPP. */
int bch_rs_decompress(u32 type, const void *src, size_t src_len, void *dst, size_t dst_len);

/* gc (gc.c): /sys/fs/<fs_name>, and per filesystem its gc kthread ("bch-gc/<name>")
 * with internal/trigger_gc and internal/gc_status. */
struct bch_rs_gc;
int bch_rs_sysfs_init(void);
void bch_rs_sysfs_exit(void);
/* Starts the thread (a first pass runs at once when pass_at_start, or when the
 * gc_at_mount parameter says so); NULL with *err on failure. */
struct bch_rs_gc *bch_rs_gc_start(void *fs, const char *uuid, const char *name,
				  int pass_at_start, int *err);
/* Removes the files, then stops the thread (kthread_stop) and frees g. */
void bch_rs_gc_stop(struct bch_rs_gc *g);
/* In a pass: whether its thread is being stopped. */
int bch_rs_gc_should_stop(void);
u64 bch_rs_ktime_ns(void);

/* --- implemented in Rust, called from C --- */

/* Mount: open the filesystem on the devices in source (colon separated). */
/* Mount options (fs_context parameters), as bits of bch_rs_fs_open's opts. */
#define BCH_RS_OPT_FSCK		1u	/* "fsck": a gc pass checks the filesystem at mount */
#define BCH_RS_OPT_NOCHANGES	2u	/* "nochanges": nothing is ever written */
#define BCH_RS_OPT_FIX_ERRORS	4u	/* "fix_errors": the fsck pass's findings are repaired */
int bch_rs_fs_open(const char *source, int read_only, unsigned int opts, void **fs);
/* Whether two opened filesystems are the same one (same UUID). */
int bch_rs_fs_same(void *a, void *b);
/* A new super block for fs: create its debugfs files. */
int bch_rs_fs_start(void *fs);
/* Unmount, first step: stop the gc thread. */
void bch_rs_fs_stop_gc(void *fs);
/* Unmount: stop IO and release the filesystem. */
void bch_rs_fs_close(void *fs);
/*
 * A remount: ro 1 when it asks for read-only, 0 for read-write (files stay
 * read-only: refused), -1 when it asks for neither; opts the options given.
 * Returns 0 or a negative errno.
 */
int bch_rs_fs_remount(void *fs, int ro, unsigned int opts);
/*
 * Freeze (hold 1, before the VFS freezes the super block: waits for a commit in
 * progress, and none starts) and thaw (hold -1, once the VFS thawed it).
 */
void bch_rs_fs_hold_writes(void *fs, int hold);
/* The root directory's inode number of the mounted subvolume. */
u64 bch_rs_fs_root(void *fs);
/* VFS operations (rust/module/vfs.rs); errors are negative errnos. */
int bch_rs_inode_get(void *fs, u64 inum, struct bch_rs_attrs *out);
int bch_rs_dir_lookup(void *fs, u64 dir, u64 hash_seed, u32 bi_flags, const char *name,
		      size_t len, u64 *inum);
int bch_rs_dir_read(void *fs, u64 dir, u64 pos, void *ctx);
int bch_rs_file_read(void *fs, u64 inum, u64 pos, void *buf, size_t len);
/* The same for a readahead window: every extent's bio in flight at once. */
int bch_rs_file_read_window(void *fs, u64 inum, u64 pos, void *buf, size_t len);
ssize_t bch_rs_xattr_list(void *fs, u64 inum, char *buf, size_t size);
int bch_rs_xattr_get(void *fs, u64 inum, const char *name, size_t len, void *buf, size_t size);
int bch_rs_fs_statfs(void *fs, struct bch_rs_statfs *out);
/* A read completed (interrupt context). */
void bch_rs_read_endio(void *private, int err);
void bch_rs_data_read_endio(void *private, int err);
void bch_rs_write_endio(void *private, int err);
/* One gc pass over fs (in its gc thread), and the last pass's status as text. */
void bch_rs_gc_pass(void *fs);
ssize_t bch_rs_gc_status(void *fs, char *buf, size_t size);
ssize_t bch_rs_write_stats(void *fs, char *buf, size_t size);
/* debugfs text files: data is what bch_rs_debugfs_file was given. */
int bch_rs_dump_open(void *data, void **private);
ssize_t bch_rs_dump_read(void *private, char *ubuf, size_t len);
void bch_rs_dump_release(void *private);

#endif /* BCH_RS_SHIM_H */
