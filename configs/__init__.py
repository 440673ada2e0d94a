"""Typed configs: YAML files in this folder map 1:1 onto dataclasses (see `configs.loader`)."""

from configs.loader import ConfigError, from_dict, load_config, parse_cli, save_config, to_dict

__all__ = ["ConfigError", "from_dict", "load_config", "parse_cli", "save_config", "to_dict"]
