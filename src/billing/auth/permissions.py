"""Roles map to permissions in this one table. Every route declares the permission it needs."""

from __future__ import annotations

from enum import StrEnum


class Role(StrEnum):
    SUPER_ADMIN = "super_admin"
    BILLING_ADMIN = "billing_admin"
    SUPPORT_REP = "support_rep"
    FINANCE_VIEWER = "finance_viewer"


class Permission(StrEnum):
    ACCOUNTS_READ = "accounts:read"
    ACCOUNTS_WRITE = "accounts:write"
    CATALOG_READ = "catalog:read"
    CATALOG_WRITE = "catalog:write"
    SUBSCRIPTIONS_READ = "subscriptions:read"
    SUBSCRIPTIONS_WRITE = "subscriptions:write"
    INVOICES_READ = "invoices:read"
    INVOICES_WRITE = "invoices:write"
    PAYMENTS_READ = "payments:read"
    PAYMENTS_WRITE = "payments:write"
    CREDITS_READ = "credits:read"
    CREDITS_WRITE = "credits:write"
    USAGE_READ = "usage:read"
    USAGE_WRITE = "usage:write"
    EVENTS_READ = "events:read"
    WEBHOOKS_WRITE = "webhooks:write"
    TEST_CLOCKS_WRITE = "test_clocks:write"
    API_KEYS_WRITE = "api_keys:write"


READ_ALL = frozenset(p for p in Permission if p.value.endswith(":read"))

ROLE_PERMISSIONS: dict[Role, frozenset[Permission]] = {
    Role.SUPER_ADMIN: frozenset(Permission),
    Role.BILLING_ADMIN: frozenset(Permission) - {Permission.API_KEYS_WRITE},
    Role.SUPPORT_REP: READ_ALL
    | {Permission.ACCOUNTS_WRITE, Permission.SUBSCRIPTIONS_WRITE, Permission.CREDITS_WRITE},
    Role.FINANCE_VIEWER: READ_ALL,
}


def allows(role: Role, permission: Permission) -> bool:
    return permission in ROLE_PERMISSIONS[role]
