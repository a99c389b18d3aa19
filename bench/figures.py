#!/usr/bin/env python3
"""Every performance figure the project promises, from one command, in one run.

    bench/figures.py                      # build, generate the captures if absent, measure
    bench/figures.py -r 9 --no-floods     # only the benchmark capture's figures
    bench/figures.py --bin /tmp/old-tlswatch   # measure another build the same way

On the benchmark capture (../shared/bench/gen_bench_pcap.py, 1 GB, seed 1), in
rounds whose order is shuffled each time (see interleave.py): `--threads 1`,
`--threads 2`, `ndpiReader -v 2 -q` (when installed) and `--threads 2 --servers`.
Then, if not `--no-floods`, the SYN flood (gen_syn_flood.py, 1.5M SYNs, default
options) and the QUIC Initial flood (gen_quic_flood.py, 1M Initials, `--memcap
64M`), interleaved with the benchmark capture at default options, and the peak RSS
of each (`/usr/bin/time`, one run). Prints medians (wall and CPU, user + sys), the
ratios the targets are stated in with the quartiles of their round-by-round values
and the ratio of the fastest rounds,
a control (two `--threads 1` runs at once against one alone: what running on both
cores costs work that shares nothing, on this machine at this moment), and the load
average before and after: CPU time counts where the machine is loaded, wall time
does not.

Standard library only (and /usr/bin/time for peak memory).
"""

import argparse
import importlib.util
import os
import shutil
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

spec = importlib.util.spec_from_file_location("interleave", os.path.join(HERE, "interleave.py"))
interleave = importlib.util.module_from_spec(spec)
spec.loader.exec_module(interleave)


def ensure(path, argv):
    if not os.path.exists(path):
        print(f"generating {path} ...", file=sys.stderr)
        subprocess.run(argv, check=True, stdout=subprocess.DEVNULL)


def rounds(cmds, n, warmup=1, seed=1):
    """Each command's wall and CPU times, round by round."""
    import random
    rng = random.Random(seed)
    walls = [[] for _ in cmds]
    cpus = [[] for _ in cmds]
    for r in range(warmup + n):
        order = list(range(len(cmds)))
        rng.shuffle(order)
        for i in order:
            w, c = interleave.run_once(cmds[i])
            if r >= warmup:
                walls[i].append(w)
                cpus[i].append(c)
    return walls, cpus


def ratio(xs, i, j):
    """Median over rounds of command i's time over command j's in the same round."""
    return statistics.median(a / b for a, b in zip(xs[i], xs[j]))


def spread(xs, i, j):
    """The quartiles of those ratios, and the ratio of the two commands' fastest
    rounds (interference from the host only ever adds time, so the minimums are
    each command's least disturbed run), as text."""
    r = [a / b for a, b in zip(xs[i], xs[j])]
    if len(r) < 2:
        return ""
    q1, _, q3 = statistics.quantiles(r, n=4)
    return f" [q1-q3 {q1:.3f}-{q3:.3f}; of the minimums {min(xs[i]) / min(xs[j]):.3f}]"


def together(argv, n):
    """Runs `n` copies of `argv` at once: the wall time, and each copy's CPU time."""
    start = time.perf_counter()
    procs = [subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
             for _ in range(n)]
    cpus = []
    for p in procs:
        _, status, usage = os.wait4(p.pid, 0)
        if os.waitstatus_to_exitcode(status) != 0:
            raise SystemExit(f"failed ({status}): {argv}")
        cpus.append(usage.ru_utime + usage.ru_stime)
    return time.perf_counter() - start, cpus


def control(b, f, n):
    """What two cores give work that shares nothing: two `--threads 1` runs at once
    against one alone, in alternating rounds. Their CPU ratio is the machine's own
    cost of running on both cores (memory bandwidth, caches and host neighbours
    shared); the thread overhead above cannot be lower than it."""
    argv = [b, "-r", f, "--threads", "1", "--ndjson"]
    together(argv, 1)
    alone, pair = [], []
    for _ in range(n):
        alone.append(together(argv, 1))
        pair.append(together(argv, 2))
    cpu = statistics.median(sum(c) / len(c) / a[1][0] for a, (_, c) in zip(alone, pair))
    wall = statistics.median(p[0] / a[0] for a, p in zip(alone, pair))
    print(f"\ncontrol: two --threads 1 runs at once against one alone ({n} rounds):"
          f" CPU per run {cpu:.3f}x, wall {wall:.3f}x"
          f" (1.000 and 1.000: both cores are free; the thread overhead is then all tlswatch's)")


def peak_rss_mib(argv):
    out = subprocess.run(["/usr/bin/time", "-f", "%M"] + argv, stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE, text=True, check=True)
    return int(out.stderr.strip().splitlines()[-1]) / 1024


def load():
    return "%.2f %.2f %.2f" % os.getloadavg()


def verdict(ok):
    return "met" if ok else "NOT met"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-r", "--rounds", type=int, default=7)
    ap.add_argument("--bin", default=os.path.join(ROOT, "target/release/tlswatch"))
    ap.add_argument("--capture", default="/tmp/bench-1G.pcap")
    ap.add_argument("--no-floods", action="store_true")
    a = ap.parse_args()
    if a.bin == os.path.join(ROOT, "target/release/tlswatch"):
        subprocess.run(["cargo", "build", "--release", "--locked"], cwd=ROOT, check=True)
    ensure(a.capture, ["python3", os.path.join(ROOT, "../shared/bench/gen_bench_pcap.py"),
                       "-o", a.capture, "--size", "1G", "--seed", "1"])
    b, f = a.bin, a.capture
    print(f"binary {b}\ncapture {f} ({os.path.getsize(f)} bytes)\nload before: {load()}")
    cmds = [[b, "-r", f, "--threads", "1", "--ndjson"],
            [b, "-r", f, "--threads", "2", "--ndjson"],
            [b, "-r", f, "--threads", "2", "--ndjson", "--servers"]]
    ndpi = shutil.which("ndpiReader")
    if ndpi:
        cmds.append([ndpi, "-i", f, "-v", "2", "-q"])
    walls, cpus = rounds(cmds, a.rounds)
    print(f"\n{a.rounds} rounds, medians (s)        wall    cpu")
    names = ["--threads 1", "--threads 2", "--threads 2 --servers", "ndpiReader -v 2 -q"]
    for i, name in enumerate(names[:len(cmds)]):
        print(f"  {name:<28} {statistics.median(walls[i]):6.3f} {statistics.median(cpus[i]):6.3f}")
    cpu_ratio = ratio(cpus, 1, 0)
    speedup = ratio(walls, 0, 1)
    print(f"\nthread overhead: CPU of 2 threads / 1 thread  {cpu_ratio:.3f}"
          f"  (target <= 1.15: {verdict(cpu_ratio <= 1.15)}){spread(cpus, 1, 0)}")
    print(f"2-thread speedup, wall of 1 / wall of 2      {speedup:.3f}"
          f"  (target >= 1.6: {verdict(speedup >= 1.6)}){spread(walls, 0, 1)}")
    srv_w, srv_c = ratio(walls, 2, 1), ratio(cpus, 2, 1)
    print(f"--servers over --ndjson: wall {srv_w:.3f}, CPU {srv_c:.3f}"
          f"  (target <= 1.05: {verdict(max(srv_w, srv_c) <= 1.05)}){spread(cpus, 2, 1)}")
    if ndpi:
        x = ratio(walls, 3, 0)
        print(f"ndpiReader wall / tlswatch --threads 1 wall   {x:.2f}x"
              f"  (target >= 6: {verdict(x >= 6)}){spread(walls, 3, 0)}")
    control(b, f, max(3, a.rounds // 2))
    if not a.no_floods:
        floods(a, b, f)
    print(f"\nload after: {load()}")


def floods(a, b, f):
    syn = "/tmp/syn-flood-1500000.pcap"
    quic = "/tmp/quic-flood-1000000.pcap"
    ensure(syn, ["python3", os.path.join(HERE, "gen_syn_flood.py"), "-n", "1500000", "-o", syn])
    ensure(quic, ["python3", os.path.join(HERE, "gen_quic_flood.py"), "-n", "1000000", "-o", quic])
    cmds = [[b, "-r", f, "--ndjson"],
            [b, "-r", syn, "--ndjson"],
            [b, "-r", quic, "--ndjson", "--memcap", "64M"]]
    walls, cpus = rounds(cmds, max(3, a.rounds // 2))
    rss = [peak_rss_mib(c) for c in cmds]
    print("\nfloods, medians (s)                wall    cpu   wall/bench  peak RSS")
    names = ["benchmark capture", "1.5M SYNs", "1M QUIC Initials, --memcap 64M"]
    for i, name in enumerate(names):
        print(f"  {name:<32} {statistics.median(walls[i]):6.3f} {statistics.median(cpus[i]):6.3f}"
              f" {ratio(walls, i, 0):8.2f}x  {rss[i]:7.1f} MiB")
    syn_x, quic_x = ratio(walls, 1, 0), ratio(walls, 2, 0)
    print(f"SYN flood: {syn_x:.2f}x the benchmark's wall (target <= 1.5: {verdict(syn_x <= 1.5)}),"
          f" {rss[1]:.0f} MiB (target <= 256: {verdict(rss[1] <= 256)})")
    print(f"QUIC flood: {quic_x:.2f}x (target <= 2: {verdict(quic_x <= 2)}),"
          f" {rss[2]:.0f} MiB (target < 128: {verdict(rss[2] < 128)})")
    quic_floor(2 * statistics.median(walls[0]))


def quic_floor(budget):
    """The least CPU the QUIC flood can take: its Initials' key derivation and
    decryption alone (benches/quic_floor.rs, on a 100,000-Initial flood), against
    the target's budget of wall time on this machine's cores."""
    small = "/tmp/quic-flood-100k.pcap"
    ensure(small, ["python3", os.path.join(HERE, "gen_quic_flood.py"), "-n", "100000", "-o", small])
    out = subprocess.run(["cargo", "bench", "--locked", "--bench", "quic_floor", "--", small, "5"],
                         cwd=ROOT, check=True, capture_output=True, text=True).stdout
    ns = {line.split()[0]: float(line.split()[1]) for line in out.splitlines()
          if line.strip().startswith(("derive", "open", "both", "sha256"))}
    cpu = ns["both"] * 1e6 * 1e-9
    cores = os.cpu_count() or 1
    print(f"QUIC floor: deriving the keys ({ns['derive']:.0f} ns) and opening the packet"
          f" ({ns['open']:.0f} ns) of each Initial, {ns['both']:.0f} ns together:"
          f" {cpu:.2f} s of CPU for 1M Initials, at least {cpu / cores:.2f} s of wall on"
          f" {cores} cores with nothing else done, against a budget of {budget:.2f} s"
          f" (2x the benchmark's wall); the derivation's SHA-256 compressions alone take"
          f" {ns['sha256']:.0f} ns")


if __name__ == "__main__":
    main()
