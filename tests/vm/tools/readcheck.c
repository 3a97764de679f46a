// SPDX-License-Identifier: GPL-2.0
/*
 * Guest helper of the VM tests: reads a file in ways busybox cannot.
 *   readcheck mmap FILE   the whole file through mmap, to stdout
 *   readcheck odd FILE    the whole file through pread in odd-sized pieces, to stdout
 *   readcheck cmp FILE    windows at odd offsets and sizes, read with pread and
 *                         through mmap, compared; exits 1 on a difference
 * Built static (clang-19, libc6-dev) by scripts/vm/run.sh and installed as
 * /bin/readcheck in the guest.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

static void die(const char *what, const char *file)
{
	fprintf(stderr, "readcheck: %s %s: %s\n", what, file, strerror(errno));
	exit(2);
}

static void out(const void *p, size_t n)
{
	const char *c = p;

	while (n) {
		ssize_t w = write(1, c, n);

		if (w <= 0)
			die("write", "stdout");
		c += w;
		n -= w;
	}
}

static size_t pread_all(int fd, char *buf, size_t len, off_t pos, const char *file)
{
	size_t got = 0;

	while (got < len) {
		ssize_t r = pread(fd, buf + got, len - got, pos + got);

		if (r < 0)
			die("pread", file);
		if (r == 0)
			break;
		got += r;
	}
	return got;
}

int main(int argc, char **argv)
{
	static const size_t sizes[] = { 1, 7, 511, 513, 4095, 4097, 65537, 131071, 3 };
	struct stat st;
	const char *mode, *file;
	char *map = NULL, *buf;
	int fd;

	if (argc != 3) {
		fprintf(stderr, "usage: readcheck mmap|odd|cmp FILE\n");
		return 2;
	}
	mode = argv[1];
	file = argv[2];
	fd = open(file, O_RDONLY);
	if (fd < 0 || fstat(fd, &st))
		die("open", file);
	buf = malloc(1 << 20);
	if (!buf)
		die("malloc", file);
	if (st.st_size) {
		map = mmap(NULL, st.st_size, PROT_READ, MAP_SHARED, fd, 0);
		if (map == MAP_FAILED)
			die("mmap", file);
	}
	if (!strcmp(mode, "mmap")) {
		out(map, st.st_size);
	} else if (!strcmp(mode, "odd")) {
		off_t pos = 0;
		unsigned int i = 0;

		while (pos < st.st_size) {
			size_t n = pread_all(fd, buf, sizes[i++ % 9], pos, file);

			if (!n)
				break;
			out(buf, n);
			pos += n;
		}
	} else if (!strcmp(mode, "cmp")) {
		off_t pos = 0;
		unsigned int i = 0, windows = 0;

		/* Windows start at odd offsets and straddle extent and hole edges. */
		while (pos < st.st_size) {
			size_t want = sizes[(i * 5 + 3) % 9], n;

			n = pread_all(fd, buf, want, pos, file);
			if (n != (size_t)(pos + (off_t)want > st.st_size ? st.st_size - pos : (off_t)want)) {
				fprintf(stderr, "readcheck: %s: short read at %lld\n", file, (long long)pos);
				return 1;
			}
			if (memcmp(buf, map + pos, n)) {
				fprintf(stderr, "readcheck: %s: pread and mmap differ at %lld+%zu\n", file,
					(long long)pos, n);
				return 1;
			}
			windows++;
			pos += n + sizes[i++ % 9] * 3;
		}
		printf("%u windows equal\n", windows);
	} else {
		fprintf(stderr, "readcheck: unknown mode %s\n", mode);
		return 2;
	}
	return 0;
}
