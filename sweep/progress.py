"""The run's progress bar: weighted by each chunk's cost (sweep.cost), not by configs, so
wide or deep configs move it as much as they take; a compiling stage shows as such."""

from __future__ import annotations

import numpy as np

from . import cost, plan


class Progress:
    """tqdm over the cost of a run: total, the weight of the chunks left to compute (a
    fraction `left` of the sweep's, estimated from the spec and the planner's
    units_per_chunk); each chunk advances it by its weight: its valid units' work, its
    scan steps, and training. Shows configs written beside the percentage."""

    def __init__(self, sweep, left: float, enabled: bool, units_per_chunk):
        from tqdm import tqdm

        self.total = max(cost.grid_work(sweep, units_per_chunk) * left, 1.0)
        self.bar = tqdm(
            total=self.total,
            disable=not enabled,
            smoothing=0.1,
            dynamic_ncols=True,
            bar_format="{desc} {percentage:3.0f}%|{bar}| [{elapsed}<{remaining}]{postfix}",
        )
        self.train = sweep.train
        self.seen: set = set()
        self.configs = 0
        self.bar.set_description_str("sweep")

    def announce(self, chunks):
        """The chunks, saying "compiling" before one whose program shape is new."""
        for chunk in chunks:
            shape = cost.chunk_shape(chunk)
            if shape not in self.seen:
                self.seen.add(shape)
                self.bar.set_description_str(f"compiling width {chunk.program.width}")
            yield chunk

    def done(self, chunk: plan.Chunk, rows: int) -> None:
        """A chunk finished and `rows` of its rows were written."""
        self.configs += rows
        depths = chunk.depths if np.ndim(chunk.depths) == 1 else chunk.depths[0]
        work = cost.chunk_weight(chunk)
        work += chunk.n_valid * cost.train_work(self.train, chunk.program.width, depths)
        self.bar.update(min(work, self.total - self.bar.n))
        self.bar.set_description_str("running")
        self.bar.set_postfix_str(f"{self.configs:,} configs", refresh=False)

    def close(self) -> None:
        self.bar.update(self.total - self.bar.n)  # the estimate's rounding
        self.bar.close()
