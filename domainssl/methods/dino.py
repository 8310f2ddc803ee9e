"""DINO (Caron et al. 2021): self-distillation with a momentum teacher, multi-crop, 2D and 3D."""

from __future__ import annotations

import torch

from .base import SSLMethod
from .heads import DINOHead
from .losses import DINOLoss
from .momentum import copy_frozen, cosine_momentum


class DINO(SSLMethod):
    """Student (encoder + DINOHead) matches a teacher (EMA copy) across crops.

    views: `num_global_crops` global crops first, then any number of local crops, each (B, C, *S)
    (2D or 3D). Crops of equal shape go through the network as one batch (one forward for the
    globals, one per local crop size) rather than one forward per crop. The teacher sees only
    the global crops. Teacher outputs are centred and sharpened (DINOLoss), the teacher
    temperature warms up over `warmup_teacher_temp_steps`, the momentum follows a cosine from
    `momentum_start` to `momentum_end`, and the last head layer is frozen for
    `freeze_last_layer_steps` steps (stabilises the start).
    """

    method_name = "dino"

    def __init__(self, encoder, out_dim: int = 65536, hidden_dim: int = 2048,
                 bottleneck_dim: int = 256, num_global_crops: int = 2,
                 student_temp: float = 0.1, teacher_temp: float = 0.04,
                 warmup_teacher_temp: float = 0.04, warmup_teacher_temp_steps: int = 0,
                 center_momentum: float = 0.9, momentum_start: float = 0.996,
                 momentum_end: float = 1.0, freeze_last_layer_steps: int = 0,
                 **kwargs) -> None:
        kwargs.setdefault("grad_clip", 3.0)
        super().__init__(encoder, method_hparams=dict(
            out_dim=out_dim, hidden_dim=hidden_dim, bottleneck_dim=bottleneck_dim,
            num_global_crops=num_global_crops, student_temp=student_temp,
            teacher_temp=teacher_temp, warmup_teacher_temp=warmup_teacher_temp,
            warmup_teacher_temp_steps=warmup_teacher_temp_steps,
            center_momentum=center_momentum, momentum_start=momentum_start,
            momentum_end=momentum_end, freeze_last_layer_steps=freeze_last_layer_steps), **kwargs)
        self.head = DINOHead(encoder.embed_dim, out_dim, hidden_dim, bottleneck_dim)
        self.teacher_encoder = copy_frozen(self.encoder)
        self.teacher_head = copy_frozen(self.head)
        self.criterion = DINOLoss(out_dim, student_temp, teacher_temp, warmup_teacher_temp,
                                  warmup_teacher_temp_steps, center_momentum)

    def compile_targets(self):
        return [self.encoder, self.head, self.teacher_encoder, self.teacher_head]

    def method_facts(self):
        hp = self.hparams
        return {"out_dim": hp.out_dim, "teacher_temp": hp.teacher_temp,
                "student_temp": hp.student_temp, "momentum": [hp.momentum_start, hp.momentum_end],
                "center_momentum": hp.center_momentum}

    @staticmethod
    def _same_shape_groups(views: list[torch.Tensor]) -> list[list[torch.Tensor]]:
        groups: dict[tuple, list[torch.Tensor]] = {}
        for v in views:
            groups.setdefault(tuple(v.shape), []).append(v)
        return list(groups.values())

    def compute_loss(self, views):
        g = self.hparams.num_global_crops
        if len(views) < g or any(v.shape != views[0].shape for v in views[:g]):
            raise ValueError(f"DINO needs {g} global crops of one shape first, got shapes "
                             f"{[tuple(v.shape) for v in views]}")
        b = views[0].shape[0]
        globals_ = torch.cat(views[:g])
        feats = self.encoder(globals_)
        student = [self.head(feats)]
        for group in self._same_shape_groups(views[g:]):
            student.append(self.head(self.encoder(torch.cat(group))))
        student_out = torch.cat(student).view(len(views), b, -1)
        with torch.no_grad():
            teacher_out = self.teacher_head(self.teacher_encoder(globals_)).view(g, b, -1)
        loss = self.criterion(student_out, teacher_out, self.schedule_step,
                              update_center=self.training)
        return loss, feats[:b]

    def on_after_backward(self) -> None:
        if self.schedule_step < self.hparams.freeze_last_layer_steps:
            self.head.last_layer.weight.grad = None

    def momentum_update(self) -> None:
        m = cosine_momentum(self.schedule_step, self.total_steps, self.hparams.momentum_start,
                            self.hparams.momentum_end)
        self.ema_step(m)

    def momentum_pairs(self):
        return [(self.teacher_encoder, self.encoder), (self.teacher_head, self.head)]
