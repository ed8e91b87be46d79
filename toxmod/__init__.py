"""toxmod: config-composed experiments for text-moderation classifiers."""

__version__ = "0.1.0"
