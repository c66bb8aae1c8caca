"""What :func:`chainrule.training.loop.train` returns."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch


class TrainResult(dict):
    """What :func:`train` returns: the run's summary (a dict, as before) and ``.model``, the
    trained model as saved at the top of the run's directory (the best evaluation's weights, as
    ``chainrule.load_model`` reads them), loaded when first asked for, in evaluation mode."""

    def __init__(self, summary: dict[str, Any], out_dir: Path | None = None, trained: Any = None,
                 device: torch.device | None = None):
        super().__init__(summary)
        self._where, self._trained, self._device, self._model = out_dir, trained, device, None

    @property
    def summary(self) -> dict[str, Any]:
        return dict(self)

    @property
    def model(self) -> Any:
        if self._model is None and self._trained is not None:
            from chainrule.models import load_model

            if self._where is not None and (self._where / "model.safetensors").exists():
                self._model = load_model(self._where).to(self._device).eval()
            else:
                self._model = self._trained.eval()
        return self._model


__all__ = ["TrainResult"]
