"""Reads what bench/gpu.sh's runs left and prints one figure line. Used only by bench/gpu.sh.

    gpu_figures.py pretrain PROJECT_DIR NASFLOW IMAGES_PER_EPOCH EPOCHS WALL_SECONDS
        steady-state img/s (the last epoch of each network, summed: they train together), the
        wall figure, and achieved TFLOP/s as 3 x MACs x img/s (the issue's measure) and as
        6 x MACs x img/s (2 FLOPs a multiply-accumulate)
    gpu_figures.py arch2vec OUTPUT_FILE
        bench/pytorch_arch2vec.py's epoch, extrapolated to the whole space
    gpu_figures.py items PROJECT_DIR NASFLOW STAGE
        per-item seconds of an item stage: the mean of the items' own durations
"""
import json
import subprocess
import sys


def nasflow(project, binary, *args):
    out = subprocess.run([binary, *args], cwd=project, capture_output=True, text=True, check=True)
    return out.stdout


def item_dirs(project, binary, stage):
    show = json.loads(nasflow(project, binary, 'show', stage, '--json'))
    return show['out_dir'], show


def timing(project, binary, stage, i):
    text = nasflow(project, binary, 'log', stage, '--item', str(i), '--file', 'timing.json')
    return json.loads(text[text.index('{'):])


def pretrain(project, binary, images, epochs, wall):
    out, show = item_dirs(project, binary, 'pretrain')
    n = len(show['items'])
    steady, macs_rate, devices = 0.0, 0.0, set()
    for i in range(n):
        t = timing(project, binary, 'pretrain', i)
        devices.add(t['device'])
        rate = images / t['epoch_seconds'][-1]
        net = json.load(open(f'{out}/items/{i:05d}/network.json'))
        steady += rate
        macs_rate += net['multiply_accumulates'] * rate
    total = n * images * epochs / wall
    print(f'steady {steady:,.0f} img/s (wall {total:,.0f}), {3 * macs_rate / 1e12:.3g} TFLOP/s as 3xMACs '
          f'({6 * macs_rate / 1e12:.3g} as 6xMACs), {n} network(s) on {",".join(sorted(devices))}')


def items(project, binary, stage):
    _, show = item_dirs(project, binary, stage)
    secs = [json.load(open(f'{project}/cache/items/{stage}/{it["key"]}.json'))['provenance']['duration_s']
            for it in show['items']]
    if not secs:
        print('no item durations found')
        return
    print(f'{sum(secs) / len(secs):.2f} s per item (mean of {len(secs)}, min {min(secs):.2f}, max {max(secs):.2f})')


def arch2vec(path):
    """The line bench/pytorch_arch2vec.py printed last: its epoch, extrapolated to the space."""
    try:
        r = json.loads(open(path).read().strip().splitlines()[-1])
    except (OSError, ValueError, IndexError):
        tail = open(path).read().strip().splitlines()[-1:] if path else []
        print(f'FAILED ({" ".join(tail)})')
        return
    s = r['seconds']
    print(f'{s:.1f} s ({s * 1000 / r["steps"]:.2f} ms a batch, torch {r["torch"]}); '
          f'the whole space: {s * 423624 / r["cells"]:.0f} s extrapolated')


if __name__ == '__main__':
    what = sys.argv[1]
    if what == 'pretrain':
        pretrain(sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]), float(sys.argv[6]))
    elif what == 'arch2vec':
        arch2vec(sys.argv[2])
    elif what == 'items':
        items(sys.argv[2], sys.argv[3], sys.argv[4])
