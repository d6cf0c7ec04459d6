"""A pure-Python enumeration of the NB101 space, written for the benchmark: the algorithm of
google-research/nasbench's scripts/generate_graphs.py (every full-DAG bitmask with <= 9 edges,
every labelling, deduplicated by graph_util.hash_module) without its optional isomorphism check,
which is what makes Google's script take hours. Prints the count and the seconds taken.

    python3 bench/generate_graphs.py [MAX_VERTICES]
"""
import hashlib
import itertools
import sys
import time


def module_hash(n, edges, labels):
    ins = [[u for (u, v) in edges if v == w] for w in range(n)]
    outs = [[v for (u, v) in edges if u == w] for w in range(n)]
    h = [hashlib.md5(str((len(outs[v]), len(ins[v]), labels[v])).encode()).hexdigest() for v in range(n)]
    for _ in range(n):
        h = [hashlib.md5((''.join(sorted(h[w] for w in ins[v])) + '|' +
                          ''.join(sorted(h[w] for w in outs[v])) + '|' + h[v]).encode()).hexdigest()
             for v in range(n)]
    return hashlib.md5(str(sorted(h)).encode()).hexdigest()


def main():
    max_v = int(sys.argv[1]) if len(sys.argv) > 1 else 7
    t0 = time.time()
    seen = set()
    for n in range(2, max_v + 1):
        pairs = [(x, y) for y in range(n) for x in range(y)]
        for bits in range(2 ** len(pairs)):
            edges = [(x, y) for (x, y) in pairs if bits >> (y * (y - 1) // 2 + x) & 1]
            if len(edges) > 9:
                continue
            srcs = {x for x, _ in edges}
            dsts = {y for _, y in edges}
            if any(v not in srcs for v in range(n - 1)) or any(v not in dsts for v in range(1, n)):
                continue
            for lab in itertools.product(range(3), repeat=n - 2):
                seen.add(module_hash(n, edges, [-1] + list(lab) + [-2]))
    print(f"{len(seen)} unique cells in {time.time() - t0:.1f} s")


if __name__ == '__main__':
    main()
