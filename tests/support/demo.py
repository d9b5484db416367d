"""The demo company for tests: generated once per session, copied where a test writes to it."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

from demo.company import DemoCompany


def copy_company(company: DemoCompany, root: Path) -> DemoCompany:
    """A writable copy of `company` under `root`; its config names every path relative to itself."""
    shutil.copytree(company.root, root)
    return dataclasses.replace(company, root=root, config_path=root / company.config_path.relative_to(company.root),
                               policy_path=root / company.policy_path.relative_to(company.root))
