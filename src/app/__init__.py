"""Momentum: challenges, check-ins, reputation and an AI coach."""
