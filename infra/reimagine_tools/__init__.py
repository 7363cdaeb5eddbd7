"""Operator tools: the CLI, doctor and redrive, against any deployment; they read template.yaml as SAM does.

They may import the product (`reimagine`), never the local stack (`reimagine_emulator`).
"""
