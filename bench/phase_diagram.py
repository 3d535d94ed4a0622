"""PyTorch 2.9 reference for bench/phase_diagram.sh: the benign-overfitting runs of
experiments/benign_overfitting.yaml (signal-noise patches, two-layer CNN with relu^3 filters
and a fixed second layer, full-batch gradient descent on the logistic loss, 400 steps,
evaluation on 2,000 test samples every 20 steps), written as a researcher would in plain
PyTorch. Runs the jobs with index % procs == rank, one thread, and prints the seconds taken.
"""
import argparse
import itertools
import time

import torch


def data(n, dim, snr, sigma_p, g):
    y = torch.randint(0, 2, (n,), generator=g).float() * 2 - 1
    signal = torch.zeros(n, dim)
    signal[:, 0] = y * snr * sigma_p * dim**0.5
    noise = torch.randn(n, dim, generator=g) * sigma_p
    noise[:, 0] = 0.0
    return torch.stack([signal, noise], 1), y


def run(n, snr, seed, dim=400, m=10, steps=400, lr=0.5):
    g = torch.Generator().manual_seed(seed)
    x, y = data(n, dim, snr, 1.0, g)
    xt, yt = data(2000, dim, snr, 1.0, g)
    w = (torch.randn(2, m, dim, generator=g) * 0.01).requires_grad_()

    def f(x):
        h = torch.relu(torch.einsum("bpd,jmd->bjmp", x, w)) ** 3
        F = h.sum((2, 3)) / m
        return F[:, 1] - F[:, 0]

    for t in range(1, steps + 1):
        loss = torch.nn.functional.softplus(-y * f(x)).mean()
        w.grad = None
        loss.backward()
        with torch.no_grad():
            w -= lr * w.grad
        if t % 10 == 0:
            loss.item()
        if t % 20 == 0:
            with torch.no_grad():
                (torch.sign(f(xt)) == yt).float().mean().item()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--rank", type=int, default=0)
    p.add_argument("--procs", type=int, default=1)
    a = p.parse_args()
    torch.set_num_threads(1)
    jobs = list(itertools.product([10, 20, 40, 80, 160], [0.1, 0.2, 0.3, 0.5, 0.8], [0, 1, 2]))
    start = time.perf_counter()
    for i, (n, snr, seed) in enumerate(jobs):
        if i % a.procs == a.rank:
            run(n, snr, seed)
    print(f"{time.perf_counter() - start:.2f}")


if __name__ == "__main__":
    main()
