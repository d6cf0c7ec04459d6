"""NASBench-PyTorch's network and trainer, written for the benchmark in plain PyTorch: the same
construction, initialisation and training step as nasflow's `pretrain` (SGD 0.025, momentum 0.9,
weight decay 1e-4, cosine per epoch, clipping at 5, cross-entropy, random crop with 4-pixel
padding and horizontal flip), on random pictures of the same shape. Prints JSON with images/s.

    python3 bench/pytorch_pretrain.py --matrix BITS --ops OPS --channels 32 --stacks 3 \
        --cells 1 --batch 128 --images 2048 --held-out 256 --epochs 2 --threads 2 \
        [--device cuda] [--bf16] [--channels-last] [--tf32]

On CUDA, --bf16 is torch.autocast(dtype=torch.bfloat16) around the forward pass and the loss, as
nasflow's `precision = "bf16"`; --channels-last puts the network and each batch in channels-last
format; without --tf32, TF32 is off for cuBLAS and cuDNN (nasflow's default `tf32 = false`).
"""
import argparse
import json
import math
import time

import random
import torch
import torch.nn as nn
import torch.nn.functional as F


class ConvBnRelu(nn.Module):
    def __init__(self, cin, cout, k):
        super().__init__()
        self.conv_bn_relu = nn.Sequential(nn.Conv2d(cin, cout, k, 1, k // 2, bias=False), nn.BatchNorm2d(cout), nn.ReLU())

    def forward(self, x):
        return self.conv_bn_relu(x)


def vertex_channels(cin, cout, m):
    n = len(m)
    ch = [0] * n
    ch[0], ch[-1] = cin, cout
    if n == 2:
        return ch
    deg = sum(m[v][n - 1] for v in range(1, n))
    interior, corr = cout // deg, cout % deg
    for v in range(1, n - 1):
        if m[v][n - 1]:
            ch[v] = interior + (1 if corr > 0 else 0)
            corr -= 1 if corr > 0 else 0
    for v in range(n - 3, 0, -1):
        if not m[v][n - 1]:
            for d in range(v + 1, n - 1):
                if m[v][d]:
                    ch[v] = max(ch[v], ch[d])
    return ch


class Cell(nn.Module):
    def __init__(self, m, ops, cin, cout):
        super().__init__()
        self.m, self.n = m, len(m)
        self.ch = vertex_channels(cin, cout, m)
        self.vertex_op = nn.ModuleList([nn.Identity()])
        for t in range(1, self.n - 1):
            op = ops[t]
            self.vertex_op.append(ConvBnRelu(self.ch[t], self.ch[t], 3) if op == 'conv3x3-bn-relu' else
                                  ConvBnRelu(self.ch[t], self.ch[t], 1) if op == 'conv1x1-bn-relu' else
                                  nn.MaxPool2d(3, 1, 1))
        self.input_op = nn.ModuleList([nn.Identity()] + [ConvBnRelu(cin, self.ch[t], 1) if m[0][t] else nn.Identity()
                                                         for t in range(1, self.n)])

    def forward(self, x):
        n, m = self.n, self.m
        tensors, concat = [x], []
        for t in range(1, n - 1):
            fan = [tensors[s][:, :self.ch[t]] for s in range(1, t) if m[s][t]]
            if m[0][t]:
                fan.append(self.input_op[t](x))
            out = self.vertex_op[t](sum(fan))
            tensors.append(out)
            if m[t][n - 1]:
                concat.append(out)
        if not concat:
            return self.input_op[n - 1](x)
        out = concat[0] if len(concat) == 1 else torch.cat(concat, 1)
        if m[0][n - 1]:
            out = out + self.input_op[n - 1](x)
        return out


class Network(nn.Module):
    def __init__(self, m, ops, channels, stacks, cells, classes=10):
        super().__init__()
        layers = [ConvBnRelu(3, channels, 3)]
        cin = cout = channels
        for s in range(stacks):
            if s > 0:
                layers.append(nn.MaxPool2d(2, 2))
                cout *= 2
            for _ in range(cells):
                layers.append(Cell(m, ops, cin, cout))
                cin = cout
        self.layers = nn.ModuleList(layers)
        self.classifier = nn.Linear(cout, classes)
        for mod in self.modules():
            if isinstance(mod, nn.Conv2d):
                k = mod.kernel_size[0] * mod.kernel_size[1] * mod.out_channels
                mod.weight.data.normal_(0, math.sqrt(2.0 / k))
            elif isinstance(mod, nn.BatchNorm2d):
                mod.weight.data.fill_(1)
                mod.bias.data.zero_()
            elif isinstance(mod, nn.Linear):
                mod.weight.data.normal_(0, 0.01)
                mod.bias.data.zero_()

    def forward(self, x):
        for l in self.layers:
            x = l(x)
        return self.classifier(x.mean((2, 3)))


MEAN = torch.tensor([0.4914, 0.4822, 0.4465]).view(1, 3, 1, 1)
STD = torch.tensor([0.2023, 0.1994, 0.2010]).view(1, 3, 1, 1)


def augment(xb, rng):
    """Random crop (4-pixel zero padding) and horizontal flip of normalised uint8 pictures."""
    padded = (F.pad(xb.float() / 255, (4, 4, 4, 4), value=0.0) - MEAN) / STD
    out = torch.empty(xb.shape, dtype=torch.float32)
    for i in range(xb.shape[0]):
        dy, dx = rng.randrange(9), rng.randrange(9)
        img = padded[i, :, dy:dy + 32, dx:dx + 32]
        out[i] = img.flip(-1) if rng.random() < 0.5 else img
    return out


def main():
    a = argparse.ArgumentParser()
    a.add_argument('--matrix'); a.add_argument('--ops')
    for k, v in [('channels', 32), ('stacks', 3), ('cells', 1), ('batch', 128), ('images', 2048),
                 ('held-out', 256), ('epochs', 2), ('threads', 2)]:
        a.add_argument('--' + k, type=int, default=v)
    a.add_argument('--device', default='cpu')
    a.add_argument('--bf16', action='store_true')
    a.add_argument('--channels-last', action='store_true')
    a.add_argument('--tf32', action='store_true')
    args = a.parse_args()
    dev = torch.device(args.device)
    torch.backends.cuda.matmul.allow_tf32 = args.tf32
    torch.backends.cudnn.allow_tf32 = args.tf32
    fmt = torch.channels_last if args.channels_last else torch.contiguous_format
    torch.set_num_threads(args.threads)
    torch.manual_seed(1)
    n = int(len(args.matrix) ** 0.5)
    m = [[int(args.matrix[i * n + j]) for j in range(n)] for i in range(n)]
    net = Network(m, args.ops.split(','), args.channels, args.stacks, args.cells).to(dev, memory_format=fmt)
    g = torch.Generator().manual_seed(0)
    train_x = torch.randint(0, 256, (args.images, 3, 32, 32), dtype=torch.uint8, generator=g)
    train_y = torch.randint(0, 10, (args.images,), generator=g)
    held_x = ((torch.randint(0, 256, (args.held_out, 3, 32, 32), dtype=torch.uint8, generator=g).float() / 255 - MEAN) / STD).to(dev)
    held_y = torch.randint(0, 10, (args.held_out,), generator=g).to(dev)
    opt = torch.optim.SGD(net.parameters(), lr=0.025, momentum=0.9, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=args.epochs)
    rng = random.Random(1)
    start = time.perf_counter()
    seen = 0
    for epoch in range(args.epochs):
        net.train()
        perm = torch.tensor(rng.sample(range(args.images), args.images))
        for s in range(0, args.images, args.batch):
            idx = perm[s:s + args.batch]
            x = augment(train_x[idx], rng).to(dev).contiguous(memory_format=fmt)
            y = train_y[idx].to(dev)
            with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=args.bf16):
                loss = F.cross_entropy(net(x), y)
            opt.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(net.parameters(), 5)
            opt.step()
            seen += len(idx)
        sched.step()
        net.eval()
        with torch.no_grad():
            for s in range(0, args.held_out, 250):
                with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=args.bf16):
                    F.cross_entropy(net(held_x[s:s + 250].contiguous(memory_format=fmt)), held_y[s:s + 250])
    if dev.type == 'cuda':
        torch.cuda.synchronize()
    secs = time.perf_counter() - start
    print(json.dumps({'images_per_second': seen / secs, 'seconds': secs, 'images': seen,
                      'torch': torch.__version__, 'threads': torch.get_num_threads(),
                      'device': str(dev), 'bf16': args.bf16, 'channels_last': args.channels_last,
                      'parameters': sum(p.numel() for p in net.parameters())}))


if __name__ == '__main__':
    main()
