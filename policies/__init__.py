"""Policies: everything that maps (obs, instruction) -> action. See policies/base.py."""

from policies.base import Policy, RandomPolicy, build_policy, register_policy

__all__ = ["Policy", "RandomPolicy", "build_policy", "register_policy"]
