# SPDX-License-Identifier: GPL-2.0
"""One benchmark run of a command: its wall time and peak RSS, from GNU time (a
child forked from python would start from python's own RSS, which ru_maxrss keeps
across exec), and on request a sha256 of what it printed (read, not stored).
Imported by scripts/bench.sh's python snippets (PYTHONPATH=scripts)."""
import hashlib
import subprocess
import tempfile


def timed(cmd, digest=False):
    """(wall seconds, peak MiB, sha256 hex of stdout or None) of one run of cmd."""
    with tempfile.NamedTemporaryFile("r") as f:
        p = subprocess.Popen(["/usr/bin/time", "-f", "%e %M", "-o", f.name] + cmd,
                             stdout=subprocess.PIPE if digest else subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
        h = hashlib.sha256() if digest else None
        while h is not None:
            b = p.stdout.read(1 << 20)
            if not b:
                break
            h.update(b)
        p.wait()
        wall, kb = f.read().split()[-2:]
    return float(wall), int(kb) / 1024, h.hexdigest() if h else None
