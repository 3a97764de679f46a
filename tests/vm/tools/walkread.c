// SPDX-License-Identifier: GPL-2.0
/*
 * Guest helper of the reliability campaign: everything a user does to a mounted
 * tree, in one process (a shell loop forks per file, which costs seconds per
 * image under TCG).
 *   walkread DIR...   walks each DIR (nftw, no symlinks followed): stat of every
 *                     entry, every directory read, every file read whole, every
 *                     symlink read, every xattr listed and read. Prints one line:
 *                     paths=N files=F bytes=B xattrs=X eio=E errors=R
 *                     (eio: reads that failed with EIO; errors: other failures). Exit 0 unless the walk itself
 *                     could not start.
 * Built static (clang-19, libc6-dev) by scripts/vm/run.sh into /bin.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

static unsigned long long paths, files, bytes, xattrs, eio, errors;
static char buf[1 << 16];

static void failed(const char *what, const char *path, int err)
{
	if (err == EIO)
		eio++;
	else
		errors++;
	fprintf(stderr, "walkread: %s %s: %s\n", what, path, strerror(err));
}

static void read_xattrs(const char *path)
{
	static char names[1 << 16], val[1 << 16];
	ssize_t n = llistxattr(path, names, sizeof(names));

	if (n < 0) {
		if (errno != ENOTSUP)
			failed("listxattr", path, errno);
		return;
	}
	for (char *p = names; p < names + n; p += strlen(p) + 1) {
		if (lgetxattr(path, p, val, sizeof(val)) < 0)
			failed("getxattr", path, errno);
		else
			xattrs++;
	}
}

static int visit(const char *path, const struct stat *st, int flag, struct FTW *f)
{
	(void)st;
	(void)f;
	paths++;
	if (flag == FTW_NS) {
		failed("stat", path, errno);
		return 0;
	}
	if (flag == FTW_DNR) {
		failed("opendir", path, errno);
		return 0;
	}
	read_xattrs(path);
	if (flag == FTW_SL) {
		if (readlink(path, buf, sizeof(buf)) < 0)
			failed("readlink", path, errno);
		return 0;
	}
	if (flag != FTW_F || !S_ISREG(st->st_mode))
		return 0;
	int fd = open(path, O_RDONLY);

	if (fd < 0) {
		failed("open", path, errno);
		return 0;
	}
	files++;
	for (;;) {
		ssize_t n = read(fd, buf, sizeof(buf));

		if (n < 0) {
			failed("read", path, errno);
			break;
		}
		if (n == 0)
			break;
		bytes += n;
	}
	close(fd);
	return 0;
}

int main(int argc, char **argv)
{
	int rc = 0;

	for (int i = 1; i < argc; i++) {
		if (nftw(argv[i], visit, 64, FTW_PHYS) < 0) {
			fprintf(stderr, "walkread: %s: %s\n", argv[i], strerror(errno));
			rc = 2;
		}
	}
	printf("paths=%llu files=%llu bytes=%llu xattrs=%llu eio=%llu errors=%llu\n",
	       paths, files, bytes, xattrs, eio, errors);
	return rc;
}
