"""A pool of trained PyTorch models on fixed inputs: the model side of the transfer attack and the ensemble accuracy.

:class:`TorchModelPool` holds one :class:`~sawdist.extraction.train.ModelStack` per (family, capacity), trains them
(``sawdist run``), saves and loads them (``models/<family>-k<capacity>.pt``, ``inputs.pt`` and ``pool.json``; written by
``sawdist run`` and ``sawdist extract --save-models``). It provides the methods of
:class:`sawdist.analyses.models.ModelPool`, the interface the analyses read.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from sawdist.io import temporary_path

from .parts import write_atomic

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence
    from typing import Protocol

    import torch
    from numpy.typing import ArrayLike

    from .data import Dataset
    from .recipe import Recipe
    from .train import ModelStack

    class _Progress(Protocol):
        """What :meth:`TorchModelPool.train` reports to (``sawdist run``'s progress messages)."""

        def say(self, message: str) -> None: ...

__all__ = ["TorchModelPool"]


class TorchModelPool:
    """Models from :func:`sawdist.extraction.train.train_models`, evaluated on the first ``n_inputs`` test inputs."""

    def __init__(self, stacks: dict[tuple[str, int], ModelStack], x: torch.Tensor, labels: torch.Tensor, *,
                 meta: dict | None = None) -> None:
        self.stacks = stacks  # (family, capacity) -> ModelStack
        self.families = list(dict.fromkeys(f for f, _ in stacks))
        self._x = x  # torch tensor on the models' device
        self.x = x.detach().cpu().numpy()
        self.labels = labels.detach().cpu().numpy()
        self._y = labels
        self.meta = dict(meta or {})
        self._directions = {}

    @classmethod
    def train(cls, data: Dataset, families: Iterable[str], capacities: Sequence[int], seeds: Sequence[int],
              recipe: Recipe | None = None, *, n_inputs: int = 200, device: str | torch.device | None = None,
              progress: _Progress | None = None) -> TorchModelPool:
        """Train ``seeds`` models of every (family, capacity) on ``data`` (an
        :class:`sawdist.extraction.data.Dataset`)."""
        from .train import train_models

        stacks = {}
        for fam in families:
            for k in capacities:
                if progress is not None:
                    progress.say(f"  training {len(seeds)} {fam} models of capacity {k}")
                stacks[(fam, int(k))] = train_models(fam, int(k), list(seeds), data, recipe, mode="batched",
                                                     device=device)
        n = min(int(n_inputs), data.x_test.shape[0])
        meta = {"dataset": data.name, "options": data.options, "input_shape": list(data.input_shape),
                "n_classes": data.n_classes, "n_inputs": n, "recipe": recipe.to_dict() if recipe else None}
        return cls(stacks, data.x_test[:n], data.y_test[:n], meta=meta)

    def save(self, folder: str | os.PathLike[str]) -> Path:
        """Write every stack's weights to ``folder`` (created) and ``pool.json``; return the folder. Each file is
        written to a temporary name and renamed into place, ``pool.json`` last: a pool is complete once it has one."""
        import torch

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)

        def save(blob, name: str) -> None:
            tmp = temporary_path(folder / name)
            try:
                torch.save(blob, tmp)
                os.replace(tmp, folder / name)
            finally:
                tmp.unlink(missing_ok=True)

        index = []
        for (fam, k), st in self.stacks.items():
            name = f"{fam}-k{k}.pt"
            save({"params": {n: v.cpu() for n, v in st.params.items()},
                  "buffers": {n: v.cpu() for n, v in st.buffers.items()}, "seeds": list(st.seeds),
                  "test_accuracy": np.asarray(st.test_accuracy).tolist()}, name)
            index.append({"family": fam, "capacity": k, "file": name})
        save({"x": self._x.cpu(), "labels": self._y.cpu()}, "inputs.pt")
        write_atomic(folder / "pool.json", json.dumps({"meta": self.meta, "stacks": index}, indent=1).encode())
        return folder

    @classmethod
    def load(cls, folder: str | os.PathLike[str], device: str | torch.device = "cpu") -> TorchModelPool:
        """Read a pool written by :meth:`save`. Every file it reads (the ``file`` of each stack in ``pool.json``,
        ``inputs.pt``) must resolve inside `folder`, links followed: a ``pool.json`` that names a path elsewhere (an
        absolute one, one with ``..``) is refused."""
        import torch

        from .models import build_model
        from .train import ModelStack

        folder = Path(folder)
        if not (folder / "pool.json").is_file():
            raise FileNotFoundError(f"'models' folder {str(folder)!r} has no pool.json (write it with sawdist run).")
        spec = json.loads((folder / "pool.json").read_text())
        meta = spec["meta"]
        root = folder.resolve()

        def inside(name) -> Path:
            path = (root / name).resolve() if isinstance(name, str) and name else None
            if path is None or root not in path.parents:
                raise ValueError(f"'{folder / 'pool.json'}' must name files inside the 'models' folder "
                                 f"{str(folder)!r}, got {name!r}; refused.")
            return path

        stacks = {}
        for item in spec["stacks"]:
            blob = torch.load(inside(item["file"]), map_location=device, weights_only=True)
            base = build_model(item["family"], int(item["capacity"]), tuple(meta["input_shape"]),
                               int(meta["n_classes"])).to("meta").eval()
            st = ModelStack(item["family"], int(item["capacity"]), blob["seeds"], base, blob["params"],
                            blob["buffers"], test_accuracy=np.asarray(blob["test_accuracy"]))
            stacks[(item["family"], int(item["capacity"]))] = st
        inputs = torch.load(inside("inputs.pt"), map_location=device, weights_only=True)
        return cls(stacks, inputs["x"], inputs["labels"], meta=meta)

    def capacities(self, family: str) -> list:
        return sorted(k for f, k in self.stacks if f == family)

    def n_models(self, family: str, capacity: int) -> int:
        return len(self.stacks[(family, int(capacity))])

    def directions(self, family: str, capacity: int) -> np.ndarray:
        key = (family, int(capacity))
        if key not in self._directions:
            from .saliency import input_gradients, normalize

            grad, _ = input_gradients(self.stacks[key], self._x, self._y, "label_logit")
            direction, _, _ = normalize(grad)
            self._directions[key] = direction.detach().cpu().numpy().astype(np.float64)
        return self._directions[key]

    def predict(self, family: str, capacity: int, model: int, x: ArrayLike) -> np.ndarray:
        import torch
        from torch.func import functional_call

        st = self.stacks[(family, int(capacity))]
        params = {k: v[model] for k, v in st.params.items()}
        buffers = {k: v[model] for k, v in st.buffers.items()}
        xt = torch.as_tensor(np.asarray(x, dtype=np.float32), device=self._x.device)
        with torch.no_grad():
            out = [functional_call(st.base, (params, buffers), (xt[i: i + 4096],)) for i in range(0, len(xt), 4096)]
        return torch.cat(out).argmax(-1).cpu().numpy()

    def probabilities_of(self, family: str, capacity: int) -> np.ndarray:
        import torch

        st = self.stacks[(family, int(capacity))]
        return torch.softmax(st.logits(self._x), dim=-1).cpu().numpy()
