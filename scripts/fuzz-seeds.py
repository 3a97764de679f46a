#!/usr/bin/env python3
# Seed corpora for the fuzz targets from real images: btree nodes found through the
# fixtures' nodes/*.txt (pointer and sectors written), each fixture's superblock, and
# its first journal bucket.  scripts/fuzz-seeds.py FIXTURES IMAGE_CACHE OUTDIR
import os, re, sys

fixtures, cache, out = sys.argv[1:4]
for t in ("node", "sb", "jset"):
    os.makedirs(os.path.join(out, t), exist_ok=True)

def human(s):
    m = re.match(r"([0-9.]+)([kMG]?)", s)
    return int(float(m.group(1)) * {"": 1, "k": 1024, "M": 1 << 20, "G": 1 << 30}[m.group(2)])

n = 0
for fx in sorted(os.listdir(fixtures)):
    d = os.path.join(fixtures, fx)
    img = os.path.join(cache, fx, "img")
    if not os.path.exists(img):
        img = os.path.join(cache, fx, "dev0")
    if not os.path.exists(img) or not os.path.isdir(os.path.join(d, "nodes")):
        continue
    sup = open(os.path.join(d, "super.txt")).read()
    bucket = human(re.search(r"Bucket size:\s+(\S+)", sup).group(1))
    with open(img, "rb") as f:
        f.seek(4096)
        open(os.path.join(out, "sb", fx), "wb").write(f.read(16384))
        for nf in sorted(os.listdir(os.path.join(d, "nodes")))[:6]:
            txt = open(os.path.join(d, "nodes", nf)).read()
            for w, dev, b, o in re.findall(r"written (\d+) .*\n\s+ptr:\s+\S+ (\d+):(\d+):(\d+)", txt)[:4]:
                if dev != "0":
                    continue
                f.seek((int(b) * bucket) + int(o) * 512)
                open(os.path.join(out, "node", "%s-%s-%s" % (fx, nf, n)), "wb").write(f.read(int(w) * 512))
                n += 1
print("fuzz seeds: %d nodes" % n)
