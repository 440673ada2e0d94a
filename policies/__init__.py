"""Policies: everything that maps (obs, instruction) -> action. See policies/base.py."""

from policies.base import POLICIES, Policy, RandomPolicy, build_policy, load_policy

__all__ = ["POLICIES", "Policy", "RandomPolicy", "build_policy", "load_policy"]
