"""Thin controllers: validate, call one service, render."""
