"""arch2vec's graph VAE (models/model.py, config 4) and its training step, written in PyTorch for
the benchmark: same layers, quirks (logvar as log-sigma, sigmoid ops, double-normalised KL),
Adam 1e-3, clipping at 5, batch 32, shuffled, over the cells of a JSON Lines space file from
`nasflow nb101 enumerate --format jsonl`. Times one epoch's batch loop; prints JSON.

    python3 bench/pytorch_arch2vec.py SPACE.jsonl [--limit N] [--threads T] [--device cuda]
"""
import argparse
import json
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

ORDER = {'input': 0, 'conv1x1-bn-relu': 1, 'conv3x3-bn-relu': 2, 'maxpool3x3': 3, 'output': 4}


def load(path, limit):
    ops, adj = [], []
    with open(path) as f:
        for i, line in enumerate(f):
            if limit and i >= limit:
                break
            c = json.loads(line)
            n = len(c['ops'])
            a = torch.zeros(7, 7)
            a[:n, :n] = torch.tensor(c['matrix'], dtype=torch.float32)
            o = torch.zeros(7, 5)
            for v, name in enumerate(c['ops']):
                o[v, ORDER[name]] = 1
            adj.append(a)
            ops.append(o)
    return torch.stack(ops), torch.stack(adj)


class MLP(nn.Module):
    def __init__(self, i, h):
        super().__init__()
        self.l1, self.bn, self.l2 = nn.Linear(i, h), nn.BatchNorm1d(h), nn.Linear(h, h)

    def forward(self, x):
        return self.l2(F.relu(self.bn(self.l1(x))))


class VAE(nn.Module):
    def __init__(self, hidden=128, latent=16, layers=4, dropout=0.3):
        super().__init__()
        self.eps = nn.Parameter(torch.zeros(layers))
        self.mlps = nn.ModuleList([MLP(5 if l == 0 else hidden, hidden) for l in range(layers)])
        self.bns = nn.ModuleList([nn.BatchNorm1d(hidden) for _ in range(layers)])
        self.fc1, self.fc2 = nn.Linear(hidden, latent), nn.Linear(hidden, latent)
        self.dec = nn.Linear(latent, 5)
        self.dropout = dropout

    def forward(self, ops, adj):
        a = adj + adj.triu(1).transpose(1, 2)
        x = ops
        b, n = x.shape[:2]
        for l, (mlp, bn) in enumerate(zip(self.mlps, self.bns)):
            agg = (1 + self.eps[l]) * x + torch.bmm(a, x)
            h = mlp(agg.view(b * n, -1))
            x = F.relu(bn(h)).view(b, n, -1)
        mu, logvar = self.fc1(x), self.fc2(x)
        z = mu + torch.randn_like(mu) * torch.exp(logvar) if self.training else mu
        d = F.dropout(z, self.dropout, self.training)
        return torch.sigmoid(self.dec(d)), torch.sigmoid(torch.bmm(d, d.transpose(1, 2))), mu, logvar


def loss_fn(ops_r, adj_r, mu, logvar, ops, adj):
    recon = F.binary_cross_entropy(ops_r, ops) + F.binary_cross_entropy(adj_r.triu(1), adj.triu(1))
    nodes = mu.shape[0] * 7
    kld = -0.5 / nodes * torch.mean(torch.sum(1 + 2 * logvar - mu.pow(2) - logvar.exp().pow(2), 2))
    return recon + kld


def main():
    p = argparse.ArgumentParser()
    p.add_argument('space')
    p.add_argument('--limit', type=int, default=0)
    p.add_argument('--threads', type=int, default=2)
    p.add_argument('--batch', type=int, default=32)
    p.add_argument('--device', default='cpu')
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(1)
    ops, adj = load(args.space, args.limit)
    dev = torch.device(args.device)
    ops, adj = ops.to(dev), adj.to(dev)
    model = VAE().to(dev)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, betas=(0.9, 0.999), eps=1e-8)
    model.train()
    perm = torch.randperm(ops.shape[0], device=dev)
    start = time.perf_counter()
    steps = 0
    for s in range(0, ops.shape[0], args.batch):
        idx = perm[s:s + args.batch]
        if len(idx) < 2:
            continue
        o, a = ops[idx], adj[idx]
        loss = loss_fn(*model(o, a), o, a)
        opt.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 5)
        opt.step()
        steps += 1
    if dev.type == 'cuda':
        torch.cuda.synchronize()
    secs = time.perf_counter() - start
    print(json.dumps({'seconds': secs, 'steps': steps, 'cells': int(ops.shape[0]), 'last_loss': float(loss.detach()),
                      'torch': torch.__version__, 'threads': torch.get_num_threads()}))


if __name__ == '__main__':
    main()
