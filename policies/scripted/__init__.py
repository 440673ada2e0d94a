"""Scripted atomic-skill experts (privileged state): LIBERO (core/library/programs, OSC_POSE) and
Franka Kitchen (kitchen). They are policies like any other: registered as `scripted` and
`kitchen_scripted`, built by name through envs.policy_api.build_policy."""
