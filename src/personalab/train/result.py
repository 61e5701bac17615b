"""What a training run reports (``TrainResult``: the learning curves and the epoch kept), and
the seeding every run starts from. The loop itself is ``personalab.train.fleet``: every adapter,
``unified`` included, trains there (a single adapter is a fleet of one).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

import numpy as np
import torch


@dataclass
class TrainResult:
    val_loss: list[float]  # index 0 is before training, then one value per epoch
    train_loss: list[float]  # mean training loss per epoch
    best_epoch: int  # 0 means no epoch beat the untrained adapter
    seconds: float = 0.0
    steps: int = 0
    extra: dict = field(default_factory=dict)

    @property
    def best_val_loss(self) -> float:
        return self.val_loss[self.best_epoch]

    def to_dict(self) -> dict:
        return {
            "val_loss": self.val_loss,
            "train_loss": self.train_loss,
            "best_epoch": self.best_epoch,
            "best_val_loss": self.best_val_loss,
            "seconds": self.seconds,
            "steps": self.steps,
        }


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
