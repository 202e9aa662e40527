"""Packages and package data (the rest of the metadata is in pyproject.toml).

The pack templates stay in the top-level ``templates/`` folder of a checkout (the layout the README
documents) and ship inside the wheel as ``assurance/templates``; ``assurance.report.render`` looks
for them there first, then beside the package. pyproject.toml alone cannot map a folder from
outside the package into it, hence this file.
"""

from setuptools import find_namespace_packages, setup

# Namespace discovery, so folders of data or migration scripts are found whether or not they
# hold an __init__.py.
FOUND = find_namespace_packages(include=["assurance", "assurance.*"], exclude=["*.__pycache__"])
PACKAGES = [*FOUND, "assurance.templates"]

PACKAGE_DATA = {
    "assurance": ["py.typed", "__init__.pyi", "demo_profiles/*.yaml"],
    "assurance.battery": ["data/*.json", "data/*.jsonl", "data/*.md"],
    "assurance.finetune": ["data/*.jsonl"],
    "assurance.models": ["data/*"],
    "assurance.requirements": ["data/*.yaml", "data/crosswalks/*.yaml"],
    "assurance.evidence.migrations": ["script.py.mako", "versions/*.py"],
    "assurance.templates": ["*.html", "*.css", "*/*.html", "*/*.css"],
}

setup(
    packages=PACKAGES,
    package_dir={"assurance.templates": "templates"},
    package_data=PACKAGE_DATA,
    include_package_data=False,
)
