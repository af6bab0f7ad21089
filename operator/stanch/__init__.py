"""Stanch: stop the bleeding in a production incident."""

__version__ = "0.1.0"
GROUP = "stanch.dev"
VERSION = "v1alpha1"
