"""The policies file: its schema (``model``) and its loading and validation (``load``)."""

from engine.config.load import ConfigError, load_config
from engine.config.model import (
    AgentRule,
    AuditStreamSettings,
    Config,
    Connection,
    EngineSettings,
    Forward,
    IdentityConfig,
    MetricsSettings,
    OidcSettings,
    SshSettings,
    TlsFiles,
    Upstream,
)
from engine.masking.rules import MaskingRule

__all__ = [
    "AgentRule",
    "AuditStreamSettings",
    "Config",
    "ConfigError",
    "Connection",
    "EngineSettings",
    "Forward",
    "IdentityConfig",
    "MaskingRule",
    "MetricsSettings",
    "OidcSettings",
    "SshSettings",
    "TlsFiles",
    "Upstream",
    "load_config",
]
