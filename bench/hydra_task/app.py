"""Hydra's basic launcher running a task comparable to bench/launcher.sh's ezflt jobs: a
small numpy softmax regression (20 -> 3, batch 64) trained for `steps` steps. Each job
appends its own task time to tasks.txt so the launcher's overhead can be separated."""
import time

import hydra
import numpy as np


@hydra.main(version_base=None, config_path="conf", config_name="config")
def main(cfg):
    t0 = time.perf_counter()
    rng = np.random.default_rng(cfg.seed)
    means = rng.normal(size=(3, 20))
    y = rng.integers(0, 3, size=512)
    x = means[y] + rng.normal(size=(512, 20))
    w = np.zeros((20, 3))
    for s in range(cfg.steps):
        i = rng.integers(0, 512, size=64)
        z = x[i] @ w
        p = np.exp(z - z.max(1, keepdims=True))
        p /= p.sum(1, keepdims=True)
        p[np.arange(64), y[i]] -= 1
        w -= 0.1 * x[i].T @ p / 64
    with open(hydra.utils.get_original_cwd() + "/tasks.txt", "a") as f:
        f.write(f"{time.perf_counter() - t0}\n")


if __name__ == "__main__":
    main()
