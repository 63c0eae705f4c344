"""Reach the running app's typed settings."""

from __future__ import annotations

from flask import current_app

from core.config import Settings

SETTINGS_KEY = "scanqueue.settings"


def current_settings() -> Settings:
    """The Settings the current Flask app was created with."""
    return current_app.extensions[SETTINGS_KEY]
