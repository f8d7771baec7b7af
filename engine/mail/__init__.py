"""Transactional mail: the texts (`engine.mail.templates`) and their formatting helpers."""
