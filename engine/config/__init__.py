"""The policies file: its schema (``model``) and its loading and validation (``load``)."""

from engine.config.load import ConfigError, load_config
from engine.config.model import (
    AgentRule,
    Config,
    Connection,
    EngineSettings,
    Forward,
    IdentityConfig,
    OidcSettings,
    SshSettings,
    TlsFiles,
    Upstream,
)
from engine.masking.rules import MaskingRule

__all__ = [
    "AgentRule",
    "Config",
    "ConfigError",
    "Connection",
    "EngineSettings",
    "Forward",
    "IdentityConfig",
    "MaskingRule",
    "OidcSettings",
    "SshSettings",
    "TlsFiles",
    "Upstream",
    "load_config",
]
