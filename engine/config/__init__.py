"""The policies file: its schema (``model``) and its loading and validation (``load``)."""

from engine.config.load import ConfigError, load_config
from engine.config.model import (
    Config,
    Connection,
    EngineSettings,
    IdentityConfig,
    TlsFiles,
    Upstream,
)

__all__ = [
    "Config",
    "ConfigError",
    "Connection",
    "EngineSettings",
    "IdentityConfig",
    "TlsFiles",
    "Upstream",
    "load_config",
]
