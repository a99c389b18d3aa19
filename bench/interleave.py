#!/usr/bin/env python3
"""Times commands round-robin on a noisy machine.

hyperfine runs all of one command's runs, then all of the next: when the
machine's speed drifts (a shared host, a neighbour's cache), the drift lands on
one command and reads as a difference between them. This runs every command
once per round, in a fresh random order each round, and prints per command the
median and quartiles of wall time and of CPU time (user + sys), and each
command's median ratio to the first command's within the same round.

    bench/interleave.py -r 15 'tlswatch -r F --threads 1 --ndjson' \
        'tlswatch -r F --threads 2 --ndjson' 'ndpiReader -i F -v 2 -q'

Output of each command goes to /dev/null. Peak memory is not measured here
(a forked child's maximum RSS starts at its parent's): use /usr/bin/time.
Standard library only.
"""

import argparse
import os
import random
import shlex
import statistics
import subprocess
import time


def run_once(argv):
    start = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"failed ({status}): {shlex.join(argv)}")
    return wall, usage.ru_utime + usage.ru_stime


def quartiles(xs):
    q = statistics.quantiles(xs, n=4) if len(xs) > 1 else [xs[0]] * 3
    return q[0], statistics.median(xs), q[2]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-r", "--rounds", type=int, default=10)
    ap.add_argument("-w", "--warmup", type=int, default=1, help="untimed rounds first")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("commands", nargs="+")
    a = ap.parse_args()
    cmds = [shlex.split(c) for c in a.commands]
    rng = random.Random(a.seed)
    walls = [[] for _ in cmds]
    cpus = [[] for _ in cmds]
    ratios = [[] for _ in cmds]
    for rnd in range(a.warmup + a.rounds):
        order = list(range(len(cmds)))
        rng.shuffle(order)
        this = {}
        for i in order:
            wall, cpu = run_once(cmds[i])
            this[i] = wall
            if rnd >= a.warmup:
                walls[i].append(wall)
                cpus[i].append(cpu)
        if rnd >= a.warmup:
            for i in range(len(cmds)):
                ratios[i].append(this[i] / this[0])
    print(f"{a.rounds} rounds, order shuffled each round; wall and CPU in seconds: q1 median q3")
    for i, c in enumerate(a.commands):
        w1, wm, w3 = quartiles(walls[i])
        c1, cm, c3 = quartiles(cpus[i])
        print(f"{c}\n  wall {w1:.3f} {wm:.3f} {w3:.3f}   cpu {c1:.3f} {cm:.3f} {c3:.3f}"
              f"   wall/first {statistics.median(ratios[i]):.3f}")


if __name__ == "__main__":
    main()
