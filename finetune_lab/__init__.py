"""Shared machinery for finetune-lab: arguments, data readers, metrics, tracking, results.

Tasks live in the top-level `tasks` package; everything here is task-agnostic.
"""
