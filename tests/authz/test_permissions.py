"""The role→permission table of SPEC §2, pinned cell by cell."""

from __future__ import annotations

import pytest

from botplatform.authz.permissions import ROLE_PERMISSIONS, Permission, Role

ROLES = ["owner", "admin", "developer", "manager", "agent", "analyst", "viewer"]

# permission:             owner admin dev  mgr  agent analyst viewer
TABLE = """
workspace:read             1     1     1    1    1     1       1
workspace:update           1     1     0    0    0     0       0
workspace:delete           1     0     0    0    0     0       0
members:read               1     1     1    1    1     1       1
members:manage             1     1     0    0    0     0       0
billing:read               1     1     1    1    0     1       0
billing:manage             1     0     0    0    0     0       0
api_keys:manage            1     1     1    0    0     0       0
audit:read                 1     1     0    0    0     0       0
channels:read              1     1     1    1    1     1       1
channels:manage            1     1     1    0    0     0       0
conversations:read         1     1     1    1    1     1       1
conversations:reply        1     1     0    1    1     0       0
conversations:manage       1     1     0    1    0     0       0
contacts:read              1     1     1    1    1     1       1
contacts:manage            1     1     0    1    1     0       0
contacts:export            1     1     0    1    0     1       0
privacy:erase              1     1     0    0    0     0       0
bots:read                  1     1     1    1    0     1       1
bots:manage                1     1     1    0    0     0       0
automations:manage         1     1     1    1    0     0       0
templates:read             1     1     1    1    1     1       1
templates:manage           1     1     1    1    0     0       0
broadcasts:read            1     1     1    1    0     1       1
broadcasts:send            1     1     0    1    0     0       0
webhooks:read              1     1     1    0    0     0       0
webhooks:manage            1     1     1    0    0     0       0
analytics:read             1     1     1    1    0     1       1
"""


def _expected() -> dict[tuple[str, str], bool]:
    cells = {}
    for line in TABLE.strip().splitlines():
        permission, *marks = line.split()
        assert len(marks) == len(ROLES), line
        for role, mark in zip(ROLES, marks, strict=True):
            cells[(role, permission)] = mark == "1"
    return cells


EXPECTED = _expected()


def test_table_lists_every_permission_and_role() -> None:
    assert {p for _, p in EXPECTED} == {p.value for p in Permission}
    assert [r.value for r in Role] == ROLES
    assert set(ROLE_PERMISSIONS) == set(Role)


@pytest.mark.parametrize(("role", "permission"), sorted(EXPECTED))
def test_cell(role: str, permission: str) -> None:
    granted = Permission(permission) in ROLE_PERMISSIONS[Role(role)]
    assert granted is EXPECTED[(role, permission)]


def test_roles_are_ranked_from_owner_to_viewer() -> None:
    assert Role.OWNER.outranks_or_equals(Role.ADMIN)
    assert Role.ADMIN.outranks_or_equals(Role.ADMIN)
    assert not Role.ADMIN.outranks_or_equals(Role.OWNER)
    assert not Role.VIEWER.outranks_or_equals(Role.ANALYST)
    assert [role.rank for role in Role] == list(range(7))


def test_owner_has_everything() -> None:
    assert ROLE_PERMISSIONS[Role.OWNER] == frozenset(Permission)
