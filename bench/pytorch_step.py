"""PyTorch 2.9 eager reference for bench/train_step.sh: the same models, shapes and
optimizers as the ezflt runs, timed per training step (median ms), printed as one number."""
import argparse
import statistics
import time

import torch
import torch.nn.functional as F

p = argparse.ArgumentParser()
p.add_argument("--model", choices=["mlp", "cnn"], required=True)
p.add_argument("--optim", choices=["sgd", "adam"], default="sgd")
p.add_argument("--steps", type=int, default=500)
p.add_argument("--warmup", type=int, default=50)
p.add_argument("--batch", type=int, default=64)
p.add_argument("--width", type=int, default=128)
p.add_argument("--threads", type=int, default=1)
p.add_argument("--device", default="cpu")
a = p.parse_args()
torch.set_num_threads(a.threads)
torch.manual_seed(0)
dev = torch.device(a.device)
n = max(6400, 4 * a.batch)

if a.model == "mlp":
    # MLP 784-W-10, cross-entropy (ezflt: data.dim=784 data.classes=10 model.widths=[W]).
    x = torch.randn(n, 784, device=dev)
    y = torch.randint(0, 10, (n,), device=dev)
    model = torch.nn.Sequential(torch.nn.Linear(784, a.width), torch.nn.ReLU(), torch.nn.Linear(a.width, 10)).to(dev)
    def loss_fn(xb, yb):
        return F.cross_entropy(model(xb), yb)
    params = model.parameters()
else:
    # Two-layer patch CNN: P=16 patches of d=64, m=32 filters per class, relu^3, logistic loss.
    P, d, m = 16, 64, 32
    x = torch.randn(n, P * d, device=dev)
    y = (torch.randint(0, 2, (n,), device=dev) * 2 - 1).float()
    w = (0.01 * torch.randn(2, m, d, device=dev)).requires_grad_()
    def loss_fn(xb, yb):
        b = xb.shape[0]
        h = torch.relu(xb.reshape(b * P, d) @ w.reshape(2 * m, d).T) ** 3
        f = h.reshape(b, P, 2, m).sum(dim=(1, 3)) / m
        out = f[:, 1] - f[:, 0]
        return F.softplus(-out * yb).mean()
    params = [w]

opt = torch.optim.SGD(params, lr=0.01) if a.optim == "sgd" else torch.optim.Adam(params, lr=1e-3)
order = torch.randperm(n, device=dev)
times = []
for s in range(a.warmup + a.steps):
    lo = (s * a.batch) % (n - a.batch)
    t0 = time.perf_counter()
    idx = order[lo:lo + a.batch]
    loss = loss_fn(x[idx], y[idx])
    loss_v = loss.item()
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    if dev.type == "cuda":
        torch.cuda.synchronize()
    if s >= a.warmup:
        times.append((time.perf_counter() - t0) * 1e3)
print(f"{statistics.median(times):.4f}")
