"""Policies: implementations of the Policy contract (envs/policy_api.py): random, the scripted
experts (policies/scripted), the frozen-encoder policy heads (policies/heads)."""
