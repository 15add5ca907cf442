"""Bedel: a self-hosted assistant that answers students' questions."""
