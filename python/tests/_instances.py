"""Test inputs: class-skewed source x expert counts, as DP+EP serving produces them."""

from __future__ import annotations

import numpy as np


def skewed_counts(layers: int, sources: int, experts: int, seed: int, classes: int = 2,
                  locality: float = 0.85, zipf: float = 1.0) -> np.ndarray:
    """``[layers, sources, experts]`` integer counts (float64). Sources form ``classes``
    contiguous blocks; class c sends ``locality`` of its tokens to the experts ``x`` with
    ``x % classes == c`` (so the contiguous layout mixes them across nodes), Zipf-skewed by a
    random permutation per layer and class."""
    rng = np.random.default_rng(seed)
    out = np.zeros((layers, sources, experts))
    for layer in range(layers):
        for c in range(classes):
            own = np.flatnonzero(np.arange(experts) % classes == c)
            pop = np.full(experts, (1 - locality) / experts)
            ranks = rng.permutation(own.size) + 1
            pop[own] += locality * ranks ** -zipf / (ranks ** -zipf).sum()
            pop /= pop.sum()
            block = range(c * sources // classes, (c + 1) * sources // classes)
            for s in block:
                out[layer, s] = rng.multinomial(int(rng.integers(3000, 5000)), pop)
    return out


def cross_node_even_split(counts: np.ndarray, phy2log: np.ndarray, gpus: int,
                          gpus_per_node: int) -> float:
    """Fraction of tokens that leave their source's node when every expert's tokens are split
    evenly over its replicas (vLLM's routing), source s on GPU s * gpus / sources."""
    layers, sources, experts = counts.shape
    per_gpu = phy2log.shape[1] // gpus
    node_of_slot = np.arange(phy2log.shape[1]) // per_gpu // gpus_per_node
    crossing = 0.0
    for layer in range(layers):
        for s in range(sources):
            node = (s * gpus // sources) // gpus_per_node
            for x in range(experts):
                slots = np.flatnonzero(phy2log[layer] == x)
                away = np.mean(node_of_slot[slots] != node)
                crossing += counts[layer, s, x] * away
    return crossing / counts.sum()
