"""Serving models: the registry of versioned weights, loading them in a worker, the face detector.

Training, datasets and evaluation live in ``lab`` (development only; nothing here imports it).
"""
