"""deploy/ ships inside the wheel as the package data `steth.deploy_files` (one copy, no symlink)."""

from setuptools import find_packages, setup

setup(
    packages=[*find_packages(include=["steth", "steth.*"]), "steth.deploy_files"],
    package_dir={"steth.deploy_files": "deploy"},
    package_data={"steth.deploy_files": ["**/*"]},
)
