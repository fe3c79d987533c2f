"""Jinja2 templates of Asterisk's configuration files, shipped as package data (provisioning.render loads them)."""
