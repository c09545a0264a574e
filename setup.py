"""Installs fvae_tf, data_prep and experiments (dependencies: requirements.txt)."""

import pathlib

from setuptools import find_packages, setup

requirements = [
    line.strip()
    for line in (pathlib.Path(__file__).parent / "requirements.txt").read_text().splitlines()
    if line.strip() and not line.startswith("#")
]

setup(
    name="fvae",
    version="0.1.0",
    description="Semantic Facial Expression Editing using Autoencoded Flow (FVAE), TF2/Keras 3",
    packages=find_packages(include=["fvae_tf", "fvae_tf.*", "data_prep", "experiments"]),
    python_requires=">=3.11",
    install_requires=requirements,
)
