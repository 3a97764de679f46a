// SPDX-License-Identifier: GPL-2.0
/*
 * The gc thread and its sysfs files: one kthread per mounted filesystem, named
 * after it, freezable, running a pass (Rust: bch_rs_gc_pass) at start when the
 * mount says -o fsck (or gc_at_mount is set), whenever
 * kicked through /sys/fs/<fs_name>/<uuid>/internal/trigger_gc, and every
 * gc_period_secs seconds when that is not 0. internal/gc_status shows the last
 * pass (Rust: bch_rs_gc_status); <uuid>/btree_write_stats the node writes
 * (Rust: bch_rs_write_stats).
 */

#include <linux/module.h>
#include <linux/fs.h>
#include <linux/sched/task.h>
#include <linux/kobject.h>
#include <linux/sysfs.h>
#include <linux/kthread.h>
#include <linux/freezer.h>
#include <linux/wait.h>
#include <linux/slab.h>
#include <linux/timekeeping.h>

#include "shim.h"

static unsigned int gc_period_secs;
module_param(gc_period_secs, uint, 0644);
MODULE_PARM_DESC(gc_period_secs,
		 "Seconds between periodic gc passes of each mounted filesystem (0, the default: only at mount and when triggered)");

/* Off: a plain mount does no work it was not asked for, as upstream's full gc
 * runs only under fsck. */
static bool gc_at_mount;
module_param(gc_at_mount, bool, 0644);
MODULE_PARM_DESC(gc_at_mount,
		 "Run a gc pass whenever a filesystem is mounted, as -o fsck does for one mount (default 0: a plain mount runs none)");

/* /sys/fs/<fs_name>: the module's kset, one kobject per mounted filesystem. */
static struct kset *bch_rs_kset;

/* <uuid>/: its attributes reach the filesystem through fs. */
struct bch_rs_fsdir {
	struct kobject kobj;
	void *fs;
};

struct bch_rs_gc {
	/* internal/: its attributes reach the filesystem through fs. */
	struct kobject internal;
	struct bch_rs_fsdir *dir;
	struct task_struct *task;
	wait_queue_head_t wait;
	atomic_t kicks;
	/* A pass runs as soon as the thread starts. */
	bool first;
	void *fs;
};

static void bch_rs_gc_release(struct kobject *k)
{
	kfree(container_of(k, struct bch_rs_gc, internal));
}

static ssize_t trigger_gc_store(struct kobject *k, struct kobj_attribute *a,
				const char *buf, size_t len)
{
	struct bch_rs_gc *g = container_of(k, struct bch_rs_gc, internal);
	bool v;
	int ret = kstrtobool(buf, &v);

	if (ret)
		return ret;
	if (v) {
		atomic_inc(&g->kicks);
		wake_up(&g->wait);
	}
	return len;
}

static ssize_t gc_status_show(struct kobject *k, struct kobj_attribute *a, char *buf)
{
	struct bch_rs_gc *g = container_of(k, struct bch_rs_gc, internal);

	return bch_rs_gc_status(g->fs, buf, PAGE_SIZE);
}

static struct kobj_attribute trigger_gc_attr = __ATTR_WO(trigger_gc);
static struct kobj_attribute gc_status_attr = __ATTR_RO(gc_status);

static struct attribute *bch_rs_gc_attrs[] = {
	&trigger_gc_attr.attr,
	&gc_status_attr.attr,
	NULL,
};
ATTRIBUTE_GROUPS(bch_rs_gc);

static const struct kobj_type bch_rs_gc_ktype = {
	.release	= bch_rs_gc_release,
	.sysfs_ops	= &kobj_sysfs_ops,
	.default_groups	= bch_rs_gc_groups,
};

static void bch_rs_fsdir_release(struct kobject *k)
{
	kfree(container_of(k, struct bch_rs_fsdir, kobj));
}

static ssize_t btree_write_stats_show(struct kobject *k, struct kobj_attribute *a, char *buf)
{
	struct bch_rs_fsdir *d = container_of(k, struct bch_rs_fsdir, kobj);

	return bch_rs_write_stats(d->fs, buf, PAGE_SIZE);
}

static struct kobj_attribute btree_write_stats_attr = __ATTR_RO(btree_write_stats);

static struct attribute *bch_rs_fsdir_attrs[] = {
	&btree_write_stats_attr.attr,
	NULL,
};
ATTRIBUTE_GROUPS(bch_rs_fsdir);

static const struct kobj_type bch_rs_fsdir_ktype = {
	.release	= bch_rs_fsdir_release,
	.sysfs_ops	= &kobj_sysfs_ops,
	.default_groups	= bch_rs_fsdir_groups,
};

static int bch_rs_gc_thread(void *arg)
{
	struct bch_rs_gc *g = arg;
	/* A first pass at start, when asked for (-o fsck, or gc_at_mount). */
	int seen = atomic_read(&g->kicks) - (g->first ? 1 : 0);

	set_freezable();
	while (!kthread_should_stop()) {
		unsigned int secs = READ_ONCE(gc_period_secs);
		long timeout = secs ? (long)secs * HZ : MAX_SCHEDULE_TIMEOUT;

		wait_event_freezable_timeout(g->wait,
					     kthread_should_stop() ||
					     atomic_read(&g->kicks) != seen,
					     timeout);
		if (kthread_should_stop())
			break;
		seen = atomic_read(&g->kicks);
		bch_rs_gc_pass(g->fs);
	}
	return 0;
}

int bch_rs_sysfs_init(void)
{
	bch_rs_kset = kset_create_and_add(bch_rs_fs_name(), NULL, fs_kobj);
	return bch_rs_kset ? 0 : -ENOMEM;
}

void bch_rs_sysfs_exit(void)
{
	kset_unregister(bch_rs_kset);
}

struct bch_rs_gc *bch_rs_gc_start(void *fs, const char *uuid, const char *name,
				  int pass_at_start, int *err)
{
	struct bch_rs_gc *g = kzalloc(sizeof(*g), GFP_KERNEL);
	int ret;

	*err = -ENOMEM;
	if (!g)
		return NULL;
	init_waitqueue_head(&g->wait);
	atomic_set(&g->kicks, 0);
	g->first = pass_at_start || READ_ONCE(gc_at_mount);
	g->fs = fs;
	g->dir = kzalloc(sizeof(*g->dir), GFP_KERNEL);
	if (!g->dir) {
		kfree(g);
		return NULL;
	}
	g->dir->fs = fs;
	ret = kobject_init_and_add(&g->dir->kobj, &bch_rs_fsdir_ktype, &bch_rs_kset->kobj,
				   "%s", uuid);
	if (ret) {
		*err = ret;
		kobject_put(&g->dir->kobj);	/* frees dir */
		kfree(g);
		return NULL;
	}
	ret = kobject_init_and_add(&g->internal, &bch_rs_gc_ktype, &g->dir->kobj, "internal");
	if (ret) {
		struct bch_rs_fsdir *dir = g->dir;

		*err = ret;
		kobject_put(&g->internal);	/* frees g */
		kobject_del(&dir->kobj);
		kobject_put(&dir->kobj);
		return NULL;
	}
	g->task = kthread_create(bch_rs_gc_thread, g, "bch-gc/%s", name);
	if (IS_ERR(g->task)) {
		*err = PTR_ERR(g->task);
		pr_err("%s: error creating gc thread: %d\n", uuid, *err);
		kobject_del(&g->internal);
		kobject_del(&g->dir->kobj);
		kobject_put(&g->dir->kobj);
		kobject_put(&g->internal);
		return NULL;
	}
	get_task_struct(g->task);
	wake_up_process(g->task);
	*err = 0;
	return g;
}

void bch_rs_gc_stop(struct bch_rs_gc *g)
{
	struct bch_rs_fsdir *dir = g->dir;

	/* No new kicks or status reads once the files are gone (removal waits for them). */
	kobject_del(&g->internal);
	kobject_del(&dir->kobj);
	kthread_stop(g->task);
	put_task_struct(g->task);
	kobject_put(&g->internal);
	kobject_put(&dir->kobj);
}

int bch_rs_gc_should_stop(void)
{
	/* A pass run at mount (fix_errors) is on the mounting task: never stopped. */
	return (current->flags & PF_KTHREAD) && kthread_should_stop();
}

u64 bch_rs_ktime_ns(void)
{
	return ktime_get_ns();
}
