"""How one model is spread over the processes of a ``torchrun`` launch: DDP or FSDP2.

``ddp`` (the default) gives every process the whole model and its whole AdamW state, and
averages the gradients after each backward (``DistributedDataParallel``). ``fsdp`` gives each
of the W processes 1/W of every parameter, gradient and AdamW moment (FSDP2's
``torch.distributed.fsdp.fully_shard``, each tensor cut along its first dimension); a layer's
full weights are gathered just before its forward and its backward and freed right after, and
gradients are reduce-scattered so each process keeps only its shard. Every element of the
model's ``nn.ModuleList`` s (a transformer's blocks) is sharded as its own unit, so only one
block is whole at a time; the rest (embeddings, output layer, the whole of a recurrent cell)
forms the root unit. A model built on the CPU only reaches the GPU unit by unit, already cut.

Both strategies see the same batches and compute the same mean gradient, so a run's losses do
not depend on the strategy or on the number of processes (up to float rounding). Checkpoints
are the same files too: the full weights and optimizer state are gathered to rank 0 and written
as safetensors + JSON (:mod:`chainrule.training.checkpoint`), so ``load_model`` reads an FSDP
run, and a run can be resumed with another strategy or process count.

With one process both strategies are a no-op.
"""

from __future__ import annotations

import contextlib
import copy
from typing import Any

import torch
from torch import nn

from chainrule.errors import ConfigError
from chainrule.training.distributed import DistInfo

STRATEGIES = ("ddp", "fsdp")


class Replicated:
    """One process, or DDP: the model is whole everywhere; nothing is gathered to save it."""

    name = "ddp"
    #: must every process run every forward pass together (sharded weights are gathered)?
    lockstep = False

    def __init__(self, info: DistInfo, device: torch.device):
        self.info, self.device = info, device

    def place(self, model: nn.Module) -> nn.Module:
        """The freshly built model, on the device where it is trained."""
        return model.to(self.device)

    def shard(self, model: nn.Module, optimizer: torch.optim.Optimizer, make_optimizer
              ) -> tuple[nn.Module, torch.optim.Optimizer]:
        """Spread the (resumed) model and optimizer over the processes (FSDP only)."""
        return model, optimizer

    def wrap(self, model: nn.Module) -> nn.Module:
        """The module the training step calls (DDP's gradient hooks around it)."""
        if not self.info.enabled:
            return model
        from torch.nn.parallel import DistributedDataParallel as DDP

        ids = [self.device.index] if self.device.type == "cuda" else None
        return DDP(model, device_ids=ids)

    def no_sync(self, model: nn.Module) -> contextlib.AbstractContextManager:
        """Around a micro-batch that is not the last of its step: keep gradients local."""
        return model.no_sync() if self.info.enabled else contextlib.nullcontext()

    def full_model(self, model: nn.Module, version: int) -> nn.Module | None:
        """A plain module with the current weights on rank 0 (None elsewhere); every process
        must call it (FSDP gathers). ``version`` (the step) lets two calls share one gather."""
        return model if self.info.is_main else None

    def for_checkpoint(self, model: nn.Module, optimizer: torch.optim.Optimizer, version: int
                       ) -> tuple[Any, Any]:
        """What :func:`~chainrule.training.checkpoint.save_checkpoint` writes on rank 0: a
        plain model and an object whose ``state_dict()`` is the whole optimizer's."""
        return model, optimizer

    def plain(self, model: nn.Module) -> nn.Module:
        """The trained model as an ordinary module (no gathering: the last one gathered)."""
        return model


class Sharded(Replicated):
    """FSDP2: parameters, gradients and optimizer state cut over the processes."""

    name = "fsdp"
    lockstep = True

    def __init__(self, info: DistInfo, device: torch.device):
        super().__init__(info, device)
        self._plain: nn.Module | None = None
        self._gathered = -1
        self._order: list[str] = []

    def place(self, model: nn.Module) -> nn.Module:
        # stays where it was built (the CPU): fully_shard moves it unit by unit, already cut
        return model if self.info.enabled else model.to(self.device)

    def shard(self, model, optimizer, make_optimizer):
        if not self.info.enabled:
            return model, optimizer
        from torch.distributed.checkpoint.state_dict import (
            StateDictOptions,
            set_optimizer_state_dict,
        )
        from torch.distributed.device_mesh import init_device_mesh
        from torch.distributed.fsdp import fully_shard

        names = {id(p): n for n, p in model.named_parameters()}
        resumed = _by_name(optimizer.state_dict(), optimizer, names)
        # rank 0 keeps an ordinary copy on the CPU to write checkpoints from
        self._plain = copy.deepcopy(model).cpu() if self.info.is_main else None
        mesh = init_device_mesh(self.device.type, (self.info.world_size,))
        for unit in shard_units(model):
            fully_shard(unit, mesh=mesh)
        fully_shard(model, mesh=mesh)
        optimizer = make_optimizer(model)  # over the sharded parameters (new objects)
        self._order = _param_order(optimizer, model)
        if resumed["state"]:
            set_optimizer_state_dict(model, optimizer, resumed,
                                     options=StateDictOptions(full_state_dict=True))
        return model, optimizer

    def wrap(self, model):
        return model  # fully_shard already hooks the gathers and reduce-scatters

    def no_sync(self, model):
        # gradients are reduce-scattered after every micro-batch, so only shards accumulate
        return contextlib.nullcontext()

    def full_model(self, model, version):
        if not self.info.enabled:
            return model
        if version != self._gathered:
            from torch.distributed.checkpoint.state_dict import (
                StateDictOptions,
                get_model_state_dict,
            )

            full = get_model_state_dict(
                model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
            if self.info.is_main:
                self._plain.load_state_dict(full)
            self._gathered = version
        return self._plain

    def for_checkpoint(self, model, optimizer, version):
        if not self.info.enabled:
            return model, optimizer
        from torch.distributed.checkpoint.state_dict import (
            StateDictOptions,
            get_optimizer_state_dict,
        )

        plain = self.full_model(model, version)
        if not optimizer.state:  # before the first step: nothing to gather (and asking would
            # make torch initialise the moments with a zero step, shifting AdamW's count)
            return (plain, optimizer) if self.info.is_main else (None, None)
        full = get_optimizer_state_dict(
            model, optimizer, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
        if not self.info.is_main:
            return None, None
        return plain, _Frozen(_by_index(full, self._order))

    def plain(self, model):
        return self._plain if self._plain is not None else model


def shard_units(model: nn.Module) -> list[nn.Module]:
    """The modules sharded one by one: the elements of the outermost ``nn.ModuleList`` s
    (a transformer's blocks, an encoder's and a decoder's layers), in model order."""
    units: list[nn.Module] = []

    def visit(m: nn.Module) -> None:
        for child in m.children():
            if isinstance(child, nn.ModuleList):
                units.extend(c for c in child if any(True for _ in c.parameters()))
            else:
                visit(child)

    visit(model)
    return units


def _param_order(optimizer: torch.optim.Optimizer, model: nn.Module) -> list[str]:
    """Parameter names in the optimizer's order (the order of a plain ``state_dict``'s ids)."""
    names = {id(p): n for n, p in model.named_parameters()}
    return [names[id(p)] for g in optimizer.param_groups for p in g["params"]]


def _by_name(sd: dict, optimizer: torch.optim.Optimizer, names: dict[int, str]) -> dict:
    """A plain optimizer ``state_dict`` (parameters numbered) keyed by parameter name."""
    order = [names[id(p)] for g in optimizer.param_groups for p in g["params"]]
    return {
        "state": {order[i]: st for i, st in sd["state"].items()},
        "param_groups": [{**g, "params": [order[i] for i in g["params"]]}
                         for g in sd["param_groups"]],
    }


def _by_index(sd: dict, order: list[str]) -> dict:
    """A name-keyed optimizer state (FSDP's full state dict) numbered as a plain one is."""
    index = {n: i for i, n in enumerate(order)}
    return {
        "state": {index[n]: st for n, st in sd["state"].items()},
        "param_groups": [{**g, "params": [index[n] for n in g["params"]]}
                         for g in sd["param_groups"]],
    }


class _Frozen:
    """An optimizer's gathered state, in the shape checkpoint writing asks for."""

    def __init__(self, sd: dict):
        self._sd = sd

    def state_dict(self) -> dict:
        return self._sd


def make_strategy(name: str, info: DistInfo, device: torch.device) -> Replicated:
    """The strategy called ``name`` (``ddp`` or ``fsdp``) for this process."""
    if name not in STRATEGIES:
        raise ConfigError(f"strategy must be one of {', '.join(STRATEGIES)}, not {name!r}.")
    return (Sharded if name == "fsdp" else Replicated)(info, device)


__all__ = ["STRATEGIES", "Replicated", "Sharded", "make_strategy", "shard_units"]
