"""The policies file: its schema (``model``) and its loading and validation (``load``)."""

from engine.config.load import ConfigError, load_config
from engine.config.model import (
    Config,
    Connection,
    EngineSettings,
    Forward,
    IdentityConfig,
    MaskingRule,
    SshSettings,
    TlsFiles,
    Upstream,
)

__all__ = [
    "Config",
    "ConfigError",
    "Connection",
    "EngineSettings",
    "Forward",
    "IdentityConfig",
    "MaskingRule",
    "SshSettings",
    "TlsFiles",
    "Upstream",
    "load_config",
]
