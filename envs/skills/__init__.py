"""Scripted atomic-skill experts for LIBERO (privileged state, OSC_POSE). See library.py / programs.py."""
