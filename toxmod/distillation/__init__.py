"""Distillation: a finished run as teacher, its calibrated outputs cached once, students learning."""

from toxmod.distillation.teacher import TeacherCache, check_distillation, teacher_targets

__all__ = ["TeacherCache", "check_distillation", "teacher_targets"]
