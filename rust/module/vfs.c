// SPDX-License-Identifier: GPL-2.0
/*
 * VFS tables of bcachefs-rs: super, inode, file, address space and xattr
 * operations. Each function is a thin trampoline into Rust (rust/module/vfs.rs),
 * which decides everything from the btrees; this file only moves values between
 * VFS structures and the plain structs of shim.h.
 */
#include <linux/backing-dev.h>
#include <linux/fs.h>
#include <linux/namei.h>
#include <linux/pagemap.h>
#include <linux/highmem.h>
#include <linux/slab.h>
#include <linux/statfs.h>
#include <linux/xattr.h>
#include <linux/vmalloc.h>
#include <linux/zstd.h>
#include <linux/zlib.h>

#include "shim.h"

#define BCH_RS_SUPER_MAGIC 0xca451a4e

/* The VFS inode and what lookups in a directory need. */
struct bch_rs_inode {
	struct inode v;
	u64 hash_seed;
	u32 bi_flags;
};

static inline struct bch_rs_inode *to_bch(struct inode *inode)
{
	return container_of(inode, struct bch_rs_inode, v);
}

static struct kmem_cache *bch_rs_inode_cache;

static struct inode *bch_rs_alloc_inode(struct super_block *sb)
{
	struct bch_rs_inode *bi = alloc_inode_sb(sb, bch_rs_inode_cache, GFP_KERNEL);

	return bi ? &bi->v : NULL;
}

static void bch_rs_free_inode(struct inode *inode)
{
	kmem_cache_free(bch_rs_inode_cache, to_bch(inode));
}

static int bch_rs_statfs(struct dentry *dentry, struct kstatfs *buf)
{
	struct super_block *sb = dentry->d_sb;
	struct bch_rs_statfs st = {};
	int ret = bch_rs_fs_statfs(sb->s_fs_info, &st);

	if (ret)
		return ret;
	buf->f_type = BCH_RS_SUPER_MAGIC;
	buf->f_bsize = st.bsize;
	buf->f_blocks = st.blocks;
	buf->f_bfree = st.bfree;
	buf->f_bavail = st.bfree;
	buf->f_files = st.files;
	buf->f_ffree = st.ffree;
	buf->f_namelen = st.namelen;
	buf->f_fsid = u64_to_fsid(st.fsid);
	return 0;
}

/*
 * Freeze and thaw (FIFREEZE/FITHAW, and the kernel's own freezes): the super block
 * is read-only to the VFS (files are), for which freeze_super() calls no
 * ->freeze_fs, so the writes a mount makes itself (the gc thread's) are held
 * here, around the VFS's own freeze.
 */
static int bch_rs_freeze_super(struct super_block *sb, enum freeze_holder who,
			       const void *owner)
{
	int ret;

	bch_rs_fs_hold_writes(sb->s_fs_info, 1);
	ret = freeze_super(sb, who, owner);
	/* A positive return (a WARN in the VFS) still counted the freeze. */
	if (ret < 0)
		bch_rs_fs_hold_writes(sb->s_fs_info, -1);
	return ret;
}

static int bch_rs_thaw_super(struct super_block *sb, enum freeze_holder who,
			     const void *owner)
{
	int ret = thaw_super(sb, who, owner);

	if (!ret)
		bch_rs_fs_hold_writes(sb->s_fs_info, -1);
	return ret;
}

static const struct super_operations bch_rs_super_ops = {
	.alloc_inode	= bch_rs_alloc_inode,
	.free_inode	= bch_rs_free_inode,
	.statfs		= bch_rs_statfs,
	.freeze_super	= bch_rs_freeze_super,
	.thaw_super	= bch_rs_thaw_super,
};

static const struct inode_operations bch_rs_dir_iops;
static const struct inode_operations bch_rs_file_iops;
static const struct inode_operations bch_rs_symlink_iops;
static const struct inode_operations bch_rs_special_iops;
static const struct file_operations bch_rs_dir_fops;
static const struct file_operations bch_rs_file_fops;
static const struct address_space_operations bch_rs_aops;

static struct timespec64 ts(s64 sec, u32 nsec)
{
	return (struct timespec64){ .tv_sec = sec, .tv_nsec = nsec };
}

/* The inode numbered inum, from the inode cache or read from the inodes btree. */
static struct inode *bch_rs_iget(struct super_block *sb, u64 inum)
{
	struct bch_rs_attrs a = {};
	struct inode *inode = iget_locked(sb, inum);
	int ret;

	if (!inode)
		return ERR_PTR(-ENOMEM);
	if (!(inode_state_read_once(inode) & I_NEW))
		return inode;

	ret = bch_rs_inode_get(sb->s_fs_info, inum, &a);
	if (ret) {
		iget_failed(inode);
		return ERR_PTR(ret);
	}
	inode->i_mode = a.mode;
	i_uid_write(inode, a.uid);
	i_gid_write(inode, a.gid);
	set_nlink(inode, a.nlink);
	inode->i_size = a.size;
	inode->i_blocks = a.sectors;
	inode->i_generation = a.generation;
	inode_set_atime_to_ts(inode, ts(a.atime_sec, a.atime_nsec));
	inode_set_mtime_to_ts(inode, ts(a.mtime_sec, a.mtime_nsec));
	inode_set_ctime_to_ts(inode, ts(a.ctime_sec, a.ctime_nsec));
	to_bch(inode)->hash_seed = a.hash_seed;
	to_bch(inode)->bi_flags = a.bi_flags;

	switch (inode->i_mode & S_IFMT) {
	case S_IFDIR:
		inode->i_op = &bch_rs_dir_iops;
		inode->i_fop = &bch_rs_dir_fops;
		break;
	case S_IFREG:
		inode->i_op = &bch_rs_file_iops;
		inode->i_fop = &bch_rs_file_fops;
		inode->i_data.a_ops = &bch_rs_aops;
		break;
	case S_IFLNK:
		inode->i_op = &bch_rs_symlink_iops;
		inode_nohighmem(inode);
		inode->i_data.a_ops = &bch_rs_aops;
		break;
	default:
		inode->i_op = &bch_rs_special_iops;
		init_special_inode(inode, inode->i_mode, new_decode_dev(a.rdev));
		break;
	}
	unlock_new_inode(inode);
	return inode;
}

static struct dentry *bch_rs_lookup(struct inode *dir, struct dentry *dentry,
				    unsigned int flags)
{
	struct inode *inode = NULL;
	u64 inum = 0;
	int ret;

	ret = bch_rs_dir_lookup(dir->i_sb->s_fs_info, dir->i_ino, to_bch(dir)->hash_seed,
				to_bch(dir)->bi_flags, (const char *)dentry->d_name.name,
				dentry->d_name.len, &inum);
	if (ret && ret != -ENOENT)
		return ERR_PTR(ret);
	if (!ret) {
		inode = bch_rs_iget(dir->i_sb, inum);
		if (IS_ERR(inode))
			return ERR_CAST(inode);
	}
	return d_splice_alias(inode, dentry);
}

/*
 * Called by Rust for each entry of a listing, at directory offset pos: false once
 * the caller's buffer is full (the next call starts again at this entry), else the
 * position moves past it.
 */
int bch_rs_dir_emit(void *ctx, const char *name, size_t len, u64 ino, u32 d_type, u64 pos)
{
	struct dir_context *c = ctx;

	c->pos = min_t(u64, pos, LLONG_MAX);
	if (!dir_emit(c, name, len, ino, d_type))
		return 0;
	c->pos = min_t(u64, pos + 1, LLONG_MAX);
	return 1;
}

static int bch_rs_readdir(struct file *file, struct dir_context *ctx)
{
	struct inode *inode = file_inode(file);

	if (!dir_emit_dots(file, ctx))
		return 0;
	return bch_rs_dir_read(inode->i_sb->s_fs_info, inode->i_ino, ctx->pos, ctx);
}

static ssize_t bch_rs_listxattr(struct dentry *dentry, char *buf, size_t size)
{
	struct inode *inode = d_inode(dentry);

	return bch_rs_xattr_list(inode->i_sb->s_fs_info, inode->i_ino, buf, size);
}

static int bch_rs_xattr_user_get(const struct xattr_handler *handler, struct dentry *dentry,
				 struct inode *inode, const char *name, void *buf, size_t size)
{
	return bch_rs_xattr_get(inode->i_sb->s_fs_info, inode->i_ino, name, strlen(name),
				buf, size);
}

static const struct xattr_handler bch_rs_xattr_user = {
	.prefix	= XATTR_USER_PREFIX,
	.get	= bch_rs_xattr_user_get,
};

static const struct xattr_handler * const bch_rs_xattr_handlers[] = {
	&bch_rs_xattr_user,
	NULL,
};

/* One folio of a file (or symlink target) from its extents; holes read as zeros. */
static int bch_rs_read_folio(struct file *file, struct folio *folio)
{
	struct inode *inode = folio->mapping->host;
	loff_t pos = folio_pos(folio);
	size_t len = folio_size(folio);
	loff_t size = i_size_read(inode);
	size_t fill = 0;
	void *buf;
	int ret = 0;

	buf = kmap_local_folio(folio, 0);
	if (pos < size) {
		fill = min_t(loff_t, len, size - pos);
		ret = bch_rs_file_read(inode->i_sb->s_fs_info, inode->i_ino, pos, buf, fill);
		if (ret)
			fill = 0;
	}
	buf = folio_zero_tail(folio, fill, buf + fill);
	kunmap_local(buf);
	folio_end_read(folio, ret == 0);
	return ret;
}

/*
 * A readahead window in one pass over the file's extents: each extent in the window
 * is read (and its checksum verified, or it is decompressed) once, not once per
 * folio it covers, into a buffer copied into the folios. Every extent's bio is in
 * flight at once and completes on the filesystem's workqueue (data.rs). On an error every folio
 * of the window is left not uptodate: the page cache then reads each alone through
 * read_folio, so the folios the error does not touch still read.
 */
static void bch_rs_readahead(struct readahead_control *rac)
{
	struct inode *inode = rac->mapping->host;
	loff_t pos = readahead_pos(rac);
	size_t len = readahead_length(rac);
	loff_t size = i_size_read(inode);
	size_t fill = 0;
	struct folio *folio;
	char *data = NULL;
	int ret = 0;

	if (pos < size) {
		fill = min_t(loff_t, len, size - pos);
		data = kvmalloc(fill, GFP_KERNEL);
		ret = data ? bch_rs_file_read_window(inode->i_sb->s_fs_info, inode->i_ino,
						     pos, data, fill) : -ENOMEM;
	}
	while ((folio = readahead_folio(rac))) {
		size_t off = folio_pos(folio) - pos;
		size_t n = off < fill ? min(folio_size(folio), fill - off) : 0;
		void *buf;

		if (!ret) {
			buf = kmap_local_folio(folio, 0);
			if (n)
				memcpy(buf, data + off, n);
			buf = folio_zero_tail(folio, n, buf + n);
			kunmap_local(buf);
		}
		folio_end_read(folio, ret == 0);
	}
	kvfree(data);
}

static const struct address_space_operations bch_rs_aops = {
	.read_folio	= bch_rs_read_folio,
	.readahead	= bch_rs_readahead,
};

static const struct inode_operations bch_rs_dir_iops = {
	.lookup		= bch_rs_lookup,
	.listxattr	= bch_rs_listxattr,
};

static const struct inode_operations bch_rs_file_iops = {
	.listxattr	= bch_rs_listxattr,
};

static const struct inode_operations bch_rs_symlink_iops = {
	.get_link	= page_get_link,
	.listxattr	= bch_rs_listxattr,
};

static const struct inode_operations bch_rs_special_iops = {
	.listxattr	= bch_rs_listxattr,
};

static const struct file_operations bch_rs_dir_fops = {
	.llseek		= generic_file_llseek,
	.read		= generic_read_dir,
	.iterate_shared	= bch_rs_readdir,
};

static const struct file_operations bch_rs_file_fops = {
	.llseek		= generic_file_llseek,
	.read_iter	= generic_file_read_iter,
	.mmap_prepare	= generic_file_readonly_mmap_prepare,
	.splice_read	= filemap_splice_read,
};

/* Fill a new super block: the tree of the filesystem Rust opened. */
int bch_rs_vfs_fill_super(struct super_block *sb, u64 root_inum)
{
	struct inode *root;
	int ret;

	sb->s_magic = BCH_RS_SUPER_MAGIC;
	sb->s_flags |= SB_RDONLY | SB_NOATIME;
	sb->s_time_gran = 1;
	sb->s_maxbytes = MAX_LFS_FILESIZE;
	sb->s_blocksize = PAGE_SIZE;
	sb->s_blocksize_bits = PAGE_SHIFT;
	sb->s_op = &bch_rs_super_ops;
	sb->s_xattr = bch_rs_xattr_handlers;

	/*
	 * A backing_dev_info of its own, as upstream's mount sets up (its readahead
	 * window is the default, VM_READAHEAD_PAGES): an anonymous super block
	 * otherwise shares the noop one, whose ra_pages of 0 turns readahead off and
	 * has the page cache read every file a folio at a time.
	 */
	ret = super_setup_bdi(sb);
	if (ret)
		return ret;

	root = bch_rs_iget(sb, root_inum);
	if (IS_ERR(root))
		return PTR_ERR(root);
	if (!S_ISDIR(root->i_mode)) {
		pr_err("bcachefs-rs: root inode %llu is not a directory\n", root_inum);
		iput(root);
		return -EUCLEAN;
	}
	sb->s_root = d_make_root(root);
	return sb->s_root ? 0 : -ENOMEM;
}

static void bch_rs_inode_init_once(void *p)
{
	struct bch_rs_inode *bi = p;

	inode_init_once(&bi->v);
}

int bch_rs_vfs_init(void)
{
	bch_rs_inode_cache = kmem_cache_create("bcachefs_rs_inode", sizeof(struct bch_rs_inode), 0,
					       SLAB_RECLAIM_ACCOUNT | SLAB_ACCOUNT,
					       bch_rs_inode_init_once);
	return bch_rs_inode_cache ? 0 : -ENOMEM;
}

void bch_rs_vfs_exit(void)
{
	/* Inodes are freed after an RCU grace period: wait for them. */
	rcu_barrier();
	kmem_cache_destroy(bch_rs_inode_cache);
}

/* --- decompression with the kernel's libraries --- */

int bch_rs_decompress(u32 type, const void *src, size_t src_len, void *dst, size_t dst_len)
{
	void *ws;
	int ret = -EIO;

	switch (type) {
	case BCH_RS_COMPRESSION_GZIP: {
		z_stream strm = {
			.next_in	= src,
			.avail_in	= src_len,
			.next_out	= dst,
			.avail_out	= dst_len,
		};

		ws = kvmalloc(zlib_inflate_workspacesize(), GFP_KERNEL);
		if (!ws)
			return -ENOMEM;
		strm.workspace = ws;
		zlib_inflateInit2(&strm, -MAX_WBITS);
		if (zlib_inflate(&strm, Z_FINISH) == Z_STREAM_END && strm.total_out == dst_len)
			ret = 0;
		kvfree(ws);
		return ret;
	}
	case BCH_RS_COMPRESSION_ZSTD: {
		size_t bound = zstd_dctx_workspace_bound();
		zstd_dctx *ctx;
		size_t n;

		ws = kvmalloc(bound, GFP_KERNEL);
		if (!ws)
			return -ENOMEM;
		ctx = zstd_init_dctx(ws, bound);
		if (ctx) {
			n = zstd_decompress_dctx(ctx, dst, dst_len, src, src_len);
			if (!zstd_is_error(n) && n == dst_len)
				ret = 0;
		}
		kvfree(ws);
		return ret;
	}
	default:
		return -EOPNOTSUPP;
	}
}
