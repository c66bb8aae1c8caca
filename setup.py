"""Build step for chainrule's compiled core (the BPE trainer and encoder)."""

from setuptools import setup

setup()
